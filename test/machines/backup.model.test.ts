/**
 * Model-based tests: @xstate/graph walks the backup machine's graph; every
 * transition (state × event) becomes a path that is replayed against the
 * machine running with hand-driven actors, once straight and once with a
 * process restart (persist, restore) after every step. Each step is checked
 * against invariants written independently of the machine.
 */
import { describe, expect, it } from 'vitest';
import { getAdjacencyMap, getShortestPaths } from '@xstate/graph';
import type { EventObject } from 'xstate';
import { backupMachine, HISTORY_LIMIT, type BackupContext } from '../../machines/backup.js';
import { backoffAfter, type Schedule } from '../../machines/schedule.js';
import { stateName } from '../../machines/state-name.js';
import { BackupDriver } from './backup-driver.js';

const T0 = Date.UTC(2026, 0, 1, 12);
const HOUR = 3_600_000;
const schedule: Schedule = { kind: 'every', ms: 6 * HOUR };
const layout = {
  root: { mountPoint: '/', device: '/dev/vda1', fsType: 'xfs' },
  boot: { mountPoint: '/boot', device: '/dev/vda2', fsType: 'xfs' },
  home: { mountPoint: '/home', device: '/dev/vda3', fsType: 'xfs' },
};
const dump = { bytes: 1000, sha256: 'ab'.repeat(32), startedAt: T0 + 10, finishedAt: T0 + 20 };
const OUTPUTS: Record<string, unknown> = {
  checkReady: { checked: [] },
  syncSystem: { warnings: [] },
  recordLayout: layout,
  runSpoolModules: { modules: [] },
  dumpHome: dump,
  verifyDump: { bytes: 1000, sha256: dump.sha256 },
  publishBackup: { id: 'r1', created: new Date(T0 + 30).toISOString(), size: 1000, location: '/t/r1', publishedAt: T0 + 30 },
  applyRetention: { deleted: [], finishedAt: T0 + 40 },
};
const STEP_OF: Record<string, string> = {
  checkReady: 'preflight',
  syncSystem: 'systemSync',
  recordLayout: 'layout',
  runSpoolModules: 'spool',
  dumpHome: 'dump',
  verifyDump: 'verify',
  publishBackup: 'publish',
  applyRetention: 'retention',
};
const failure = { reason: 'boom', at: T0 + 25 };

type Snap = ReturnType<typeof backupMachine.transition>;

/** Events possible in a state: the clock's ticks, the admin's command, and the running step's outcomes. */
function eventsFor(s: Snap): EventObject[] {
  const events: EventObject[] = [
    { type: 'TICK', now: T0, schedule, runId: 'r1' } as EventObject,
    { type: 'TICK', now: T0 + 30 * 24 * HOUR, schedule, runId: 'r1' } as EventObject,
    { type: 'BACKUP_NOW', now: T0, runId: 'r1' } as EventObject,
    { type: 'ABANDON', now: T0 + 50, reason: 'restored' } as EventObject,
  ];
  for (const child of Object.keys(s.children)) {
    events.push({ type: `xstate.done.actor.${child}`, output: OUTPUTS[child] } as EventObject);
    events.push({ type: `xstate.error.actor.${child}`, error: failure } as EventObject);
  }
  return events;
}

const traversal = {
  events: eventsFor,
  serializeState: (s: Snap) => JSON.stringify({ v: s.value, failing: s.context.consecutiveFailures > 0, ok: !!s.context.lastSuccess }),
};

/** Invariants that hold in every state, whatever path led there. */
function checkInvariants(c: BackupContext, state: string, lastEvent: EventObject | undefined): void {
  expect(c.history.length).toBeLessThanOrEqual(HISTORY_LIMIT);
  if (state.startsWith('running')) expect(c.run?.id).toBe('r1');
  else expect(c.run).toBeUndefined();
  if (state === 'failed') {
    expect(c.lastFailure?.reason).toBe('boom');
    expect(c.consecutiveFailures).toBeGreaterThan(0);
    expect(c.retryAt).toBe(failure.at + backoffAfter(c.consecutiveFailures));
  }
  if (lastEvent?.type.startsWith('xstate.error.actor.')) {
    const src = lastEvent.type.slice('xstate.error.actor.'.length);
    if (src !== 'applyRetention') expect(c.lastFailure?.step).toBe(STEP_OF[src]);
  }
  if (lastEvent?.type === 'ABANDON' && c.history.at(-1)?.step === 'abandoned') {
    expect(c.history.at(-1)).toMatchObject({ id: 'r1', result: 'failed', reason: 'restored' });
  }
  if (lastEvent?.type === 'xstate.done.actor.publishBackup') {
    expect(c.lastSuccess?.id).toBe('r1');
    expect(c.consecutiveFailures).toBe(0);
    expect(c.history.at(-1)?.result).toBe('success');
  }
}

