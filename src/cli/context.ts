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
  if (config.mode === 'snapshot') throw snapshotNotYet(config.file);
  const runId = newRunId();
  // The lock, the state files and the log live here: whoever can write it steers the next run.
  ensureTrustedDirectory(config.paths.state, 'the state directory (paths.state)');
  const log = createLogger({
    stateDir: config.paths.state,
    format: options.logFormat ?? 'auto',
    runId,
    command,
    ...(options.quiet ? { quiet: true } : {}),
    ...(options.verbose ? { verbose: true } : {}),
  });
  return { config, log, runId, options };
}

export function snapshotNotYet(file: string): UserError {
  return new UserError('config', 'mode: snapshot is not supported yet (it needs the LVM snapshot support of a later release)', {
    where: file,
    hint: 'Use mode: spool for now',
  });
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
