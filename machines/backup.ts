/**
 * The backup, as the seed has it: every hour a TICK; the program decides
 * whether a backup is due; after a preflight check, / and /boot are rsynced
 * into the system copy and their file systems' identity is recorded; the spool modules dump their data; in
 * snapshot mode the databases are briefly frozen and an LVM snapshot of /home is taken; /home (or its
 * snapshot) is xfsdumped to the target; then, as this project adds, the dump is read back
 * and verified, published, and only then are old generations removed.
 * Pure: time and ids come in events.
 */
import { assign, fromPromise, setup } from 'xstate';
import { isDue, backoffAfter, type Schedule } from './schedule.js';
import { namesOf, stepOfActor } from './step-table.js';
import { TAGS } from './tags.js';
import { failureOf, type BackupEntry, type DumpResult, type HistoryEntry, type SnapshotTaken, type SystemLayout } from './types.js';

export const HISTORY_LIMIT = 100;

export type BackupMode = 'spool' | 'snapshot';

export interface CurrentRun {
  id: string;
  trigger: 'schedule' | 'manual';
  /** Absent in runs saved before snapshot mode: those were spool runs. */
  mode?: BackupMode;
  startedAt: number;
  layout?: SystemLayout;
  snapshot?: SnapshotTaken;
  dump?: DumpResult;
  published?: BackupEntry;
}

/** A retention that failed after its backup was published: a warning until a later retention succeeds. */
export interface RetentionWarning {
  /** The backup whose run it was. */
  id: string;
  reason: string;
  at: number;
}

export interface BackupContext {
  run?: CurrentRun;
  retentionWarning?: RetentionWarning;
  lastSuccess?: HistoryEntry;
  lastFailure?: HistoryEntry;
  consecutiveFailures: number;
  retryAt?: number;
  history: HistoryEntry[];
}

export type BackupEvent =
  | { type: 'TICK'; now: number; schedule: Schedule; runId: string; mode?: BackupMode }
  | { type: 'BACKUP_NOW'; now: number; runId: string; mode?: BackupMode }
  /** A run that can never finish: the system it was copying was replaced by a restore. */
  | { type: 'ABANDON'; now: number; reason: string };

export interface RunInput {
  runId: string;
}
export interface DumpInput extends RunInput {
  layout: SystemLayout;
  /** Snapshot mode: dump this snapshot instead of the live /home. */
  snapshot?: SnapshotTaken;
}
export interface VerifyInput extends RunInput {
  dump: DumpResult;
}
export interface PublishInput extends RunInput {
  startedAt: number;
  layout: SystemLayout;
  dump: DumpResult;
}
export interface RetentionInput extends RunInput {
  published: BackupEntry;
}

/**
 * The steps of a run, in the seed's order, and the actor that does each: the
 * names the log, status and tests use. The machine's `running` states are
 * exactly these (a test holds them to it).
 */
export const BACKUP_STEPS = {
  preflight: 'checkReady',
  systemSync: 'syncSystem',
  layout: 'recordLayout',
  spool: 'runSpoolModules',
  snapshot: 'takeSnapshot',
  dump: 'dumpHome',
  verify: 'verifyDump',
  publish: 'publishBackup',
  retention: 'applyRetention',
} as const;
export type BackupStep = keyof typeof BACKUP_STEPS;
export type BackupActorName = (typeof BACKUP_STEPS)[BackupStep];
export const BACKUP_STEP_NAMES = namesOf(BACKUP_STEPS);
/** The steps only a snapshot-mode run has (a spool run goes from spool straight to dump). */
export const SNAPSHOT_MODE_STEPS: readonly BackupStep[] = ['snapshot'];
/** The step an actor does: the inverse of BACKUP_STEPS. */
export const STEP_OF_BACKUP_ACTOR = stepOfActor(BACKUP_STEPS);

/** Stand-ins that the runner replaces with the real actors (machine.provide). */
function notProvided<O, I>(name: string) {
  return fromPromise<O, I>(async () => {
    throw new Error(`actor ${name} was not provided`);
  });
}

