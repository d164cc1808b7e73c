/** One restore machine run in this process: what `restore`, `resume` and `abort` do, minus the printing. */
import { transition, type AnyMachineSnapshot } from 'xstate';
import { backupMachine, backupSnapshotOf, type BackupContext } from '../../machines/backup.js';
import { restoreMachine, type RestoreContext, type RestoreEvent } from '../../machines/restore.js';
import { stateName } from '../../machines/state-name.js';
import { TAGS } from '../../machines/tags.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { runMachine } from '../runner.js';
import type { LockHolder } from '../state/lock.js';
import { backupStore, restoreStore } from '../state/stores.js';
import { createTarget } from '../targets/index.js';
import { restoreImplementations, restoreSteps, type RestoreDeps, type RestoreSteps } from './wiring.js';
import { recoverFromMarkers } from './markers-only.js';

export type RestoreRunResult =
  | { result: 'busy'; holder: LockHolder }
  | { result: 'rested'; state: string; moved: boolean; context: RestoreContext; snapshot: AnyMachineSnapshot };

export async function runRestore(
  config: Config,
  log: Logger,
  command: string,
  event: (s: AnyMachineSnapshot) => RestoreEvent | undefined,
  /** The phases to run; the crash harness passes wrapped ones. */
  steps?: (deps: RestoreDeps) => RestoreSteps,
): Promise<RestoreRunResult> {
  const deps = { config, target: await createTarget(config.target, { stateDir: config.paths.state, host: config.host }), log };
  const machine = restoreMachine.provide({ actors: restoreImplementations(deps, steps ? steps(deps) : restoreSteps(deps)) });
  const outcome = await runMachine({
    machine,
    name: 'restore',
    stateDir: config.paths.state,
    store: restoreStore(config),
    fallback: () => recoverFromMarkers(config, log),
    log,
    command,
    event,
    onState: (state) => log.info({ state }, `→ ${state}`),
    // The restored root carries the backup machine's state from the moment the system was
    // copied: written off here, under the lock the backup also takes, once the restore is done.
    whileLocked: (after) => {
      const last = (after.context as RestoreContext).last;
      if (last?.result !== 'restored' || last.finishedAt === undefined) return;
      const reason = `the system was restored from backup ${last.backupId} while this run was copying it`;
      if (abandonInterruptedBackup(config, last.finishedAt, reason)) {
        log.info('the backup run that was copying the system at backup time was written off');
      }
    },
  });
  if (outcome.kind === 'busy') return { result: 'busy', holder: outcome.holder };
  return {
    result: 'rested',
    state: stateName(outcome.after.value),
    moved: outcome.moved,
    context: outcome.after.context as RestoreContext,
    snapshot: outcome.after,
  };
}

/** The saved restore state, for commands that only look. */
export function loadRestoreState(config: Config): { state: string; context: RestoreContext; snapshot: AnyMachineSnapshot } | undefined {
  const saved = restoreStore(config).load() as { value: unknown; context: RestoreContext } | undefined;
  if (!saved) return undefined;
  const snapshot = restoreMachineSnapshot(saved);
  return { state: stateName(saved.value), context: saved.context, snapshot };
}

function restoreMachineSnapshot(saved: { value: unknown; context: RestoreContext }): AnyMachineSnapshot {
  return restoreMachine.resolveState({ value: saved.value as never, context: saved.context }) as AnyMachineSnapshot;
}

/**
 * A run that began before the restore ended can never finish: it was copying
 * the system that the restore replaced. It is written off with the machine's
 * own ABANDON transition (pure: no actor is started), keeping the history; a
 * run begun after the restore is left alone. The caller holds the lock.
 */
export function abandonInterruptedBackup(config: Config, restoredAt: number, reason: string): boolean {
  const store = backupStore(config);
  const saved = store.load() as { value: unknown; context: BackupContext } | undefined;
  if (!saved) return false;
  const snapshot = backupSnapshotOf(saved);
  if (!snapshot.hasTag(TAGS.inProgress) || (saved.context.run?.startedAt ?? 0) >= restoredAt) return false;
  const [next] = transition(backupMachine, snapshot, { type: 'ABANDON', now: Date.now(), reason });
  store.save(backupMachine.getPersistedSnapshot(next));
  return true;
}
