/** What every command needs: the global options, the configuration, a logger. */
import { loadConfig, DEFAULT_CONFIG_FILE } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { UserError } from '../errors.js';
import { createLogger, newRunId, type LogFormat, type Logger } from '../log.js';
import { ensureTrustedDirectory } from '../system/trust.js';

export interface GlobalOptions {
  config?: string;
  logFormat?: LogFormat;
  verbose?: boolean;
  quiet?: boolean;
}

export interface CommandContext {
  config: Config;
  log: Logger;
  runId: string;
  options: GlobalOptions;
}

export function configOnly(options: GlobalOptions): Config {
  return loadConfig(options.config ?? process.env.SYN3_BACKUP_CONFIG ?? DEFAULT_CONFIG_FILE);
}

export function commandContext(options: GlobalOptions, command: string): CommandContext {
  const config = configOnly(options);
  const runId = newRunId();
  // The lock, the state files and the log live here: whoever can write it steers the next run.
  ensureTrustedDirectory(config.paths.state, 'the state directory (paths.state)');
  const log = stateWritable(config.paths.state, () =>
    createLogger({
      stateDir: config.paths.state,
      format: options.logFormat ?? 'auto',
      runId,
      command,
      ...(options.quiet ? { quiet: true } : {}),
      ...(options.verbose ? { verbose: true } : {}),
    }),
  );
  return { config, log, runId, options };
}

/** The log is the first write to the state directory: a read-only one is said as such, not as an internal error. */
function stateWritable<T>(dir: string, open: () => T): T {
  try {
    return open();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EROFS' && code !== 'EACCES' && code !== 'EPERM') throw e;
    throw new UserError(
      'state',
      `the state directory (paths.state) cannot be written (${code === 'EROFS' ? 'EROFS: the file system is read-only' : code})`,
      {
        where: dir,
        hint: 'Remount that file system read-write, or point paths.state at a directory on a writable one; nothing was done',
        cause: e,
      },
    );
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
