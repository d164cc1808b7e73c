/**
 * LVM as snapshot mode needs it: which logical volume a mounted file system is
 * on, how much its volume group has free, and snapshots made, listed, checked
 * and removed. lvm2's JSON report is read with byte units, so nothing is
 * parsed from a human table.
 */
import { realpathSync } from 'node:fs';
import { basename } from 'node:path';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { run } from './run.js';

/** Every snapshot this program makes carries this tag and a name with this prefix: only those are ever removed. */
export const SNAPSHOT_TAG = 'syn3-backup';
export const SNAPSHOT_PREFIX = 'syn3snap_';

export interface LogicalVolume {
  vg: string;
  name: string;
  /** /dev/<vg>/<name> */
  path: string;
  /** /dev/mapper/<vg>-<name> */
  dmPath: string;
  sizeBytes: number;
  attr: string;
  tags: string[];
  /** The origin's name, for a snapshot. */
  origin: string;
}

const bytes = z.string().transform((s, ctx) => {
  const n = Number(s.replace(/B$/, ''));
  if (!Number.isFinite(n)) ctx.addIssue({ code: 'custom', message: `not a byte count: ${s}` });
  return n;
});

const lvReport = z.object({
  report: z.array(
    z.object({
      lv: z.array(
        z.object({
          lv_name: z.string(),
          vg_name: z.string(),
          lv_path: z.string(),
          lv_dm_path: z.string(),
          lv_size: bytes,
          lv_attr: z.string(),
          lv_tags: z.string(),
          origin: z.string(),
        }),
      ),
    }),
  ),
});

const vgReport = z.object({
  report: z.array(z.object({ vg: z.array(z.object({ vg_name: z.string(), vg_free: bytes, vg_extent_size: bytes })) })),
});

const LV_FIELDS = 'lv_name,vg_name,lv_path,lv_dm_path,lv_size,lv_attr,lv_tags,origin';
const REPORT = ['--reportformat', 'json', '--units', 'b', '--nosuffix'];

async function report<T>(cmd: string, args: string[], schema: z.ZodType<T>): Promise<T> {
  const { stdout } = await run(cmd, [...REPORT, ...args]);
  const parsed = schema.safeParse(JSON.parse(stdout));
  if (!parsed.success) throw new UserError('tool', `${cmd} printed a report this program cannot read: ${parsed.error.message}`);
  return parsed.data;
}

export async function logicalVolumes(vg?: string): Promise<LogicalVolume[]> {
  const r = await report('lvs', ['-a', '-o', LV_FIELDS, ...(vg ? [vg] : [])], lvReport);
  return r.report.flatMap((x) =>
    x.lv.map((l) => ({
      vg: l.vg_name,
      name: l.lv_name,
      path: l.lv_path,
      dmPath: l.lv_dm_path,
      sizeBytes: l.lv_size,
      attr: l.lv_attr,
      tags: l.lv_tags ? l.lv_tags.split(',') : [],
      origin: l.origin,
    })),
  );
}

/** The logical volume behind a device path (as /proc/self/mountinfo names it), or undefined if it is none. */
export async function logicalVolumeOf(device: string): Promise<LogicalVolume | undefined> {
  const real = realOrSelf(device);
  let all: LogicalVolume[];
  try {
    all = await logicalVolumes();
  } catch (e) {
    // No volume group at all: lvs says so and exits 0 or 5 depending on the version.
    if (e instanceof UserError && e.kind === 'tool' && /No volume groups found|not found/i.test(e.message)) return undefined;
    throw e;
  }
  return all.find((lv) => lv.dmPath && realOrSelf(lv.dmPath) === real);
}

export async function volumeGroupFree(vg: string): Promise<{ freeBytes: number; extentBytes: number }> {
  const r = await report('vgs', ['-o', 'vg_name,vg_free,vg_extent_size', vg], vgReport);
  const g = r.report.flatMap((x) => x.vg).find((x) => x.vg_name === vg);
  if (!g) throw new UserError('tool', `vgs did not report the volume group ${vg}`);
  return { freeBytes: g.vg_free, extentBytes: g.vg_extent_size };
}

/** This program's snapshots in a volume group: its prefix and its tag, both (a snapshot of someone else's is never touched). */
export async function ownSnapshots(vg: string): Promise<LogicalVolume[]> {
  return (await logicalVolumes(vg)).filter((lv) => lv.name.startsWith(SNAPSHOT_PREFIX) && lv.tags.includes(SNAPSHOT_TAG));
}

/** lvcreate alone: what runs while the databases are frozen, so nothing else is waited for here. */
export async function createSnapshot(origin: LogicalVolume, name: string, sizeBytes: number): Promise<void> {
  await run('lvcreate', [
    '--snapshot',
    '--yes',
    '--name',
    name,
    '--size',
    `${sizeBytes}b`,
    '--addtag',
    SNAPSHOT_TAG,
    `${origin.vg}/${origin.name}`,
  ]);
}

/** The snapshot lvcreate just made, as lvs reports it. */
export async function madeSnapshot(origin: LogicalVolume, name: string): Promise<LogicalVolume> {
  const made = (await logicalVolumes(origin.vg)).find((lv) => lv.name === name);
  if (!made) throw new UserError('tool', `lvcreate made no snapshot ${origin.vg}/${name}`);
  return made;
}

export async function removeSnapshot(lv: LogicalVolume): Promise<void> {
  if (!lv.name.startsWith(SNAPSHOT_PREFIX) || !lv.tags.includes(SNAPSHOT_TAG) || !lv.origin) {
    // The one destructive call here: it must only ever meet a snapshot this program made.
    throw new UserError('internal', `refusing to remove ${lv.vg}/${lv.name}: it is not a snapshot made by syn3-backup`);
  }
  await run('lvremove', ['--yes', '--force', `${lv.vg}/${lv.name}`]);
}

/** The fifth lv_attr character: I = invalid (the copy-on-write space ran out), and the snapshot's state. */
export function snapshotInvalid(lv: LogicalVolume): boolean {
  return lv.attr[4] === 'I';
}

/**
 * Whether device-mapper calls the snapshot invalid (or it is gone): dmsetup reads the one device's
 * status, where lvs scans every volume's metadata, so it is cheap enough to ask every second or two.
 */
export async function snapshotBroken(lv: LogicalVolume): Promise<boolean> {
  try {
    const { stdout } = await run('dmsetup', ['status', basename(lv.dmPath)]);
    return /\bInvalid\b/.test(stdout);
  } catch {
    return true;
  }
}

export async function currentState(lv: Pick<LogicalVolume, 'vg' | 'name'>): Promise<LogicalVolume | undefined> {
  return (await logicalVolumes(lv.vg)).find((x) => x.name === lv.name);
}

function realOrSelf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
