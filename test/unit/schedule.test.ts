/**
 * When a backup is due. Daily and cron schedules are in local time, so every
 * expectation is built with local-time Date constructors: the tests hold in
 * whatever time zone they run.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { backoffAfter, dueAt, isDue, nextSlotAfter, type Schedule } from '../../machines/schedule.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Local wall-clock time, month 1-12 as on a calendar. */
function local(year: number, month: number, day: number, hour = 0, minute = 0): number {
  return new Date(year, month - 1, day, hour, minute).getTime();
}

const EVERY_6H: Schedule = { kind: 'every', ms: 6 * HOUR };
const DAILY_2AM: Schedule = { kind: 'daily', at: '02:00' };
const WEEKDAYS_2AM: Schedule = { kind: 'cron', expr: '0 2 * * 1-5' };

// January 2025: Friday the 3rd, a weekend on the 4th and 5th, Monday the 6th.
const FRIDAY = 3;
const SATURDAY = 4;
const SUNDAY = 5;
const MONDAY = 6;

describe('never backed up', () => {
  it('is due at once, whatever the schedule', () => {
    const now = local(2025, 1, MONDAY, 14, 0);
    for (const schedule of [EVERY_6H, DAILY_2AM, WEEKDAYS_2AM]) {
      expect(isDue(schedule, {}, now)).toBe(true);
      expect(dueAt(schedule, {})).toBe(0);
    }
  });
});

describe('every 6h', () => {
  const last = local(2025, 1, MONDAY, 9, 17);

  it('has its next slot 6 hours after the last success', () => {
    expect(nextSlotAfter(EVERY_6H, last)).toBe(last + 6 * HOUR);
    expect(dueAt(EVERY_6H, { lastSuccessAt: last })).toBe(last + 6 * HOUR);
  });

  it('is not due a minute before those 6 hours are up, and due from then on', () => {
    expect(isDue(EVERY_6H, { lastSuccessAt: last }, last + 6 * HOUR - MINUTE)).toBe(false);
    expect(isDue(EVERY_6H, { lastSuccessAt: last }, last + 6 * HOUR)).toBe(true);
    expect(isDue(EVERY_6H, { lastSuccessAt: last }, last + 30 * HOUR)).toBe(true);
  });
});

describe('daily "02:00"', () => {
  it('has its next slot at 02:00 the same day when the last success was before 02:00', () => {
    expect(nextSlotAfter(DAILY_2AM, local(2025, 1, MONDAY, 1, 30))).toBe(local(2025, 1, MONDAY, 2, 0));
  });

  it('has its next slot at 02:00 the next day when the last success was at or after 02:00', () => {
    expect(nextSlotAfter(DAILY_2AM, local(2025, 1, MONDAY, 2, 0))).toBe(local(2025, 1, MONDAY + 1, 2, 0));
    expect(nextSlotAfter(DAILY_2AM, local(2025, 1, MONDAY, 2, 5))).toBe(local(2025, 1, MONDAY + 1, 2, 0));
    expect(nextSlotAfter(DAILY_2AM, local(2025, 1, MONDAY, 23, 59))).toBe(local(2025, 1, MONDAY + 1, 2, 0));
  });

  it('crosses the end of a month and of a year', () => {
    expect(nextSlotAfter(DAILY_2AM, local(2025, 1, 31, 3, 0))).toBe(local(2025, 2, 1, 2, 0));
    expect(nextSlotAfter(DAILY_2AM, local(2024, 12, 31, 3, 0))).toBe(local(2025, 1, 1, 2, 0));
    expect(nextSlotAfter({ kind: 'daily', at: '00:00' }, local(2024, 2, 28, 0, 0))).toBe(local(2024, 2, 29, 0, 0));
  });

  it('after a success at 02:05 is not due before 02:00 the next day, and due at 02:00', () => {
    const facts = { lastSuccessAt: local(2025, 1, MONDAY, 2, 5) };
    expect(isDue(DAILY_2AM, facts, local(2025, 1, MONDAY, 14, 0))).toBe(false);
    expect(isDue(DAILY_2AM, facts, local(2025, 1, MONDAY + 1, 1, 59))).toBe(false);
    expect(isDue(DAILY_2AM, facts, local(2025, 1, MONDAY + 1, 2, 0))).toBe(true);
  });

  it('catches up a slot missed while the machine was off: last success 3 days ago is due at the next tick, in the afternoon', () => {
    const facts = { lastSuccessAt: local(2025, 1, MONDAY - 3, 2, 5) };
    expect(isDue(DAILY_2AM, facts, local(2025, 1, MONDAY, 14, 0))).toBe(true);
  });

  it('makes one catch-up backup, not one per missed slot: after it, the next slot is tomorrow 02:00', () => {
    const caughtUp = local(2025, 1, MONDAY, 14, 10);
    expect(dueAt(DAILY_2AM, { lastSuccessAt: caughtUp })).toBe(local(2025, 1, MONDAY + 1, 2, 0));
    expect(isDue(DAILY_2AM, { lastSuccessAt: caughtUp }, local(2025, 1, MONDAY, 15, 0))).toBe(false);
  });
});

