/**
 * Model-based tests of the restore machine: @xstate/graph walks its graph,
 * and every transition (state × event) is replayed against the machine with
 * hand-driven actors, once straight and once with a process restart after
 * every step, as the boot hooks restart it. Invariants are checked each step,
 * and where each transition must lead comes from the hand-written oracle
 * (restore.oracle.ts), not from the machine: a wrong target state fails.
 */
import { describe, expect, it } from 'vitest';
import { getAdjacencyMap, getShortestPaths } from '@xstate/graph';
import type { AnyMachineSnapshot, EventObject } from 'xstate';
import { restoreActors, restoreMachine, type RestoreContext } from '../../machines/restore.js';
import type { RestorePlan } from '../../machines/restore-types.js';
import { stateName } from '../../machines/state-name.js';
import { MachineDriver } from './machine-driver.js';
import { judge, keyOf, summary } from './oracle.js';
import { RESTORE_ORACLE, restoreSituation } from './restore.oracle.js';

const T0 = Date.UTC(2026, 0, 1, 12);
const fs = (mountPoint: string) => ({ mountPoint, device: `/dev/x${mountPoint.length}`, fsType: 'xfs', uuid: `u${mountPoint.length}` });
const plan: RestorePlan = {
  backupId: 'b1',
  host: 'h',
  created: new Date(T0).toISOString(),
  size: 100,
  sha256: 'cd'.repeat(32),
  recorded: { root: fs('/'), boot: fs('/boot'), home: fs('/home') },
  devices: {
    root: { role: 'root', mountPoint: '/', device: '/dev/vda1', fsType: 'xfs' },
    boot: { role: 'boot', mountPoint: '/boot', device: '/dev/vda2', fsType: 'xfs' },
    home: { role: 'home', mountPoint: '/home', device: '/dev/vda3', fsType: 'xfs' },
  },
  grubDisks: ['/dev/vda'],
};
const OUTPUT: Record<string, unknown> = { checkBackupReadable: plan, finishRestore: { cleaned: [], finishedAt: T0 + 9 } };
const failure = { reason: 'boom', at: T0 + 5 };
const NOT_YET_DESTRUCTIVE = new Set(['preflight', 'stopServices']);

type Snap = AnyMachineSnapshot & { context: RestoreContext };

function eventsFor(s: Snap): EventObject[] {
  const events: EventObject[] = [
    { type: 'CONFIRM_RESTORE', now: T0, restoreId: 'r1', backupId: 'b1' } as EventObject,
    { type: 'RESUME', now: T0 + 1, inInitrd: true } as EventObject,
    { type: 'RESUME', now: T0 + 1, inInitrd: false } as EventObject,
    { type: 'ABORT', now: T0 + 2 } as EventObject,
  ];
  for (const child of Object.keys(s.children)) {
    events.push({ type: `xstate.done.actor.${child}`, output: OUTPUT[child] ?? {} } as EventObject);
    events.push({ type: `xstate.error.actor.${child}`, error: failure } as EventObject);
  }
  return events;
}

const traversal = {
  events: eventsFor,
  serializeState: (s: Snap) =>
    JSON.stringify({ v: s.value, failed: s.context.current?.failedPhase ?? null, done: s.context.history.length > 0 }),
};
interface ModelStep {
  event: EventObject & Record<string, unknown>;
  state: Snap;
}
// The model's events include the actors' done/error events, which RestoreEvent does not list.
const graphOptions = traversal as never;
const adjacency = getAdjacencyMap(restoreMachine, graphOptions) as unknown as Record<
  string,
  { state: Snap; transitions: Record<string, ModelStep> }
>;
const toState = getShortestPaths(restoreMachine, graphOptions) as unknown as Array<{ state: Snap; steps: ModelStep[] }>;
const transitions = Object.values(adjacency).flatMap(({ state, transitions: out }) =>
  Object.values(out).map(({ event, state: next }) => ({ from: state, event, to: next })),
);

function pathTo(s: Snap) {
  const key = traversal.serializeState(s);
  const path = toState.find((p) => traversal.serializeState(p.state) === key);
  if (!path) throw new Error(`no path to ${key}`);
  return path.steps.slice(1).map((st) => st.event);
}

/** A walked transition, in the oracle's words. */
function situationOf(t: { from: Snap; event: ModelStep['event'] }) {
  return restoreSituation(stateName(t.from.value), t.from.context.current?.failedPhase, t.event);
}

function checkInvariants(c: RestoreContext, state: string, event: EventObject, before: string): void {
  const resting = ['idle', 'done'].includes(state);
  if (resting) expect(c.current).toBeUndefined();
  else expect(c.current?.restoreId).toBe('r1');
  // Nothing destroying runs without a plan, and the plan is the preflight's.
  if (!resting && !['running.preflight', 'failed'].includes(state)) expect(c.current?.plan).toEqual(plan);
  if (state === 'failed') {
    expect(c.current?.reason).toBe('boom');
    expect(c.current?.failedPhase).toBeTruthy();
  }
  if (event.type === 'ABORT' && before === 'failed' && state === 'idle') expect(c.last?.result).toBe('aborted');
  if (state === 'done') expect(c.last).toMatchObject({ backupId: 'b1', result: 'restored', finishedAt: T0 + 9 });
}

