/**
 * The restore, as the seed has it. After CONFIRM_RESTORE: the backup is
 * proven readable (before anything is destroyed), services that use /home are
 * stopped, /home is formatted and xfsrestored, the seed's marker files are
 * written, and the administrator is asked to reboot. In the initrd, / and
 * /boot are put back from the system copy. At the first boot, post.restore
 * reinstalls GRUB, runs the modules' restores and settles DRBD. Each phase is
 * saved before and after its side effect, so any process can resume it.
 * Pure: time and ids come in events.
 */
import { assign, fromPromise, setup } from 'xstate';
import { namesOf, stepOfActor } from './step-table.js';
import { TAGS } from './tags.js';
import { failureOf } from './types.js';
import type { RestorePlan } from './restore-types.js';

export type { RestorePlan } from './restore-types.js';

/**
 * The phases in the seed's order, and the actor that does each: the names the
 * log, status and tests use (a test holds the machine's states to them).
 */
export const RESTORE_PHASE_ACTORS = {
  preflight: 'checkBackupReadable',
  stopServices: 'stopServices',
  formatHome: 'formatHome',
  restoreHome: 'restoreHome',
  markers: 'writeMarkers',
  initrd: 'restoreSystem',
  grub: 'reinstallGrub',
  moduleRestores: 'runModuleRestores',
  drbd: 'settleDrbd',
  finish: 'finishRestore',
} as const;
export type RestorePhase = keyof typeof RESTORE_PHASE_ACTORS;
export type RestoreActorName = (typeof RESTORE_PHASE_ACTORS)[RestorePhase];
export const RESTORE_PHASES = namesOf(RESTORE_PHASE_ACTORS);
/** The phase an actor does: the inverse of RESTORE_PHASE_ACTORS. */
export const PHASE_OF_RESTORE_ACTOR = stepOfActor(RESTORE_PHASE_ACTORS);

/** Where the restore rests between processes: a new command or boot hook takes it on from here. */
export const RESTORE_RESTING_STATES = ['idle', 'awaitingReboot', 'awaitingFirstBoot', 'done', 'failed'] as const;
export type RestoreRestingState = (typeof RESTORE_RESTING_STATES)[number];

/** The phases that format or overwrite file systems; from the first of them on, abort is no longer safe. */
export const DESTRUCTIVE_PHASES: readonly RestorePhase[] = ['formatHome', 'restoreHome', 'initrd'];
const FIRST_DESTRUCTIVE = Math.min(...DESTRUCTIVE_PHASES.map((p) => RESTORE_PHASES.indexOf(p)));

export interface RestoreRecord {
  restoreId: string;
  backupId: string;
  startedAt: number;
  finishedAt?: number;
  result?: 'restored' | 'failed' | 'aborted';
  reason?: string;
}

export interface RestoreContext {
  current?: RestoreRecord & { plan?: RestorePlan; failedPhase?: RestorePhase };
  last?: RestoreRecord;
  history: RestoreRecord[];
}

export type RestoreEvent =
  | { type: 'CONFIRM_RESTORE'; now: number; restoreId: string; backupId: string }
  /** What the boot hooks and the administrator send; inInitrd says where it runs. */
  | { type: 'RESUME'; now: number; inInitrd: boolean }
  | { type: 'ABORT'; now: number };

export interface PhaseInput {
  restoreId: string;
  backupId: string;
  plan: RestorePlan;
}

function notProvided<O, I>(name: string) {
  return fromPromise<O, I>(async () => {
    throw new Error(`actor ${name} was not provided`);
  });
}

