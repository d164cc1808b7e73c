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
  const allowed = r.expectUuids.filter((u): u is string => !!u);
  // A plan that names no UUID could name any disk: it formats nothing.
  if (!allowed.length) {
    throw new UserError('restore', `refusing to format ${r.device}: the restore plan records no file system UUID to check it against`, {
      hint: 'Start the restore again ("syn3-backup abort" if possible, then "syn3-backup restore"), so that it plans with the UUIDs the disks hold',
    });
  }
  const now = await probeUuid(r.device);
  // No UUID at all is what an mkfs interrupted half-way leaves; any other UUID is another file system.
  if (now && !allowed.includes(now)) {
    throw new UserError(
      'restore',
      `refusing to format ${r.device}: it holds a file system with UUID ${now}, not the one the restore plan expected (${allowed.join(' or ')})`,
      {
        hint: 'The disks changed since the restore was planned; run "syn3-backup abort" if possible and start the restore again',
      },
    );
  }
}

const UUID_SYNTAX = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A label is one argument: it must not read as an option, nor hold control characters; 16 is ext4's limit. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
const LABEL_SYNTAX = /^[^\s\x00-\x1f-][^\x00-\x1f]{0,15}$/;

export function mkfsArgs(r: FormatRequest): [string, string[]] {
  // The UUID and label come from a backup's metadata: nothing in them may become an option.
  if (r.uuid !== undefined && !UUID_SYNTAX.test(r.uuid)) {
    throw new UserError('restore', `refusing to format ${r.device}: the recorded UUID ${JSON.stringify(r.uuid)} is not a UUID`, {
      hint: "The backup's metadata is damaged or forged; restore another backup",
    });
  }
  if (r.label !== undefined && r.label !== '' && !LABEL_SYNTAX.test(r.label)) {
    throw new UserError('restore', `refusing to format ${r.device}: the recorded label ${JSON.stringify(r.label)} is not a plain label`, {
      hint: "The backup's metadata is damaged or forged; restore another backup",
    });
  }
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