export const backupActors = {
  checkReady: notProvided<{ checked: string[] }, RunInput>('checkReady'),
  syncSystem: notProvided<{ warnings: string[] }, RunInput>('syncSystem'),
  recordLayout: notProvided<SystemLayout, RunInput>('recordLayout'),
  runSpoolModules: notProvided<{ modules: string[] }, RunInput>('runSpoolModules'),
  takeSnapshot: notProvided<SnapshotTaken, RunInput>('takeSnapshot'),
  dumpHome: notProvided<DumpResult, DumpInput>('dumpHome'),
  verifyDump: notProvided<{ bytes: number; sha256: string }, VerifyInput>('verifyDump'),
  publishBackup: notProvided<BackupEntry & { publishedAt: number }, PublishInput>('publishBackup'),
  applyRetention: notProvided<{ deleted: string[]; finishedAt: number }, RetentionInput>('applyRetention'),
};

function runOf(context: BackupContext): CurrentRun {
  if (!context.run) throw new Error('no backup run in progress');
  return context.run;
}

function pushHistory(history: HistoryEntry[], entry: HistoryEntry): HistoryEntry[] {
  return [...history, entry].slice(-HISTORY_LIMIT);
}

function failedEntry(run: CurrentRun, at: number, step: string, reason: string): HistoryEntry {
  return { id: run.id, result: 'failed', startedAt: run.startedAt, finishedAt: at, durationMs: at - run.startedAt, step, reason };
}

/** A failed step: the machine records why and where, and rests in `failed`. */
function failAt(step: string) {
  return { target: '#backup.failed', actions: { type: 'recordFailure' as const, params: { step } } };
}

/** A step that needs only the run's id and keeps nothing of its result. */
function simpleStep<const K extends 'checkReady' | 'syncSystem'>(id: K, step: string, next: string) {
  return {
    invoke: {
      id,
      src: id,
      input: ({ context }: { context: BackupContext }) => ({ runId: runOf(context).id }),
      onDone: { target: next },
      onError: failAt(step),
    },
  };
}

