/**
 * A paths.modules that is not there. Written in the configuration file, it is
 * a typo: a spool backup would "succeed" without the database dumps, so the
 * backup is refused. Left at its default, it may mean a server without modules,
 * so the run goes on with a warning (on stderr under cron, and in status).
 */
import { lstatSync } from 'node:fs';
import { UserError } from '../errors.js';
import type { Config } from './schema.js';

function missing(dir: string): boolean {
  try {
    lstatSync(dir);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** The warning for a default modules directory that does not exist, or undefined. */
export function modulesDirectoryWarning(config: Config): string | undefined {
  if (config.modulesExplicit || !missing(config.paths.modules)) return undefined;
  return `the modules directory ${config.paths.modules} (the default paths.modules) does not exist, so no module runs and the spool holds no database dumps; create it, or set paths.modules in ${config.file}`;
}

/** Refuses a backup when paths.modules names a directory that does not exist; returns the default's warning, if any. */
export function checkModulesDirectory(config: Config): string | undefined {
  if (config.modulesExplicit && missing(config.paths.modules)) {
    throw new UserError('config', 'the modules directory (paths.modules) does not exist, so no module would run', {
      where: config.paths.modules,
      hint: `Correct paths.modules in ${config.file}, or create the directory (mkdir -m 755 ${config.paths.modules}) if this server has no modules; no backup was made`,
    });
  }
  return modulesDirectoryWarning(config);
}
