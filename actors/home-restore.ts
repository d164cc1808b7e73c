/**
 * The seed's restore steps 2 and 3: unmount and format /home with the label
 * and UUID it had at backup time (so /etc/fstab keeps matching), then
 * xfsrestore it from the target. A refill that finds anything on /home (an
 * interrupted earlier attempt) formats again first, so it always starts empty.
 */
import { readdir, stat } from 'node:fs/promises';
import { UserError } from '../src/errors.js';
import type { RestorePlan } from '../machines/restore-types.js';
import type { Config } from '../src/config/schema.js';
import type { Target } from '../src/targets/target.js';
import { format } from '../src/system/mkfs.js';
import { mount, mountPointsOf, unmount } from '../src/system/mount.js';
import { restoreHome, restoreHomeFromFile } from './xfsrestore.js';

export async function formatHome(config: Config, plan: RestorePlan, log: (m: string) => void): Promise<{ device: string }> {
  const dev = plan.devices.home;
  const recorded = plan.recorded.home;
  for (const at of mountPointsOf(dev.device)) {
    if (at !== dev.mountPoint) continue;
    log(`unmounting ${at}`);
    await unmount(at);
  }
  log(`formatting ${dev.device} as xfs (label ${recorded.label ?? '-'}, UUID ${recorded.uuid ?? 'new'})`);
  await format({
    device: dev.device,
    fsType: 'xfs',
    label: recorded.label,
    uuid: recorded.uuid,
    expectUuids: [dev.uuidBefore, recorded.uuid],
  });
  await mount(dev.device, config.paths.home, 'xfs');
  return { device: dev.device };
}

export async function refillHome(
  config: Config,
  target: Target,
  plan: RestorePlan,
  log: (m: string) => void,
): Promise<{ entries: number }> {
  const left = (await readdir(config.paths.home).catch(() => [] as string[])).filter((n) => n !== 'lost+found');
  if (left.length || !mountPointsOf(plan.devices.home.device).includes(config.paths.home)) {
    log(`${config.paths.home} is not freshly formatted (an interrupted earlier attempt): formatting it again`);
    await formatHome(config, plan, log);
  }
  log(`restoring ${config.paths.home} from backup ${plan.backupId} (${plan.size} bytes)`);
  const where = `${target.description}: backup ${plan.backupId}`;
  if (plan.localFile && (plan.compression ?? 'none') === 'none') {
    // The preflight read this very file back in full and proved it; unchanged since, xfsrestore
    // reads it itself: a pipe and a second checksum cost three times the restore.
    await checkUnchanged(plan.localFile, where);
    return restoreHomeFromFile(plan.localFile.path, config.paths.home, where);
  }
  const source = await target.open(plan.backupId);
  return restoreHome(
    source,
    config.paths.home,
    { bytes: plan.size, sha256: plan.sha256 },
    `${target.description}: backup ${plan.backupId}`,
    plan.compression ?? 'none',
  );
}

async function checkUnchanged(f: NonNullable<RestorePlan['localFile']>, where: string): Promise<void> {
  const now = await stat(f.path).catch(() => undefined);
  const same =
    now && now.dev === f.dev && now.ino === f.ino && now.size === f.size && now.mtimeMs === f.mtimeMs && now.ctimeMs === f.ctimeMs;
  if (!same) {
    throw new UserError('restore', `the backup file changed since the preflight proved it (${f.path})`, {
      where,
      hint: 'Run "syn3-backup abort" if possible and start the restore again, so the backup is proven anew',
    });
  }
}
