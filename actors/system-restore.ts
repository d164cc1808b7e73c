/**
 * The initrd phase: / and /boot are formatted with the type, label and UUID
 * they had at backup time (so fstab and grub.cfg in the copy match them) and
 * filled from <home>/.syn3systembackup. Each device is checked before it is
 * formatted; a run interrupted by a power cut simply runs again.
 *
 * GRUB's boot code is installed again as soon as /boot is back, before the
 * pending marker goes: the boot code in the MBR was made for the /boot that
 * was just formatted and looks for its UUID, so a power cut between here and
 * post.restore would otherwise leave a machine that stops at "grub rescue>"
 * (found by the QEMU drill). post.restore installs it once more, as the seed does.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import type { RestorePlan } from '../machines/restore-types.js';
import type { Config } from '../src/config/schema.js';
import { UserError } from '../src/errors.js';
import { format } from '../src/system/mkfs.js';
import { mount, mountPointsOf, unmount } from '../src/system/mount.js';
import { markerPaths, removeMarker } from './markers.js';
import { RSYNC_OPTIONS } from './rsync.js';
import { run } from '../src/system/run.js';
import { requireTools } from '../src/system/tools.js';

const NOT_COPIED_BACK = ['/tmp/*', '/var/tmp/*', '/run/*', '/proc/*', '/sys/*', '/dev/*', '/home/*'];
/** What / had before the backup recorded it: the usual mode of a root directory. */
const DEFAULT_TOP_MODE = 0o755;

export async function restoreSystem(config: Config, plan: RestorePlan, log: (m: string) => void): Promise<{ restored: string[] }> {
  const work = await mkdtemp(join(tmpdir(), 'syn3-restore-'));
  const restored: string[] = [];
  try {
    for (const role of ['root', 'boot'] as const) {
      const dev = plan.devices[role];
      const recorded = plan.recorded[role];
      const wasMountedAt = await releaseDevice(dev.device, dev.mountPoint);
      log(
        `formatting ${dev.device} as ${recorded.fsType} (label ${recorded.label ?? '-'}, UUID ${recorded.uuid ?? 'new'}) for ${role === 'root' ? '/' : '/boot'}`,
      );
      await format({
        device: dev.device,
        fsType: recorded.fsType,
        label: recorded.label,
        uuid: recorded.uuid,
        expectUuids: [dev.uuidBefore, recorded.uuid],
      });
      const mnt = join(work, role);
      await mount(dev.device, mnt, recorded.fsType);
      try {
        const from = role === 'root' ? `${config.paths.systemCopy}/` : `${config.paths.systemCopy}/boot/`;
        const excludes = role === 'root' ? [...NOT_COPIED_BACK, '/boot/*', ...lockInCopy(config)] : [];
        log(`copying ${from} to ${role === 'root' ? '/' : '/boot'}`);
        await run('rsync', [...RSYNC_OPTIONS, ...excludes.map((e) => `--exclude=${e}`), from, `${mnt}/`]);
        // The copy's top is 0700; / and /boot get back the mode they had at the backup.
        await chmod(mnt, recorded.mode ?? DEFAULT_TOP_MODE);
        if (role === 'boot') await installBootCode(plan.grubDisks, mnt, log);
      } finally {
        await unmount(mnt);
      }
      if (wasMountedAt) await mount(dev.device, wasMountedAt, recorded.fsType);
      restored.push(`${role}: ${dev.device}`);
    }
    await removeMarker(markerPaths(config).pendingInitrd);
    return { restored };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function installBootCode(disks: readonly string[], bootDir: string, log: (m: string) => void): Promise<void> {
  if (!disks.length) return;
  await requireTools(['grub-install']);
  for (const disk of disks) {
    log(`installing GRUB's boot code on ${disk} for the restored /boot`);
    await run('grub-install', ['--target=i386-pc', `--boot-directory=${bootDir}`, disk]);
  }
}

/** Unmounts the device from its planned mount point (a sandbox has it mounted); anywhere else is refused. */
async function releaseDevice(device: string, planned: string): Promise<string | undefined> {
  const at = mountPointsOf(device);
  const elsewhere = at.filter((p) => p !== planned);
  if (elsewhere.length) {
    throw new UserError('restore', `${device} is mounted at ${elsewhere.join(', ')}, not only at ${planned}`, {
      hint: 'Unmount it there and run "syn3-backup resume --initrd" again',
    });
  }
  if (!at.length) return undefined;
  await unmount(planned);
  return planned;
}

/**
 * In the initrd this program runs inside the system copy and holds its lock
 * there: the restored / must not boot with that lock in it.
 */
function lockInCopy(config: Config): string[] {
  const lock = join(config.paths.state, 'lock');
  for (const base of [config.paths.systemCopy, config.paths.root]) {
    const rel = relative(base, lock);
    if (rel && !rel.startsWith('..') && !isAbsolute(rel)) return [`/${rel}`];
  }
  return [];
}
