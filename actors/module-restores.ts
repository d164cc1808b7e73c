/** post.restore: when the spool marker is there, every modules/*.restore runs in name order, then the marker goes. */
import { stat } from 'node:fs/promises';
import type { Config } from '../src/config/schema.js';
import { markerPaths, removeMarker } from './markers.js';
import { runModules } from './modules.js';

export async function runModuleRestores(
  config: Config,
  backupId: string,
  log: (m: string, fields?: Record<string, unknown>) => void,
): Promise<{ modules: string[] }> {
  const marker = markerPaths(config).spool;
  if (
    !(await stat(marker).then(
      () => true,
      () => false,
    ))
  ) {
    log(`${marker} is absent: no module restores to run`);
    return { modules: [] };
  }
  const result = await runModules({
    dir: config.paths.modules,
    suffix: '.restore',
    env: { SYN3_SPOOL: config.paths.spool, SYN3_BACKUP_ID: backupId },
    cwd: config.paths.spool,
    timeoutMs: config.moduleTimeoutMs,
    log,
  });
  await removeMarker(marker);
  return result;
}
