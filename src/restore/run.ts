/** One restore machine run in this process: what `restore`, `resume` and `abort` do, minus the printing. */
import { createActor, fromPromise, type AnyMachineSnapshot } from 'xstate';
import { backupActors, backupMachine } from '../../machines/backup.js';
import { restoreMachine, type RestoreContext, type RestoreEvent } from '../../machines/restore.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { runMachine, stateName } from '../runner.js';
import type { LockHolder } from '../state/lock.js';
import { backupStore, restoreStore } from '../state/stores.js';
import { createTarget } from '../targets/index.js';
import { restoreImplementations, restoreSteps, type RestoreDeps, type RestoreSteps } from './wiring.js';
import { recoverFromMarkers } from './markers-only.js';

export const RESTING = ['idle', 'awaitingReboot', 'awaitingFirstBoot', 'done', 'failed'];

export type RestoreRunResult =
  | { result: 'busy'; holder: LockHolder }
  | { result: 'rested'; state: string; moved: boolean; context: RestoreContext };

export async function runRestore(
  config: Config,
  log: Logger,
  command: string,
  event: (s: AnyMachineSnapshot) => RestoreEvent | undefined,
  /** The phases to run; the crash harness passes wrapped ones. */
  steps?: (deps: RestoreDeps) => RestoreSteps,
): Promise<RestoreRunResult> {
  const deps = { config, target: await createTarget(config.target), log };
  const machine = restoreMachine.provide({ actors: restoreImplementations(deps, steps ? steps(deps) : restoreSteps(deps)) });
  const outcome = await runMachine({
    machine,
    name: 'restore',
    stateDir: config.paths.state,
    store: restoreStore(config),
    fallback: () => recoverFromMarkers(config, log),
    log,
    command,
    isResting: (s) => RESTING.includes(stateName(s.value)),
    event,
    onState: (state) => log.info({ state }, `→ ${state}`),
  });
  if (outcome.kind === 'busy') return { result: 'busy', holder: outcome.holder };
  return {
    result: 'rested',
    state: stateName(outcome.after.value),
    moved: outcome.moved,
    context: outcome.after.context as RestoreContext,
  };
}

/** The saved restore state, for commands that only look. */
export function loadRestoreState(config: Config): { state: string; context: RestoreContext } | undefined {
  const saved = restoreStore(config).load() as { value: unknown; context: RestoreContext } | undefined;
  return saved ? { state: stateName(saved.value), context: saved.context } : undefined;
}

/**
 * The restored root carries the backup machine's state from the moment the
 * system was copied: a run in progress that can never finish. It is written
 * off, keeping the history. The caller holds the lock.
 */
export function abandonInterruptedBackup(config: Config, reason: string): boolean {
  const store = backupStore(config);
  const saved = store.load() as AnyMachineSnapshot | undefined;
  if (!saved || stateName(saved.value).split('.')[0] !== 'running') return false;
  const idle = Object.fromEntries(Object.keys(backupActors).map((k) => [k, fromPromise(() => new Promise<never>(() => undefined))]));
  const actor = createActor(backupMachine.provide({ actors: idle as unknown as typeof backupActors }), { snapshot: saved });
  actor.start();
  actor.send({ type: 'ABANDON', now: Date.now(), reason });
  store.save(actor.getPersistedSnapshot());
  actor.stop();
  return true;
}