// The model's events include the actors' done/error events, which BackupEvent does not
// list, so the graph's options and results are typed here rather than inferred.
type ModelEvent = EventObject & Record<string, unknown>;
interface ModelStep {
  event: ModelEvent;
  state: Snap;
}
const graphOptions = traversal as never;
const adjacency = getAdjacencyMap(backupMachine, graphOptions) as unknown as Record<
  string,
  { state: Snap; transitions: Record<string, ModelStep> }
>;
const toState = getShortestPaths(backupMachine, graphOptions) as unknown as Array<{ state: Snap; steps: ModelStep[] }>;
const transitions = Object.values(adjacency).flatMap(({ state, transitions: out }) =>
  Object.values(out).map(({ event, state: next }) => ({ from: state, event, to: next })),
);

function pathTo(s: Snap) {
  const key = traversal.serializeState(s);
  const path = toState.find((p) => traversal.serializeState(p.state as Snap) === key);
  if (!path) throw new Error(`no path to ${key}`);
  return path.steps.slice(1).map((st) => st.event);
}

describe('the backup machine, walked transition by transition', () => {
  it('reaches every step of a backup and both resting states', () => {
    const states = new Set(toState.map((p) => stateName(p.state.value)));
    for (const s of [
      'idle',
      'failed',
      'running.preflight',
      'running.systemSync',
      'running.layout',
      'running.spool',
      'running.dump',
      'running.verify',
      'running.publish',
      'running.retention',
    ]) {
      expect(states).toContain(s);
    }
  });

  for (const restartEachStep of [false, true]) {
    describe(restartEachStep ? 'with a process restart after every step' : 'in one process', () => {
      for (const t of transitions) {
        const name = `${stateName(t.from.value)}${(t.from.context as BackupContext).consecutiveFailures ? ' (after a failure)' : ''} --${t.event.type}${t.event.type === 'TICK' ? `@${t.event.now === T0 ? 'soon' : 'later'}` : ''}--> ${stateName(t.to.value)}`;
        it(name, async () => {
          const driver = new BackupDriver();
          try {
            const events = [...pathTo(t.from as Snap), t.event];
            for (const event of events) {
              await driver.send(event as never);
              if (restartEachStep) {
                await driver.restart();
                // A restored in-flight step is invoked again (actors must be idempotent).
                for (const child of Object.keys(driver.snapshot.children)) expect(driver.pending.has(child as never)).toBe(true);
              }
              checkInvariants(driver.snapshot.context, stateName(driver.snapshot.value), event);
            }
            expect(stateName(driver.snapshot.value)).toBe(stateName(t.to.value));
          } finally {
            driver.stop();
          }
        });
      }
    });
  }

  it('hands each step the results of the steps before it', async () => {
    const driver = new BackupDriver();
    await driver.send({ type: 'BACKUP_NOW', now: T0, runId: 'r1' });
    for (const src of [
      'checkReady',
      'syncSystem',
      'recordLayout',
      'runSpoolModules',
      'dumpHome',
      'verifyDump',
      'publishBackup',
      'applyRetention',
    ]) {
      await driver.send({ type: `xstate.done.actor.${src}`, output: OUTPUTS[src] });
    }
    const input = (src: string) => driver.invocations.find((i) => i.src === src)?.input;
    expect(input('dumpHome')).toEqual({ runId: 'r1', layout });
    expect(input('verifyDump')).toEqual({ runId: 'r1', dump });
    expect(input('publishBackup')).toEqual({ runId: 'r1', startedAt: T0, layout, dump });
    expect(input('applyRetention')).toMatchObject({ runId: 'r1', published: { id: 'r1', size: 1000 } });
    expect(stateName(driver.snapshot.value)).toBe('idle');
    driver.stop();
  });

  it('ignores a tick that comes before the schedule is due', async () => {
    const driver = new BackupDriver();
    await driver.send({ type: 'BACKUP_NOW', now: T0, runId: 'r1' });
    for (const src of Object.keys(OUTPUTS)) await driver.send({ type: `xstate.done.actor.${src}`, output: OUTPUTS[src] });
    await driver.send({ type: 'TICK', now: T0 + 5 * HOUR, schedule, runId: 'r2' });
    expect(stateName(driver.snapshot.value)).toBe('idle');
    await driver.send({ type: 'TICK', now: T0 + 6 * HOUR + 31, schedule, runId: 'r2' });
    expect(stateName(driver.snapshot.value)).toBe('running.preflight');
    driver.stop();
  });

  it('waits longer after each failure in a row, at most a day', async () => {
    const driver = new BackupDriver();
    let now = T0;
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      await driver.send({ type: 'TICK', now, schedule, runId: `r${i}` });
      await driver.send({ type: 'xstate.error.actor.checkReady', error: { reason: 'down', at: now } });
      const c = driver.snapshot.context;
      waits.push((c.retryAt! - now) / HOUR);
      // A tick one minute before the retry time does nothing.
      await driver.send({ type: 'TICK', now: c.retryAt! - 60_000, schedule, runId: 'x' });
      expect(stateName(driver.snapshot.value)).toBe('failed');
      now = c.retryAt!;
    }
    expect(waits).toEqual([1, 2, 4, 8, 16, 24, 24]);
    driver.stop();
  });
});
