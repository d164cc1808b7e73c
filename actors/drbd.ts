/**
 * The seed's drbd.primary marker: after a restore a node that was redundant
 * re-creates its DRBD metadata and becomes primary. Without DRBD configured
 * the marker has no meaning: it is removed and that is logged.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../src/config/schema.js';
import { removeMarker, DRBD_MARKER } from './markers.js';
import { run } from '../src/system/run.js';
import { which } from '../src/system/tools.js';

async function drbdResources(config: Config): Promise<string[]> {
  // drbdadm reads the running system's /etc: a sandbox's root is never that.
  if (config.paths.root !== '/' || !(await which('drbdadm'))) return [];
  const confDir = '/etc/drbd.d';
  const hasResources = (await readdir(confDir).catch(() => [] as string[])).some((n) => n.endsWith('.res'));
  if (!hasResources) return [];
  const { stdout } = await run('drbdadm', ['sh-resources']).catch(() => ({ stdout: '' }));
  return stdout.split(/\s+/).filter(Boolean);
}

export async function settleDrbd(config: Config, log: (m: string) => void): Promise<{ drbd: string }> {
  const marker = join(config.paths.boot, DRBD_MARKER);
  if (
    !(await stat(marker).then(
      () => true,
      () => false,
    ))
  )
    return { drbd: 'no marker' };
  const resources = await drbdResources(config);
  if (!resources.length) {
    log(`DRBD is not configured here: removing ${marker}`);
    await removeMarker(marker);
    return { drbd: 'not configured' };
  }
  for (const res of resources) {
    log(`DRBD ${res}: re-creating metadata and becoming primary`);
    await run('drbdadm', ['--force', 'create-md', res], { input: 'yes\n' });
    await run('drbdadm', ['up', res]).catch(() => undefined);
    await run('drbdadm', ['primary', '--force', res]);
  }
  await removeMarker(marker);
  return { drbd: `primary: ${resources.join(' ')}` };
}
