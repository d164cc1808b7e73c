/**
 * A backup's id is the host and the start time to the second. Two runs in the
 * same second must not share an id (the target refuses a second publish under
 * the same name), so a later one gets -2, -3 …; a base no run has used is kept.
 */
import { describe, expect, it } from 'vitest';
import type { BackupContext } from '../../machines/backup.js';
import type { HistoryEntry } from '../../machines/types.js';
import { unusedId } from '../../src/backup/run.js';

const T0 = Date.UTC(2026, 0, 1, 12);
const BASE = 'server1-20260101T120000Z';

function entry(id: string, result: HistoryEntry['result'] = 'success'): HistoryEntry {
  return { id, result, startedAt: T0, finishedAt: T0 + 1, durationMs: 1 };
}

function context(history: HistoryEntry[], extra: Partial<BackupContext> = {}): BackupContext {
  return { consecutiveFailures: 0, history, ...extra };
}

describe('unusedId', () => {
  it('keeps a base that no run in the history has', () => {
    expect(unusedId(BASE, context([]))).toBe(BASE);
    expect(unusedId(BASE, context([entry('server1-20260101T115959Z')]))).toBe(BASE);
  });

  it('gives the second run in the same second another id than the first', () => {
    const first = unusedId(BASE, context([]));
    const second = unusedId(BASE, context([entry(first)]));
    expect(second).not.toBe(first);
    expect(second).toBe(`${BASE}-2`);
  });

  it('gives a third run in that second -3', () => {
    expect(unusedId(BASE, context([entry(BASE), entry(`${BASE}-2`)]))).toBe(`${BASE}-3`);
  });

  it('counts a failed run of that second as taken, too', () => {
    expect(unusedId(BASE, context([entry(BASE, 'failed')]))).toBe(`${BASE}-2`);
  });

  it('counts the last success and failure even when the history no longer holds them', () => {
    const last = entry(BASE);
    expect(unusedId(BASE, context([], { lastSuccess: last }))).toBe(`${BASE}-2`);
    expect(unusedId(BASE, context([], { lastFailure: { ...last, result: 'failed' } }))).toBe(`${BASE}-2`);
  });

  it('does not give the run in progress its own id again', () => {
    expect(unusedId(BASE, context([], { run: { id: BASE, trigger: 'manual', startedAt: T0 } }))).toBe(`${BASE}-2`);
  });
});
