/** One backup machine run in this process: what `tick` and `backup` do, minus the printing. */
import { backupMachine, type BackupContext, type RetentionWarning } from '../../machines/backup.js';
import type { HistoryEntry } from '../../machines/types.js';
import type { Config } from '../config/schema.js';
import { EXIT, UserError } from '../errors.js';
import type { Logger } from '../log.js';
import { runMachine } from '../runner.js';
import type { LockHolder } from '../state/lock.js';
import { SnapshotStore } from '../state/store.js';
import { restoreInProgress } from '../state/stores.js';
import { createTarget } from '../targets/index.js';
import type { Target } from '../targets/target.js';
import { backupImplementations, backupSteps, type BackupSteps } from './wiring.js';

export interface BackupRunRequest {
  config: Config;
  log: Logger;
  kind: 'tick' | 'backup';
  runId: string;
  signal?: AbortSignal;
  target?: Target;
  /** The steps to run; the crash harness passes wrapped ones. */
  steps?: (target: Target) => BackupSteps;
}

export type BackupRunResult =
  | { result: 'busy'; holder: LockHolder }
  | { result: 'not-due' }
  | { result: 'restoring'; state: string }
  /** retentionWarning: this run's retention failed (the backup itself is published and counts). */
  | { result: 'success'; entry: HistoryEntry; retentionWarning?: RetentionWarning }
  /** exitCode: the failed step's error's (EXIT.target for a full disk, EXIT.config for a failing module …). */
  | { result: 'failed'; entry: HistoryEntry; exitCode: number };

export async function runBackup(r: BackupRunRequest): Promise<BackupRunResult> {
  const { config, log } = r;
  // A backup now would copy a half-restored system and could retire good backups.
  const restoring = restoreInProgress(config);
  if (restoring) return { result: 'restoring', state: restoring };
  const target = r.target ?? (await createTarget(config.target, { stateDir: config.paths.state, host: config.host }));
  let failure: unknown;
  const deps = { config, target, log, ...(r.signal ? { signal: r.signal } : {}), onStepError: (e: unknown) => (failure = e) };
  const machine = backupMachine.provide({ actors: backupImplementations(deps, r.steps ? r.steps(target) : backupSteps(deps)) });
  const outcome = await runMachine({
    machine,
    name: 'backup',
    stateDir: config.paths.state,
    store: new SnapshotStore(config.paths.state, 'backup'),
    log,
    command: r.kind,
    event: (s) => {
      const id = unusedId(`${config.host}-${r.runId}`, s.context as BackupContext);
      return r.kind === 'tick'
        ? { type: 'TICK', now: Date.now(), schedule: config.schedule, runId: id, mode: config.mode }
        : { type: 'BACKUP_NOW', now: Date.now(), runId: id, mode: config.mode };
    },
    onState: (state) => log.info({ state }, `→ ${state}`),
  });
  if (outcome.kind === 'busy') return { result: 'busy', holder: outcome.holder };
  const before = outcome.before.context as BackupContext;
  const after = outcome.after.context as BackupContext;
  const finished = after.history.filter((h) => !before.history.some((b) => b.id === h.id && b.finishedAt === h.finishedAt));
  const last = finished.at(-1);
  if (!last) return { result: 'not-due' };
  if (last.result === 'success') {
    const warning = after.retentionWarning?.id === last.id ? after.retentionWarning : undefined;
    return { result: 'success', entry: last, ...(warning ? { retentionWarning: warning } : {}) };
  }
  return { result: 'failed', entry: last, exitCode: failure instanceof UserError ? failure.exitCode : EXIT.failed };
}

/**
 * Ids are the host and the start time to the second; a second run within the
 * same second (a quick backup, then another) gets a suffix instead of the
 * first one's id, which the target would refuse at publish.
 */
export function unusedId(base: string, context: BackupContext): string {
  const taken = new Set([...context.history.map((h) => h.id), context.run?.id, context.lastSuccess?.id, context.lastFailure?.id]);
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}-${n}`;
  return id;
}