describe('the restore machine, walked transition by transition', () => {
  it('reaches every phase of the seed, in order, and the resting states', () => {
    const states = new Set(toState.map((p) => stateName(p.state.value)));
    for (const s of [
      'idle',
      'running.preflight',
      'running.stopServices',
      'running.formatHome',
      'running.restoreHome',
      'running.markers',
      'awaitingReboot',
      'initrd',
      'awaitingFirstBoot',
      'postRestore.grub',
      'postRestore.moduleRestores',
      'postRestore.drbd',
      'postRestore.finish',
      'done',
      'failed',
    ]) {
      expect(states).toContain(s);
    }
  });

  it('goes where the oracle says on every transition the graph finds, and uses every row of the oracle', () => {
    const verdict = judge(
      RESTORE_ORACLE,
      transitions.map((t) => ({ ...situationOf(t), to: stateName(t.to.value) })),
    );
    expect(verdict.missing).toEqual([]);
    expect(verdict.wrong).toEqual([]);
    expect(verdict.unexercised).toEqual([]);
    console.info(summary('restore', RESTORE_ORACLE));
  });

  for (const restartEachStep of [false, true]) {
    describe(restartEachStep ? 'with a process restart after every step' : 'in one process', () => {
      for (const t of transitions) {
        const situation = situationOf(t);
        const row = RESTORE_ORACLE.lookup(situation);
        const failedAt = t.from.context.current?.failedPhase;
        const from = `${stateName(t.from.value)}${failedAt ? ` (failed at ${failedAt})` : ''}${t.from.context.history.length ? ' (after an earlier restore)' : ''}`;
        const ev = t.event.type === 'RESUME' ? `RESUME${t.event.inInitrd ? ' in the initrd' : ''}` : t.event.type;
        const name = `${from} --${ev}--> ${row?.next ?? '(no row in the oracle)'}`;
        it(name, async () => {
          expect(row, `the oracle has no row for ${keyOf(situation)}`).toBeDefined();
          const driver = new MachineDriver(restoreMachine, Object.keys(restoreActors));
          try {
            for (const event of [...pathTo(t.from), t.event]) {
              const before = stateName(driver.snapshot.value);
              await driver.send(event as never);
              if (restartEachStep) {
                await driver.restart();
                for (const child of Object.keys(driver.snapshot.children)) expect(driver.pending.has(child)).toBe(true);
              }
              checkInvariants(driver.snapshot.context as RestoreContext, stateName(driver.snapshot.value), event, before);
            }
            expect(stateName(driver.snapshot.value)).toBe(row!.next);
          } finally {
            driver.stop();
          }
        });
      }
    });
  }

  it('formats /home only after the backup was proven readable', () => {
    for (const p of toState) {
      const names = p.steps.map((s) => stateName(s.state.value));
      const format = names.indexOf('running.formatHome');
      if (format < 0) continue;
      const proven = p.steps.findIndex((s) => s.event.type === 'xstate.done.actor.checkBackupReadable');
      expect(proven).toBeGreaterThanOrEqual(0);
      expect(proven).toBeLessThan(format);
    }
  });

  it('can be aborted only while nothing was destroyed', () => {
    for (const t of transitions.filter((x) => x.event.type === 'ABORT' && stateName(x.from.value) === 'failed')) {
      const phase = t.from.context.current?.failedPhase ?? '';
      expect(stateName(t.to.value)).toBe(NOT_YET_DESTRUCTIVE.has(phase) ? 'idle' : 'failed');
    }
    const abortable = transitions.filter((x) => x.event.type === 'ABORT' && stateName(x.to.value) === 'idle');
    expect(abortable.length).toBeGreaterThan(0);
  });

  it('runs the initrd phase only in the initrd, and post.restore only outside it', async () => {
    const driver = new MachineDriver(restoreMachine, Object.keys(restoreActors));
    await driver.send({ type: 'CONFIRM_RESTORE', now: T0, restoreId: 'r1', backupId: 'b1' });
    for (const src of ['checkBackupReadable', 'stopServices', 'formatHome', 'restoreHome', 'writeMarkers']) {
      await driver.send({ type: `xstate.done.actor.${src}`, output: OUTPUT[src] ?? {} });
    }
    expect(stateName(driver.snapshot.value)).toBe('awaitingReboot');
    await driver.send({ type: 'RESUME', now: T0, inInitrd: false });
    expect(stateName(driver.snapshot.value)).toBe('awaitingReboot');
    await driver.send({ type: 'RESUME', now: T0, inInitrd: true });
    expect(stateName(driver.snapshot.value)).toBe('initrd');
    await driver.send({ type: 'xstate.done.actor.restoreSystem', output: {} });
    await driver.send({ type: 'RESUME', now: T0, inInitrd: true });
    expect(stateName(driver.snapshot.value)).toBe('awaitingFirstBoot');
    await driver.send({ type: 'RESUME', now: T0, inInitrd: false });
    expect(stateName(driver.snapshot.value)).toBe('postRestore.grub');
    driver.stop();
  });

  it('starts an interrupted format or restore of /home again from the format', async () => {
    const driver = new MachineDriver(restoreMachine, Object.keys(restoreActors));
    await driver.send({ type: 'CONFIRM_RESTORE', now: T0, restoreId: 'r1', backupId: 'b1' });
    for (const src of ['checkBackupReadable', 'stopServices', 'formatHome'])
      await driver.send({ type: `xstate.done.actor.${src}`, output: OUTPUT[src] ?? {} });
    await driver.send({ type: 'xstate.error.actor.restoreHome', error: failure });
    expect(driver.snapshot.context.current.failedPhase).toBe('restoreHome');
    await driver.send({ type: 'RESUME', now: T0, inInitrd: false });
    expect(stateName(driver.snapshot.value)).toBe('running.formatHome');
    driver.stop();
  });
});
