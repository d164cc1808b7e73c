/**
 * Snapshot mode's step 3, as the seed has it: the databases are briefly frozen
 * and an LVM snapshot of /home is taken. Every modules/*.freeze holds its
 * database while lvcreate runs (device-mapper freezes the file system itself),
 * then all are released, last first. The freeze window is measured from the
 * first freezer's "frozen" to the last one's exit. A snapshot left by an earlier
 * run (killed mid-way) is found by its name prefix and tag and removed first,
 * so the step can simply run again. Just before the freeze the live /home's
 * quota limits are written into the spool, for the snapshot to carry.
 */
import type { SnapshotTaken } from '../machines/types.js';
import { snapshotBytes, type SnapshotSize } from '../src/config/snapshot-config.js';
import { UserError } from '../src/errors.js';
import { formatBytes } from '../src/format.js';
import { freezeAll } from '../src/system/freeze.js';
import {
  createSnapshot,
  logicalVolumeOf,
  madeSnapshot,
  ownSnapshots,
  removeSnapshot,
  SNAPSHOT_PREFIX,
  volumeGroupFree,
  type LogicalVolume,
} from '../src/system/lvm.js';
import { unmount, mountPointsOf } from '../src/system/mount.js';
import { mountAt } from '../src/system/mounts.js';
import { run } from '../src/system/run.js';
import { listModules } from './modules.js';
import { dropLimitsFromSpool, keepLimitsInSpool } from './quota-limits.js';

export interface SnapshotPlace {
  /** The mount point of /home (paths.home). */
  home: string;
  size: SnapshotSize;
  log: (message: string) => void;
}

export interface SnapshotRequest extends SnapshotPlace {
  runId: string;
  /** paths.spool: the live /home's quota limits ride in the snapshot there (a read-only snapshot has no quotas for xfsdump to write). */
  spool: string;
  modulesDir: string;
  freezeTimeoutMs: number;
}

/** The logical volume /home is mounted from; snapshot mode has nothing to snapshot otherwise. */
export async function homeVolume(home: string): Promise<LogicalVolume> {
  const mounted = mountAt(home);
  const lv = mounted ? await logicalVolumeOf(mounted.source) : undefined;
  if (!mounted || !lv) {
    throw new UserError(
      'config',
      `mode is snapshot, but ${home} is not on an LVM logical volume (it is mounted from ${mounted?.source ?? 'nothing'})`,
      {
        hint: 'Put /home on a logical volume with free extents left in its volume group, or use mode: spool',
      },
    );
  }
  if (lv.origin) {
    throw new UserError('config', `${home} is mounted from ${lv.vg}/${lv.name}, which is itself a snapshot`, {
      hint: 'Mount the origin volume at paths.home',
    });
  }
  return lv;
}

/** What an earlier run left (a kill between lvcreate and lvremove): unmounted wherever it is, then removed. */
export async function removeLeftoverSnapshots(origin: LogicalVolume, log: (m: string) => void): Promise<string[]> {
  const removed: string[] = [];
  for (const lv of await ownSnapshots(origin.vg)) {
    for (const dir of [...mountPointsOf(lv.dmPath), ...mountPointsOf(lv.path)]) await unmount(dir);
    await removeSnapshot(lv);
    log(`snapshot: removed ${lv.vg}/${lv.name}, left by an earlier run`);
    removed.push(lv.name);
  }
  return removed;
}

/** The snapshot's size, and whether its volume group has that much free now. */
export async function requireRoom(origin: LogicalVolume, size: SnapshotSize): Promise<number> {
  const vg = await volumeGroupFree(origin.vg);
  const bytes = snapshotBytes(size, origin.sizeBytes, vg.extentBytes);
  if (vg.freeBytes < bytes) {
    throw new UserError(
      'config',
      `the volume group ${origin.vg} has ${formatBytes(vg.freeBytes)} free, but the snapshot of ${origin.name} needs ${formatBytes(bytes)} (snapshot.size)`,
      {
        hint: 'Free extents in that volume group (vgextend, or lvreduce another volume), or lower snapshot.size; the earlier backups are kept',
      },
    );
  }
  return bytes;
}

/** The preflight's part: /home is an LV, old snapshots are gone, and there is room for a new one. */
export async function prepareSnapshot(p: SnapshotPlace): Promise<{ origin: LogicalVolume; bytes: number }> {
  const origin = await homeVolume(p.home);
  await removeLeftoverSnapshots(origin, p.log);
  return { origin, bytes: await requireRoom(origin, p.size) };
}

/** syncfs: the suspend lvcreate does flushes the file system, and what is already written need not wait for it. */
async function flushHome(home: string): Promise<void> {
  await run('sync', ['-f', home]);
}

export function snapshotName(runId: string): string {
  return `${SNAPSHOT_PREFIX}${runId.replace(/[^A-Za-z0-9+_.-]/g, '_')}`.slice(0, 120);
}

export async function takeSnapshot(r: SnapshotRequest): Promise<SnapshotTaken> {
  // Run again after a crash, this step starts from nothing: a snapshot made then was never dumped.
  const { origin, bytes } = await prepareSnapshot(r);
  const freezers = await listModules(r.modulesDir, '.freeze');
  const name = snapshotName(r.runId);
  await keepLimitsInSpool(r.home, r.spool, r.log);
  try {
    return await snapshotFrozen(r, origin, bytes, freezers, name);
  } finally {
    dropLimitsFromSpool(r.spool);
  }
}

async function snapshotFrozen(
  r: SnapshotRequest,
  origin: LogicalVolume,
  bytes: number,
  freezers: Awaited<ReturnType<typeof listModules>>,
  name: string,
): Promise<SnapshotTaken> {
  const frozen = await freezeAll(freezers, {
    env: { SYN3_BACKUP_ID: r.runId, SYN3_HOME: r.home },
    cwd: '/',
    timeoutMs: r.freezeTimeoutMs,
    log: r.log,
    beforeFreeze: () => flushHome(r.home),
  });
  let failed: unknown;
  try {
    await createSnapshot(origin, name, bytes);
  } catch (e) {
    failed = e;
  }
  const takenAt = Date.now();
  // Released as soon as lvcreate is back, whether it worked or not: the window stays short.
  let thawedAt: number;
  let held: unknown;
  try {
    ({ thawedAt } = await frozen.release());
  } catch (e) {
    held = e;
    thawedAt = Date.now();
  }
  let made: LogicalVolume | undefined;
  if (!failed) {
    try {
      made = await madeSnapshot(origin, name);
    } catch (e) {
      failed = e;
    }
  }
  if (held) {
    // A freeze that did not hold makes the snapshot worthless: it goes, and the backup fails.
    if (made) await removeSnapshot(made).catch(() => undefined);
    throw failed ?? held;
  }
  if (failed || !made) throw failed ?? new UserError('internal', 'lvcreate returned without a snapshot');
  const freezeWindowMs = thawedAt - frozen.firstFrozenAt;
  r.log(
    `snapshot: ${origin.vg}/${name} (${formatBytes(bytes)}) of ${origin.name}; databases frozen for ${freezeWindowMs} ms by ${freezers.length} freezer(s)`,
  );
  return { vg: origin.vg, name, origin: origin.name, takenAt, freezeWindowMs, freezers };
}
