/**
 * The seed's restore steps 2 and 3: unmount and format /home with the label
 * and UUID it had at backup time (so /etc/fstab keeps matching), then
 * xfsrestore it from the target and set its quota limits again. A refill that
 * finds anything on /home (an interrupted earlier attempt) formats again
 * first, so it always starts empty.
 */
import { readdir, stat } from 'node:fs/promises';
import { UserError } from '../src/errors.js';
import type { RestorePlan } from '../machines/restore-types.js';
import type { Config } from '../src/config/schema.js';
import type { Target } from '../src/targets/target.js';
import { freshHome } from '../src/system/fresh-home.js';
import { format, probeUuid } from '../src/system/mkfs.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { mount, mountPointsOf, unmount } from '../src/system/mount.js';
import { mountAt } from '../src/system/mounts.js';
import { settleUdev } from '../src/system/udev.js';
import { proveReadable } from './restore-preflight.js';
import { quotaMountOptions } from '../src/system/xfs-quota.js';
import { applyQuotaLimits } from './quota-limits.js';
import { restoreHome, restoreHomeFromFile } from './xfsrestore.js';

export async function formatHome(config: Config, target: Target, plan: RestorePlan, log: (m: string) => void): Promise<{ device: string }> {
  const dev = plan.devices.home;
  const recorded = plan.recorded.home;
  if (
    plan.verifyWhileRestoring &&
    (await holdsTheInstallersHome(dev.device, dev.uuidBefore, recorded.uuid)) &&
    !(await freshHome(config))
  ) {
    // Something was written to /home since the preflight judged it fresh: it is data now.
    log(
      `${config.paths.home} no longer holds only what a fresh installation puts there: reading the backup back in full before formatting it`,
    );
    await proveReadable(target, plan);
  }
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
  await mountFresh(dev.device, config.paths.home, log, plan);
  return { device: dev.device };
}

/** The device still holds the file system the preflight judged, not one this restore made (which has the recorded UUID). */
async function holdsTheInstallersHome(device: string, before: string | undefined, recorded: string | undefined): Promise<boolean> {
  const now = await probeUuid(device);
  return now !== recorded || now === before;
}

/**
 * Mounts the new file system at /home and makes sure it stays there. The fresh installation's
 * fstab names the UUID that mkfs just replaced: when udev drops that UUID, systemd unmounts
 * /home, and a restore that did not notice would fill the root file system's /home folder.
 * It is mounted with the quotas the backup's /home kept, so that xfsrestore's files are counted
 * and their limits can be set (XFS turns quotas on only when it mounts).
 */
async function mountFresh(device: string, home: string, log: (m: string) => void, plan: RestorePlan): Promise<void> {
  const options = quotaMountOptions(plan.recorded.home.quota);
  for (let attempt = 1; ; attempt++) {
    await settleUdev();
    await mount(device, home, 'xfs', options || undefined).catch((e: unknown) => {
      throw options ? noQuotaSupport(device, home, options, e) : e;
    });
    await settleUdev();
    await sleep(STAYS_MOUNTED_MS);
    if (mountAt(home)?.source === device) return;
    if (attempt === 3) throw unmountedBehindUs(device, home, 'right after it was formatted');
    log(`${home} was unmounted behind our back after the format (systemd's mount unit of the old UUID?): mounting it again`);
  }
}

const STAYS_MOUNTED_MS = 300;

/**
 * Before the markers go onto /home: a restart since the restore of /home (a reboot of the fresh
 * installation, whose fstab names a UUID that is gone) may have left it unmounted, and markers
 * written into the root file system's /home folder would never be found.
 */
export async function ensureHomeMounted(config: Config, plan: RestorePlan, log: (m: string) => void): Promise<void> {
  const device = plan.devices.home.device;
  const now = mountAt(config.paths.home);
  if (!device || now?.source === device) return;
  if (now) throw unmountedBehindUs(device, config.paths.home, 'before the markers are written');
  log(`${config.paths.home} is not mounted (a restart since its restore?): mounting the restored ${device} there`);
  await mountFresh(device, config.paths.home, log, plan);
}

function noQuotaSupport(device: string, home: string, options: string, cause: unknown): UserError {
  return new UserError('restore', `the new ${home} (${device}) cannot be mounted with ${options}, the quotas it kept at backup time`, {
    hint: `This kernel may lack XFS quota support (CONFIG_XFS_QUOTA); "dmesg | tail" says why the mount failed. Boot a kernel that has it (Debian's has) and run "syn3-backup resume"`,
    cause,
  });
}

/** The restored file system must be what is mounted at /home, or the restore wrote into the wrong place. */
export function requireHomeMounted(config: Config, plan: RestorePlan, when: string): void {
  const device = plan.devices.home.device;
  if (mountAt(config.paths.home)?.source !== device) throw unmountedBehindUs(device, config.paths.home, when);
}

function unmountedBehindUs(device: string, home: string, when: string): UserError {
  const now = mountAt(home);
  return new UserError(
    'restore',
    `${home} is not the file system on ${device} ${when} (${now ? `${now.source} is mounted there` : 'nothing is mounted there'})`,
    {
      hint: `Something unmounted it while the restore ran (on a systemd machine, the fstab entry for ${home} names the fresh installation's UUID, which the format replaced). Run "syn3-backup resume": it formats ${home} and restores it again; if it happens again, "journalctl -b" says what unmounted it`,
    },
  );
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
    await formatHome(config, target, plan, log);
  }
  log(`restoring ${config.paths.home} from backup ${plan.backupId} (${plan.size} bytes)`);
  const where = `${target.description}: backup ${plan.backupId}`;
  requireHomeMounted(config, plan, 'before xfsrestore');
  const restored = await restoreFrom(config, target, plan, where);
  requireHomeMounted(config, plan, 'after xfsrestore');
  await applyQuotaLimits(config, plan, log);
  return restored;
}

async function restoreFrom(config: Config, target: Target, plan: RestorePlan, where: string): Promise<{ entries: number }> {
  if (plan.localFile && (plan.compression ?? 'none') === 'none') {
    // The preflight read this very file back in full and proved it; unchanged since, xfsrestore
    // reads it itself: a pipe and a second checksum cost three times the restore.
    await checkUnchanged(plan.localFile, where);
    return restoreHomeFromFile(plan.localFile.path, config.paths.home, where);
  }
  const source = await target.open(plan.backupId);
  return restoreHome(source, config.paths.home, { bytes: plan.size, sha256: plan.sha256 }, where, plan.compression ?? 'none');
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