describe('cron "0 2 * * 1-5" (02:00 on weekdays)', () => {
  it('has its next slot after Friday 02:00 on Monday 02:00, skipping the weekend', () => {
    expect(nextSlotAfter(WEEKDAYS_2AM, local(2025, 1, FRIDAY, 2, 0))).toBe(local(2025, 1, MONDAY, 2, 0));
  });

  it('is not due on Saturday or Sunday after a success on Friday, and due on Monday at 02:00', () => {
    const facts = { lastSuccessAt: local(2025, 1, FRIDAY, 2, 3) };
    expect(isDue(WEEKDAYS_2AM, facts, local(2025, 1, SATURDAY, 2, 0))).toBe(false);
    expect(isDue(WEEKDAYS_2AM, facts, local(2025, 1, SUNDAY, 23, 59))).toBe(false);
    expect(isDue(WEEKDAYS_2AM, facts, local(2025, 1, MONDAY, 1, 59))).toBe(false);
    expect(isDue(WEEKDAYS_2AM, facts, local(2025, 1, MONDAY, 2, 0))).toBe(true);
  });

  it('has its next slot on a weekday the next morning at 02:00 (Monday → Tuesday)', () => {
    expect(nextSlotAfter(WEEKDAYS_2AM, local(2025, 1, MONDAY, 2, 0))).toBe(local(2025, 1, MONDAY + 1, 2, 0));
  });

  it('catches up a weekday slot missed while the machine was off', () => {
    const facts = { lastSuccessAt: local(2025, 1, FRIDAY - 2, 2, 3) };
    expect(isDue(WEEKDAYS_2AM, facts, local(2025, 1, SATURDAY, 12, 0))).toBe(true);
  });
});

describe('back-off after failures', () => {
  it('waits 1h after the first failure and doubles with each further one: 1h, 2h, 4h, 8h, 16h', () => {
    expect([1, 2, 3, 4, 5].map(backoffAfter)).toEqual([1, 2, 4, 8, 16].map((h) => h * HOUR));
  });

  it('never waits more than a day', () => {
    expect(backoffAfter(6)).toBe(24 * HOUR);
    expect(backoffAfter(50)).toBe(24 * HOUR);
  });

  it('a retryAt in the future blocks a schedule that is due, until it passes', () => {
    const now = local(2025, 1, MONDAY, 14, 0);
    const facts = { lastSuccessAt: local(2025, 1, MONDAY - 3, 2, 5), retryAt: now + backoffAfter(2) };
    expect(isDue(DAILY_2AM, { lastSuccessAt: facts.lastSuccessAt }, now)).toBe(true);
    expect(isDue(DAILY_2AM, facts, now)).toBe(false);
    expect(isDue(DAILY_2AM, facts, now + 2 * HOUR - MINUTE)).toBe(false);
    expect(isDue(DAILY_2AM, facts, now + 2 * HOUR)).toBe(true);
    expect(dueAt(DAILY_2AM, facts)).toBe(now + 2 * HOUR);
  });

  it('a retryAt blocks a first backup too, when it failed before ever succeeding', () => {
    const now = local(2025, 1, MONDAY, 14, 0);
    expect(isDue(EVERY_6H, { retryAt: now + HOUR }, now)).toBe(false);
    expect(isDue(EVERY_6H, { retryAt: now + HOUR }, now + HOUR)).toBe(true);
  });

  it('a retryAt already past does not delay the next slot', () => {
    const last = local(2025, 1, MONDAY, 2, 5);
    expect(dueAt(DAILY_2AM, { lastSuccessAt: last, retryAt: last - HOUR })).toBe(local(2025, 1, MONDAY + 1, 2, 0));
  });
});

describe('daily across a daylight-saving change (Europe/Berlin)', () => {
  const before = process.env.TZ;
  afterEach(() => {
    if (before === undefined) delete process.env.TZ;
    else process.env.TZ = before;
  });

  it('keeps its wall-clock time on the day after a spring-forward day that had no 02:30', () => {
    process.env.TZ = 'Europe/Berlin';
    // Only meaningful when this Node picks up TZ at run time (it does since v13): fail rather than pass vacuously.
    expect(new Date(2025, 2, 30, 2, 30).getHours()).toBe(3);
    const schedule: Schedule = { kind: 'daily', at: '02:30' };
    // 02:30 did not exist on 30 March 2025: that day's slot came at 03:30.
    expect(nextSlotAfter(schedule, local(2025, 3, 29, 12, 0))).toBe(local(2025, 3, 30, 3, 30));
    expect(nextSlotAfter(schedule, local(2025, 3, 30, 4, 0))).toBe(local(2025, 3, 31, 2, 30));
    expect(new Date(nextSlotAfter(schedule, local(2025, 3, 30, 4, 0))).getHours()).toBe(2);
  });
});