export const restoreActors = {
  checkBackupReadable: notProvided<RestorePlan, { restoreId: string; backupId: string }>('checkBackupReadable'),
  stopServices: notProvided<{ stopped: string[] }, PhaseInput>('stopServices'),
  formatHome: notProvided<{ device: string }, PhaseInput>('formatHome'),
  restoreHome: notProvided<{ entries: number }, PhaseInput>('restoreHome'),
  writeMarkers: notProvided<{ markers: string[] }, PhaseInput>('writeMarkers'),
  restoreSystem: notProvided<{ restored: string[] }, PhaseInput>('restoreSystem'),
  reinstallGrub: notProvided<{ devices: string[] }, PhaseInput>('reinstallGrub'),
  runModuleRestores: notProvided<{ modules: string[] }, PhaseInput>('runModuleRestores'),
  settleDrbd: notProvided<{ drbd: string }, PhaseInput>('settleDrbd'),
  finishRestore: notProvided<{ cleaned: string[]; finishedAt: number }, PhaseInput>('finishRestore'),
};

const HISTORY_LIMIT = 50;

function currentOf(context: RestoreContext) {
  if (!context.current) throw new Error('no restore in progress');
  return context.current;
}

function phaseInput({ context }: { context: RestoreContext }): PhaseInput {
  const c = currentOf(context);
  if (!c.plan) throw new Error('the restore has no plan yet');
  return { restoreId: c.restoreId, backupId: c.backupId, plan: c.plan };
}

/** One phase: invoke its actor, go on when it is done, stop in `failed` with the reason when not. */
function phase<const K extends Exclude<keyof typeof restoreActors, 'checkBackupReadable'>>(id: K, name: RestorePhase, next: string) {
  return {
    tags: DESTRUCTIVE_PHASES.includes(name) ? [TAGS.inProgress, TAGS.destructive] : [TAGS.inProgress],
    invoke: {
      id,
      src: id,
      input: phaseInput,
      onDone: { target: next },
      onError: { target: '#restore.failed', actions: { type: 'recordFailure' as const, params: { phase: name } } },
    },
  };
}

