/**
 * Model-based tests: @xstate/graph walks the backup machine's graph; every
 * transition (state × event) becomes a path that is replayed against the
 * machine running with hand-driven actors, once straight and once with a
 * process restart (persist, restore) after every step. Each step is checked
 * against invariants written independently of the machine, and where each
 * transition must lead comes from the hand-written oracle (backup.oracle.ts),
 * not from the machine: a wrong target state fails.
 */
import { describe, expect, it } from 'vitest';
import { getAdjacencyMap, getShortestPaths } from '@xstate/graph';
import { createMachine, type AnyStateMachine, type EventObject } from 'xstate';
import { backupActors, backupMachine, HISTORY_LIMIT, type BackupContext } from '../../machines/backup.js';
import { backoffAfter, type Schedule } from '../../machines/schedule.js';
import { stateName } from '../../machines/state-name.js';
import { BackupDriver } from './backup-driver.js';
import { BACKUP_ORACLE, backupSituation, type BackupFacts } from './backup.oracle.js';
import { MachineDriver } from './machine-driver.js';
import { judge, keyOf, summary } from './oracle.js';

const T0 = Date.UTC(2026, 0, 1, 12);
const HOUR = 3_600_000;
const EVERY = 6 * HOUR;
const schedule: Schedule = { kind: 'every', ms: EVERY };
const layout = {
  root: { mountPoint: '/', device: '/dev/vda1', fsType: 'xfs' },
  boot: { mountPoint: '/boot', device: '/dev/vda2', fsType: 'xfs' },
  home: { mountPoint: '/home', device: '/dev/vda3', fsType: 'xfs' },
};
const dump = { bytes: 1000, sha256: 'ab'.repeat(32), startedAt: T0 + 10, finishedAt: T0 + 20 };
const snapshot = { vg: 'vg0', name: 'syn3snap_r1', origin: 'home', takenAt: T0 + 8, freezeWindowMs: 120, freezers: ['/m/db.freeze'] };
const OUTPUTS: Record<string, unknown> = {
  checkReady: { checked: [] },
  syncSystem: { warnings: [] },
  recordLayout: layout,
  runSpoolModules: { modules: [] },
  takeSnapshot: snapshot,
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
  takeSnapshot: 'snapshot',
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
    // The same commands with mode: snapshot in the configuration.
    { type: 'TICK', now: T0, schedule, runId: 'r1', mode: 'snapshot' } as EventObject,
    { type: 'BACKUP_NOW', now: T0, runId: 'r1', mode: 'snapshot' } as EventObject,
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
  serializeState: (s: Snap) =>
    JSON.stringify({ v: s.value, mode: s.context.run?.mode, failing: s.context.consecutiveFailures > 0, ok: !!s.context.lastSuccess }),
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
  if (state === 'running.snapshot' || state === 'running.dump') {
    // A run reaches the snapshot step only in snapshot mode, and a spool run's dump has no snapshot.
    if (state === 'running.snapshot') expect(c.run?.mode).toBe('snapshot');
    if (c.run?.mode !== 'snapshot') expect(c.run?.snapshot).toBeUndefined();
  }
  if (lastEvent?.type === 'xstate.done.actor.publishBackup') {
    expect(c.history.at(-1)?.freezeWindowMs).toBe(c.run?.mode === 'snapshot' ? 120 : undefined);
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
interface Walk {
  toState: Array<{ state: Snap; steps: ModelStep[] }>;
  transitions: Array<{ from: Snap; event: ModelEvent; to: Snap }>;
}

/** Every state the graph reaches, a shortest path to each, and every transition (state × event) out of them. */
function walk(machine: AnyStateMachine): Walk {
  const graphOptions = traversal as never;
  const adjacency = getAdjacencyMap(machine, graphOptions) as unknown as Record<
    string,
    { state: Snap; transitions: Record<string, ModelStep> }
  >;
  const toState = getShortestPaths(machine, graphOptions) as unknown as Walk['toState'];
  const transitions = Object.values(adjacency).flatMap(({ state, transitions: out }) =>
    Object.values(out).map(({ event, state: next }) => ({ from: state, event, to: next })),
  );
  return { toState, transitions };
}

const { toState, transitions } = walk(backupMachine);

function pathTo(w: Walk, s: Snap) {
  const key = traversal.serializeState(s);
  const path = w.toState.find((p) => traversal.serializeState(p.state as Snap) === key);
  if (!path) throw new Error(`no path to ${key}`);
  return path.steps.slice(1).map((st) => st.event);
}

function factsOf(c: BackupContext): BackupFacts {
  return {
    lastSuccessAt: c.lastSuccess?.finishedAt,
    lastFailureAt: c.lastFailure?.finishedAt,
    consecutiveFailures: c.consecutiveFailures,
    mode: c.run?.mode,
  };
}

/** A walked transition, in the oracle's words. */
function situationOf(t: { from: Snap; event: ModelEvent }) {
  return backupSituation(stateName(t.from.value), factsOf(t.from.context), t.event, EVERY);
}

/** What the graph found, each transition with the state the machine under walk reached. */
function walkedAgainstOracle(w: Walk) {
  return w.transitions.map((t) => ({ ...situationOf(t), to: stateName(t.to.value) }));
}

function pastOf(c: BackupContext): string {
  if (c.lastSuccess && c.consecutiveFailures) return ' (after a success, then a failure)';
  if (c.lastSuccess) return ' (after a success)';
  if (c.consecutiveFailures) return ' (after a failure)';
  return '';
}

/** Replays a path on `machine` with hand-driven actors, optionally restarting from the persisted JSON after every step. */
async function replay(machine: AnyStateMachine, events: ModelEvent[], restartEachStep: boolean): Promise<string> {
  const driver = new MachineDriver(machine, Object.keys(backupActors));
  try {
    for (const event of events) {
      await driver.send(event as never);
      if (restartEachStep) {
        await driver.restart();
        // A restored in-flight step is invoked again (actors must be idempotent).
        for (const child of Object.keys(driver.snapshot.children)) expect(driver.pending.has(child)).toBe(true);
      }
      checkInvariants(driver.snapshot.context as BackupContext, stateName(driver.snapshot.value), event);
    }
    return stateName(driver.snapshot.value);
  } finally {
    driver.stop();
  }
}

/** The backup machine with one wrong transition: verify's onDone goes to retention, skipping publish. */
function machineSkippingPublish(): AnyStateMachine {
  const config = backupMachine.config;
  const running = config.states!.running!;
  const verify = running.states!.verify!;
  const invoke = verify.invoke as { onDone: object };
  const broken = {
    ...config,
    states: {
      ...config.states,
      running: {
        ...running,
        states: { ...running.states, verify: { ...verify, invoke: { ...invoke, onDone: { ...invoke.onDone, target: 'retention' } } } },
      },
    },
  };
  return createMachine(broken as never, backupMachine.implementations as never);
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
      'running.snapshot',
      'running.dump',
      'running.verify',
      'running.publish',
      'running.retention',
    ]) {
      expect(states).toContain(s);
    }
  });

  it('goes where the oracle says on every transition the graph finds, and uses every row of the oracle', () => {
    const verdict = judge(BACKUP_ORACLE, walkedAgainstOracle({ toState, transitions }));
    expect(verdict.missing).toEqual([]);
    expect(verdict.wrong).toEqual([]);
    expect(verdict.unexercised).toEqual([]);
    console.info(summary('backup', BACKUP_ORACLE));
  });

  for (const restartEachStep of [false, true]) {
    describe(restartEachStep ? 'with a process restart after every step' : 'in one process', () => {
      for (const t of transitions) {
        const situation = situationOf(t);
        const row = BACKUP_ORACLE.lookup(situation);
        const tick =
          t.event.type === 'TICK' ? `TICK ${t.event.now === T0 ? 'at once' : 'a month later'} (${situation.when})` : t.event.type;
        const name = `${stateName(t.from.value)}${pastOf(t.from.context)} --${tick}--> ${row?.next ?? '(no row in the oracle)'}`;
        it(name, async () => {
          expect(row, `the oracle has no row for ${keyOf(situation)}`).toBeDefined();
          const reached = await replay(backupMachine, [...pathTo({ toState, transitions }, t.from), t.event], restartEachStep);
          expect(reached).toBe(row!.next);
        });
      }
    });
  }

  describe('the oracle check, against a machine with a wrong transition', () => {
    const broken = machineSkippingPublish();
    const brokenWalk = walk(broken);

    it('reports the wrong target state: verify done goes to retention, the oracle says publish', () => {
      const verdict = judge(BACKUP_ORACLE, walkedAgainstOracle(brokenWalk));
      expect(verdict.missing).toEqual([]);
      expect(verdict.wrong).toEqual(['running.verify --done--> running.retention, but the oracle says running.publish']);
      // publish is never reached, so its rows are left unexercised too.
      expect(verdict.unexercised).toContain('running.publish --done--> running.retention');
    });

    it('fails the replay of that transition, straight and with restarts', async () => {
      const t = brokenWalk.transitions.find(
        (x) => stateName(x.from.value) === 'running.verify' && x.event.type === 'xstate.done.actor.verifyDump',
      );
      expect(t).toBeDefined();
      const row = BACKUP_ORACLE.lookup(situationOf(t!))!;
      for (const restartEachStep of [false, true]) {
        const reached = await replay(broken, [...pathTo(brokenWalk, t!.from), t!.event], restartEachStep);
        expect(reached).toBe('running.retention');
        expect(reached).not.toBe(row.next);
      }
    });
  });

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

  it('in snapshot mode takes the snapshot after the spool step and hands it to the dump', async () => {
    const driver = new BackupDriver();
    await driver.send({ type: 'BACKUP_NOW', now: T0, runId: 'r1', mode: 'snapshot' });
    for (const src of ['checkReady', 'syncSystem', 'recordLayout', 'runSpoolModules']) {
      await driver.send({ type: `xstate.done.actor.${src}`, output: OUTPUTS[src] });
    }
    expect(stateName(driver.snapshot.value)).toBe('running.snapshot');
    await driver.send({ type: 'xstate.done.actor.takeSnapshot', output: snapshot });
    expect(driver.invocations.find((i) => i.src === 'dumpHome')?.input).toEqual({ runId: 'r1', layout, snapshot });
    driver.stop();
  });

  it('ignores a tick that comes before the schedule is due', async () => {
    const driver = new BackupDriver();
    await driver.send({ type: 'BACKUP_NOW', now: T0, runId: 'r1' });
    for (const src of Object.keys(OUTPUTS).filter((a) => a !== 'takeSnapshot'))
      await driver.send({ type: `xstate.done.actor.${src}`, output: OUTPUTS[src] });
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
