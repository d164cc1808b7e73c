/**
 * When a backup is due. Pure: the clock comes in as an argument. A backup is
 * due when the first schedule slot after the last success has passed, so a
 * slot missed while the machine was off is caught up at the next tick.
 */
import { Cron } from 'croner';

export type Schedule = { kind: 'daily'; at: string } | { kind: 'every'; ms: number } | { kind: 'cron'; expr: string };

const HOUR = 3_600_000;
const MAX_BACKOFF = 24 * HOUR;

/** The first slot strictly after `t` (local time for daily and cron). */
export function nextSlotAfter(schedule: Schedule, t: number): number {
  switch (schedule.kind) {
    case 'every':
      return t + schedule.ms;
    case 'daily': {
      const [h, m] = schedule.at.split(':').map(Number) as [number, number];
      const d = new Date(t);
      d.setHours(h, m, 0, 0);
      if (d.getTime() <= t) {
        // Set the time again on the next day: in a DST gap setHours moved it (02:30 → 03:30), and setDate keeps that.
        d.setDate(d.getDate() + 1);
        d.setHours(h, m, 0, 0);
      }
      return d.getTime();
    }
    case 'cron': {
      const next = new Cron(schedule.expr, { paused: true }).nextRun(new Date(t));
      return next ? next.getTime() : Number.POSITIVE_INFINITY;
    }
  }
}

/** Wait after the n-th failure in a row: 1h, 2h, 4h … at most a day. */
export function backoffAfter(consecutiveFailures: number): number {
  return Math.min(HOUR * 2 ** Math.max(0, consecutiveFailures - 1), MAX_BACKOFF);
}

export interface DueFacts {
  lastSuccessAt?: number | undefined;
  retryAt?: number | undefined;
}

export function dueAt(schedule: Schedule, facts: DueFacts): number {
  const bySchedule = facts.lastSuccessAt === undefined ? 0 : nextSlotAfter(schedule, facts.lastSuccessAt);
  return Math.max(bySchedule, facts.retryAt ?? 0);
}

export function isDue(schedule: Schedule, facts: DueFacts, now: number): boolean {
  return now >= dueAt(schedule, facts);
}