export const backupMachine = setup({
  types: {
    context: {} as BackupContext,
    events: {} as BackupEvent,
  },
  actors: backupActors,
  guards: {
    inSnapshotMode: ({ context }) => context.run?.mode === 'snapshot',
    isDue: ({ context, event }) =>
      event.type === 'TICK' &&
      isDue(event.schedule, { lastSuccessAt: context.lastSuccess?.finishedAt, retryAt: context.retryAt }, event.now),
  },
  actions: {
    recordFailure: assign(({ context, event }, params: { step: string }) => {
      const run = runOf(context);
      // Only invoke errors lead here; XState types them apart from BackupEvent.
      const failure = failureOf((event as unknown as { error: unknown }).error);
      const at = Number.isFinite(failure.at) ? failure.at : run.startedAt;
      const entry = failedEntry(run, at, params.step, failure.reason);
      const consecutiveFailures = context.consecutiveFailures + 1;
      return {
        run: undefined,
        lastFailure: entry,
        consecutiveFailures,
        retryAt: at + backoffAfter(consecutiveFailures),
        history: pushHistory(context.history, entry),
      };
    }),
    recordRetentionWarning: assign(({ context, event }) => {
      const run = runOf(context);
      const failure = failureOf((event as unknown as { error: unknown }).error);
      const at = Number.isFinite(failure.at) ? failure.at : run.startedAt;
      return { run: undefined, retentionWarning: { id: run.id, reason: failure.reason, at } };
    }),
    recordAbandoned: assign(({ context, event }) => {
      const run = runOf(context);
      const at = event.type === 'ABANDON' ? event.now : run.startedAt;
      const entry = failedEntry(run, at, 'abandoned', event.type === 'ABANDON' ? event.reason : 'abandoned');
      return { run: undefined, history: pushHistory(context.history, entry) };
    }),
    startRun: assign(({ event }) => ({
      run: {
        id: event.type === 'ABANDON' ? '' : event.runId,
        trigger: event.type === 'TICK' ? ('schedule' as const) : ('manual' as const),
        mode: event.type === 'ABANDON' ? ('spool' as const) : (event.mode ?? 'spool'),
        startedAt: event.now,
      },
    })),
  },
}).createMachine({
  id: 'backup',
  initial: 'idle',
  context: { consecutiveFailures: 0, history: [] },
  states: {
    idle: {
      tags: [TAGS.resting],
      on: {
        TICK: { guard: 'isDue', target: 'running', actions: 'startRun' },
        BACKUP_NOW: { target: 'running', actions: 'startRun' },
      },
    },
    running: {
      tags: [TAGS.inProgress],
      on: { ABANDON: { target: 'idle', actions: 'recordAbandoned' } },
      initial: 'preflight',
      states: {
        // Before anything is written: tools present, target reachable and mounted.
        preflight: simpleStep('checkReady', 'preflight', 'systemSync'),
        systemSync: simpleStep('syncSystem', 'systemSync', 'layout'),
        // What a restore on new disks needs first: device, type, UUID, label and geometry of /, /boot and /home.
        layout: {
          invoke: {
            id: 'recordLayout',
            src: 'recordLayout',
            input: ({ context }) => ({ runId: runOf(context).id }),
            onDone: {
              target: 'spool',
              actions: assign({ run: ({ context, event }) => ({ ...runOf(context), layout: event.output }) }),
            },
            onError: failAt('layout'),
          },
        },
        spool: {
          invoke: {
            id: 'runSpoolModules',
            src: 'runSpoolModules',
            input: ({ context }) => ({ runId: runOf(context).id }),
            onDone: [{ guard: 'inSnapshotMode', target: 'snapshot' }, { target: 'dump' }],
            onError: failAt('spool'),
          },
        },
        // Snapshot mode: the databases frozen (modules/*.freeze) while LVM snapshots /home, then thawed.
        snapshot: {
          invoke: {
            id: 'takeSnapshot',
            src: 'takeSnapshot',
            input: ({ context }) => ({ runId: runOf(context).id }),
            onDone: {
              target: 'dump',
              actions: assign({ run: ({ context, event }) => ({ ...runOf(context), snapshot: event.output }) }),
            },
            onError: failAt('snapshot'),
          },
        },
        dump: {
          invoke: {
            id: 'dumpHome',
            src: 'dumpHome',
            input: ({ context }) => {
              const run = runOf(context);
              return { runId: run.id, layout: run.layout!, ...(run.snapshot ? { snapshot: run.snapshot } : {}) };
            },
            onDone: {
              target: 'verify',
              actions: assign({ run: ({ context, event }) => ({ ...runOf(context), dump: event.output }) }),
            },
            onError: failAt('dump'),
          },
        },
        verify: {
          invoke: {
            id: 'verifyDump',
            src: 'verifyDump',
            input: ({ context }) => ({ runId: runOf(context).id, dump: runOf(context).dump! }),
            // The read-back matched the checksum taken while writing: that one is the backup's.
            onDone: { target: 'publish' },
            onError: failAt('verify'),
          },
        },
        publish: {
          invoke: {
            id: 'publishBackup',
            src: 'publishBackup',
            input: ({ context }) => {
              const run = runOf(context);
              return { runId: run.id, startedAt: run.startedAt, layout: run.layout!, dump: run.dump! };
            },
            onDone: {
              target: 'retention',
              actions: assign(({ context, event }) => {
                const run = runOf(context);
                const { publishedAt, ...published } = event.output;
                const entry: HistoryEntry = {
                  id: run.id,
                  result: 'success',
                  startedAt: run.startedAt,
                  finishedAt: publishedAt,
                  durationMs: publishedAt - run.startedAt,
                  size: published.size,
                  ...(run.snapshot ? { freezeWindowMs: run.snapshot.freezeWindowMs } : {}),
                };
                return {
                  run: { ...run, published },
                  lastSuccess: entry,
                  consecutiveFailures: 0,
                  retryAt: undefined,
                  history: pushHistory(context.history, entry),
                };
              }),
            },
            onError: failAt('publish'),
          },
        },
        retention: {
          // The new backup is already published and counted as a success: a retention
          // failure never un-publishes it, but stays a warning until a retention succeeds.
          tags: [TAGS.destructive],
          invoke: {
            id: 'applyRetention',
            src: 'applyRetention',
            input: ({ context }) => ({ runId: runOf(context).id, published: runOf(context).published! }),
            onDone: { target: '#backup.idle', actions: assign({ run: undefined, retentionWarning: undefined }) },
            onError: { target: '#backup.idle', actions: 'recordRetentionWarning' },
          },
        },
      },
    },
    failed: {
      tags: [TAGS.resting, TAGS.failed],
      on: {
        TICK: { guard: 'isDue', target: 'running', actions: 'startRun' },
        BACKUP_NOW: { target: 'running', actions: 'startRun' },
      },
    },
  },
});

export type BackupMachine = typeof backupMachine;

/** A saved backup state (as the store holds it) as a snapshot, so callers ask its tags and can(). */
export function backupSnapshotOf(saved: { value: unknown; context: BackupContext }) {
  return backupMachine.resolveState({ value: saved.value as never, context: saved.context });
}
