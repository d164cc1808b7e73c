/**
 * `tick` (what cron runs every hour) and `backup` (now, whatever the
 * schedule): both drive the backup machine; they differ in the event sent.
 */
import { backupMachine, type BackupContext } from '../../machines/backup.js';
import type { HistoryEntry } from '../../machines/types.js';
import { backupImplementations } from '../backup/wiring.js';
import { EXIT, UserError } from '../errors.js';
import { formatBytes, formatMs } from '../format.js';
import { runMachine } from '../runner.js';
import { createTarget } from '../targets/index.js';
import { commandContext, printJson, type GlobalOptions } from './context.js';

export async function backupCommand(kind: 'tick' | 'backup', options: GlobalOptions & { json?: boolean }): Promise<number> {
  const { config, log, runId } = commandContext(options, kind);
  const abort = new AbortController();
  const stop = (signal: string) => {
    log.warn(`received ${signal}: stopping the run; the next tick starts it again`);
    abort.abort(new UserError('internal', `stopped by ${signal}`));
  };
  process.once('SIGINT', stop).once('SIGTERM', stop);
  const machine = backupMachine.provide({
    actors: backupImplementations({ config, target: createTarget(config.target), log, signal: abort.signal }),
  });
  const outcome = await runMachine({
    machine,
    name: 'backup',
    stateDir: config.paths.state,
    log,
    command: kind,
    isResting: (s) => !s.matches('running'),
    event: () =>
      kind === 'tick'
        ? { type: 'TICK', now: Date.now(), schedule: config.schedule, runId: `${config.host}-${runId}` }
        : { type: 'BACKUP_NOW', now: Date.now(), runId: `${config.host}-${runId}` },
    onState: (state) => log.info({ state }, `→ ${state}`),
  });
  if (outcome.kind === 'busy') {
    const msg = `a backup is already running (pid ${outcome.holder.pid}, since ${outcome.holder.since}); nothing to do`;
    if (options.json) printJson({ result: 'busy', holder: outcome.holder });
    else if (kind === 'backup' || process.stderr.isTTY) process.stderr.write(`${msg}\n`);
    log.info(msg);
    return EXIT.ok;
  }
  const before = outcome.before.context as BackupContext;
  const after = outcome.after.context as BackupContext;
  const finished = after.history.filter((h) => !before.history.some((b) => b.id === h.id && b.finishedAt === h.finishedAt));
  const last: HistoryEntry | undefined = finished.at(-1);
  if (!last) {
    if (options.json) printJson({ result: 'not-due' });
    else if (process.stderr.isTTY) process.stderr.write('no backup is due\n');
    return EXIT.ok;
  }
  if (options.json) printJson({ result: last.result, backup: last });
  if (last.result === 'success') {
    log.info({ id: last.id, size: last.size, durationMs: last.durationMs }, `backup ${last.id} done: ${formatBytes(last.size ?? 0)} in ${formatMs(last.durationMs)}`);
    return EXIT.ok;
  }
  // Logged at error level, a failure always reaches stderr, so cron mails it.
  log.error({ id: last.id, step: last.step }, `backup ${last.id} failed at ${last.step}: ${last.reason}`);
  return EXIT.failed;
}
