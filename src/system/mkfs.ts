/**
 * Formatting, the one step that destroys data. Before mkfs runs, the device
 * is checked to be the one the plan named: a block device, mounted nowhere,
 * holding either the file system that was there when the restore was planned
 * or the one an interrupted earlier attempt already made.
 */
import { stat } from 'node:fs/promises';
import { UserError } from '../errors.js';
import { mountPointsOf } from './mount.js';
import { run } from './run.js';

export interface FormatRequest {
  device: string;
  fsType: string;
  label?: string | undefined;
  uuid?: string | undefined;
  /** UUIDs the device may hold now: the planned one, and the one this format gives it. */
  expectUuids: Array<string | undefined>;
}

export async function probeUuid(device: string): Promise<string | undefined> {
  const { stdout } = await run('blkid', ['-p', '-s', 'UUID', '-o', 'value', device]).catch(() => ({ stdout: '' }));
  return stdout.trim() || undefined;
}

export async function checkSafeToFormat(r: FormatRequest): Promise<void> {
  const st = await stat(r.device).catch(() => undefined);
  if (!st?.isBlockDevice()) {
    throw new UserError('restore', `refusing to format ${r.device}: it is not a block device`, {
      hint: 'Check the device names in the restore plan (syn3-backup status)',
    });
  }
  const mounted = mountPointsOf(r.device);
  if (mounted.length) {
    throw new UserError('restore', `refusing to format ${r.device}: it is still mounted at ${mounted.join(', ')}`, {
      hint: 'Stop what uses it and unmount it, then run "syn3-backup resume"',
    });
  }
  const now = await probeUuid(r.device);
  const allowed = r.expectUuids.filter(Boolean);
  if (now && allowed.length && !allowed.includes(now)) {
    throw new UserError(
      'restore',
      `refusing to format ${r.device}: it holds a file system with UUID ${now}, not the one the restore plan expected (${allowed.join(' or ')})`,
      {
        hint: 'The disks changed since the restore was planned; run "syn3-backup abort" if possible and start the restore again',
      },
    );
  }
}

export function mkfsArgs(r: FormatRequest): [string, string[]] {
  switch (r.fsType) {
    case 'xfs':
      return ['mkfs.xfs', ['-f', '-q', ...(r.label ? ['-L', r.label] : []), ...(r.uuid ? ['-m', `uuid=${r.uuid}`] : []), r.device]];
    case 'ext4':
    case 'ext3':
    case 'ext2':
      return [`mkfs.${r.fsType}`, ['-F', '-q', ...(r.label ? ['-L', r.label] : []), ...(r.uuid ? ['-U', r.uuid] : []), r.device]];
    default:
      throw new UserError('restore', `cannot rebuild a ${r.fsType} file system on ${r.device}`, {
        hint: 'syn3-backup rebuilds xfs and ext2/3/4 file systems',
      });
  }
}

export async function format(r: FormatRequest): Promise<void> {
  await checkSafeToFormat(r);
  const [cmd, args] = mkfsArgs(r);
  await run(cmd, args);
}