export const restoreMachine = setup({
  types: { context: {} as RestoreContext, events: {} as RestoreEvent },
  actors: restoreActors,
  guards: {
    inInitrd: ({ event }) => event.type === 'RESUME' && event.inInitrd,
    notInInitrd: ({ event }) => event.type === 'RESUME' && !event.inInitrd,
    failedAt: ({ context, event }, params: { phases: RestorePhase[]; initrd?: boolean }) =>
      event.type === 'RESUME' &&
      params.phases.includes(context.current?.failedPhase as RestorePhase) &&
      (params.initrd === undefined || event.inInitrd === params.initrd),
    abortIsSafe: ({ context }) => {
      const failed = context.current?.failedPhase;
      return !!failed && RESTORE_PHASES.indexOf(failed) < FIRST_DESTRUCTIVE;
    },
  },
  actions: {
    start: assign(({ event }) =>
      event.type === 'CONFIRM_RESTORE' ? { current: { restoreId: event.restoreId, backupId: event.backupId, startedAt: event.now } } : {},
    ),
    recordFailure: assign(({ context, event }, params: { phase: RestorePhase }) => {
      const failure = failureOf((event as unknown as { error: unknown }).error);
      return { current: { ...currentOf(context), failedPhase: params.phase, reason: failure.reason } };
    }),
    clearFailure: assign(({ context }) => ({ current: { ...currentOf(context), failedPhase: undefined, reason: undefined } })),
    finish: assign(({ context, event }, params: { result: 'restored' | 'aborted' }) => {
      const { plan: _plan, failedPhase: _failed, ...record } = currentOf(context);
      // An ABORT carries the time; the last phase's output does when the restore completes.
      const output = (event as unknown as { output?: { finishedAt?: number } }).output;
      const done: RestoreRecord = { ...record, result: params.result, finishedAt: 'now' in event ? event.now : output?.finishedAt };
      return { current: undefined, last: done, history: [...context.history, done].slice(-HISTORY_LIMIT) };
    }),
  },
}).createMachine({
  id: 'restore',
  initial: 'idle',
  context: { history: [] },
  states: {
    idle: { tags: [TAGS.resting], on: { CONFIRM_RESTORE: { target: 'running', actions: 'start' } } },
    running: {
      initial: 'preflight',
      states: {
        // Proves the backup complete and intact, and plans the devices, before anything is destroyed.
        preflight: {
          tags: [TAGS.inProgress],
          invoke: {
            id: 'checkBackupReadable',
            src: 'checkBackupReadable',
            input: ({ context }) => ({ restoreId: currentOf(context).restoreId, backupId: currentOf(context).backupId }),
            onDone: {
              target: 'stopServices',
              actions: assign({ current: ({ context, event }) => ({ ...currentOf(context), plan: event.output }) }),
            },
            onError: { target: '#restore.failed', actions: { type: 'recordFailure', params: { phase: 'preflight' } } },
          },
        },
        stopServices: phase('stopServices', 'stopServices', 'formatHome'),
        formatHome: phase('formatHome', 'formatHome', 'restoreHome'),
        restoreHome: phase('restoreHome', 'restoreHome', 'markers'),
        markers: phase('writeMarkers', 'markers', '#restore.awaitingReboot'),
      },
    },
    awaitingReboot: { tags: [TAGS.resting, TAGS.inProgress], on: { RESUME: { guard: 'inInitrd', target: 'initrd' } } },
    initrd: phase('restoreSystem', 'initrd', 'awaitingFirstBoot'),
    awaitingFirstBoot: { tags: [TAGS.resting, TAGS.inProgress], on: { RESUME: { guard: 'notInInitrd', target: 'postRestore' } } },
    postRestore: {
      initial: 'grub',
      states: {
        grub: phase('reinstallGrub', 'grub', 'moduleRestores'),
        moduleRestores: phase('runModuleRestores', 'moduleRestores', 'drbd'),
        drbd: phase('settleDrbd', 'drbd', 'finish'),
        // Markers off, post.restore disarmed, working files removed.
        finish: phase('finishRestore', 'finish', '#restore.done'),
      },
    },
    done: {
      tags: [TAGS.resting],
      entry: { type: 'finish', params: { result: 'restored' } },
      on: { CONFIRM_RESTORE: { target: 'running', actions: 'start' } },
    },
    failed: {
      tags: [TAGS.resting, TAGS.inProgress, TAGS.failed],
      on: {
        RESUME: [
          {
            guard: { type: 'failedAt', params: { phases: ['preflight'], initrd: false } },
            target: 'running.preflight',
            actions: 'clearFailure',
          },
          {
            guard: { type: 'failedAt', params: { phases: ['stopServices'], initrd: false } },
            target: 'running.stopServices',
            actions: 'clearFailure',
          },
          // An interrupted format or restore of /home starts again from an empty file system.
          {
            guard: { type: 'failedAt', params: { phases: ['formatHome', 'restoreHome'], initrd: false } },
            target: 'running.formatHome',
            actions: 'clearFailure',
          },
          {
            guard: { type: 'failedAt', params: { phases: ['markers'], initrd: false } },
            target: 'running.markers',
            actions: 'clearFailure',
          },
          { guard: { type: 'failedAt', params: { phases: ['initrd'], initrd: true } }, target: 'initrd', actions: 'clearFailure' },
          { guard: { type: 'failedAt', params: { phases: ['grub'], initrd: false } }, target: 'postRestore.grub', actions: 'clearFailure' },
          {
            guard: { type: 'failedAt', params: { phases: ['moduleRestores'], initrd: false } },
            target: 'postRestore.moduleRestores',
            actions: 'clearFailure',
          },
          { guard: { type: 'failedAt', params: { phases: ['drbd'], initrd: false } }, target: 'postRestore.drbd', actions: 'clearFailure' },
          {
            guard: { type: 'failedAt', params: { phases: ['finish'], initrd: false } },
            target: 'postRestore.finish',
            actions: 'clearFailure',
          },
        ],
        ABORT: { guard: 'abortIsSafe', target: 'idle', actions: { type: 'finish', params: { result: 'aborted' } } },
      },
    },
  },
});

export type RestoreMachine = typeof restoreMachine;

/** A saved restore state (as the store holds it) as a snapshot, so callers ask its tags and can(). */
export function restoreSnapshotOf(saved: { value: unknown; context: RestoreContext }) {
  return restoreMachine.resolveState({ value: saved.value as never, context: saved.context });
}
