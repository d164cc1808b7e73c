/**
 * `tick` (what cron runs every hour) and `backup` (now, whatever the
 * schedule): both drive the backup machine; they differ in the event sent.
 */
import { runBackup } from '../backup/run.js';
import { checkModulesDirectory } from '../config/modules-dir.js';
import { EXIT, UserError } from '../errors.js';
import { formatBytes, formatMs } from '../format.js';
import { commandContext, printJson, type GlobalOptions } from './context.js';

export async function backupCommand(kind: 'tick' | 'backup', options: GlobalOptions & { json?: boolean }): Promise<number> {
  const { config, log, runId } = commandContext(options, kind);
  // A paths.modules typo is refused before anything runs; the missing default is said after a backup (not every idle tick).
  const modulesWarning = checkModulesDirectory(config);
  const abort = new AbortController();
  const stop = (signal: string) => {
    log.warn(`received ${signal}: stopping the run; the next tick starts it again`);
    abort.abort(new UserError('internal', `stopped by ${signal}`));
  };
  process.once('SIGINT', stop).once('SIGTERM', stop);
  const outcome = await runBackup({ config, log, kind, runId, signal: abort.signal });
  if (options.json) printJson(outcome);
  switch (outcome.result) {
    case 'busy': {
      const msg = `a backup is already running (pid ${outcome.holder.pid}, since ${outcome.holder.since}); nothing to do`;
      if (!options.json && (kind === 'backup' || process.stderr.isTTY)) process.stderr.write(`${msg}\n`);
      log.info(msg);
      return EXIT.ok;
    }
    case 'restoring':
      if (kind === 'backup') {
        throw new UserError('usage', `a restore is in progress (${outcome.state}); no backup is made until it is done`, {
          hint: 'Finish it with "syn3-backup resume" (see "syn3-backup status")',
        });
      }
      log.info(`a restore is in progress (${outcome.state}): no backup`);
      return EXIT.ok;
    case 'not-due':
      if (!options.json && process.stderr.isTTY) process.stderr.write('no backup is due\n');
      return EXIT.ok;
    case 'success': {
      const e = outcome.entry;
      log.info(
        {
          id: e.id,
          size: e.size,
          durationMs: e.durationMs,
          ...(e.freezeWindowMs === undefined ? {} : { freezeWindowMs: e.freezeWindowMs }),
        },
        `backup ${e.id} done: ${formatBytes(e.size ?? 0)} in ${formatMs(e.durationMs)}${e.freezeWindowMs === undefined ? '' : ` (databases frozen ${formatMs(e.freezeWindowMs)})`}`,
      );
      // A warning reaches stderr under cron too: old backups pile up until retention works again.
      const w = outcome.retentionWarning;
      if (w) log.warn({ id: e.id, reason: w.reason }, `retention failed after backup ${e.id}: ${w.reason}; old backups were kept`);
      if (modulesWarning) log.warn(modulesWarning);
      return EXIT.ok;
    }
    case 'failed': {
      const e = outcome.entry;
      // Logged at error level, a failure always reaches stderr, so cron mails it.
      log.error({ id: e.id, step: e.step }, `backup ${e.id} failed at ${e.step}: ${e.reason}`);
      return outcome.exitCode;
    }
  }
}
