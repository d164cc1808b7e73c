/**
 * XFS quota limits, as xfs_quota dumps and restores them. A dump is, for
 * each ID with limits, a "fs = <device>" line and a line with the ID and its
 * block and inode soft and hard limits (in 512-byte blocks and inodes; later
 * xfsprogs add the realtime pair). xfs_quota restore applies its lines only to
 * the file system the fs line names, and silently skips a line it cannot read:
 * the lines are checked here first, and what was applied is read back.
 */
import type { QuotaAccounting, QuotaKind } from '../../machines/types.js';
import { UserError } from '../errors.js';
import { run } from './run.js';

export const QUOTA_KINDS: readonly QuotaKind[] = ['user', 'group', 'project'];

/** The names xfsdump gives the files it puts at the top of a dump when accounting is on (xfsrestore writes them back there). */
export const QUOTA_FILE: Record<QuotaKind, string> = {
  user: 'xfsdump_quotas',
  group: 'xfsdump_quotas_group',
  project: 'xfsdump_quotas_proj',
};

const FS_LINE = /^fs = \S+$/;

const FLAG: Record<QuotaKind, string> = { user: '-u', group: '-g', project: '-p' };

/** The kernel's names in /proc/self/mountinfo (the synonyms uquota, quota, gquota, pquota, qnoenforce show as these). */
const MOUNT_OPTION: Record<QuotaKind, { enforced: string; accounted: string }> = {
  user: { enforced: 'usrquota', accounted: 'uqnoenforce' },
  group: { enforced: 'grpquota', accounted: 'gqnoenforce' },
  project: { enforced: 'prjquota', accounted: 'pqnoenforce' },
};

/** Which quotas an XFS mount keeps, from its super options. */
export function quotaAccounting(superOptions: readonly string[]): QuotaAccounting {
  const q: QuotaAccounting = {};
  for (const kind of QUOTA_KINDS) {
    const o = MOUNT_OPTION[kind];
    if (superOptions.includes(o.enforced)) q[kind] = 'enforced';
    else if (superOptions.includes(o.accounted)) q[kind] = 'accounted';
  }
  return q;
}

export function quotaKinds(q: QuotaAccounting | undefined): QuotaKind[] {
  return QUOTA_KINDS.filter((k) => q?.[k]);
}

/** The mount options that give a file system these quotas: "usrquota,grpquota,prjquota". */
export function quotaMountOptions(q: QuotaAccounting | undefined): string {
  return quotaKinds(q)
    .map((k) => MOUNT_OPTION[k][q![k]!])
    .join(',');
}

/** The kinds in want that have is has not: what a mount lacks. */
export function missingQuotas(want: QuotaAccounting | undefined, has: QuotaAccounting): QuotaKind[] {
  return quotaKinds(want).filter((k) => !has[k]);
}

export interface QuotaLimits {
  kind: QuotaKind;
  /** "<id> <bsoft> <bhard> <isoft> <ihard>[ <rtbsoft> <rtbhard>]", single-spaced, by ID. */
  rows: string[];
}

/** Reads a dump file's text; anything but an fs line and rows of numbers is refused, naming where. */
export function parseQuotaDump(kind: QuotaKind, text: string, where: string): QuotaLimits {
  const lines = text.split('\n').filter((l) => l.trim());
  const bad = (line: number, what: string) =>
    new UserError('restore', `the ${kind} quota limits in the backup cannot be read: line ${line} ${what}`, {
      where,
      hint: 'The file came from the verified dump, so it was written so at backup time: check that xfs_quota there and here are alike; /home is restored, only these limits are not',
    });
  // xfs_quota may say nothing at all when no ID has limits.
  if (!lines.length) return { kind, rows: [] };
  if (!FS_LINE.test(lines[0]!)) throw bad(1, 'is not "fs = <device>"');
  const rows: string[] = [];
  lines.forEach((line, i) => {
    // xfs_quota's dump repeats the fs line before every ID.
    if (FS_LINE.test(line)) return;
    const fields = line.trim().split(/\s+/);
    if (!(fields.length === 5 || fields.length === 7) || !fields.every((f) => /^\d{1,20}$/.test(f))) {
      throw bad(i + 1, `is not an ID and its limits (${JSON.stringify(line.slice(0, 80))})`);
    }
    rows.push(fields.map((f) => String(BigInt(f))).join(' '));
  });
  // A row of zeros sets no limit: xfs_quota's own dump leaves such IDs out.
  return { kind, rows: sortedById(rows.filter((r) => / [1-9]/.test(r))) };
}

function sortedById(rows: string[]): string[] {
  const id = (r: string) => BigInt(r.split(' ')[0]!);
  return [...new Set(rows)].sort((a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0));
}

/** The limits set on a mounted XFS for one kind, as a dump file holds them. */
export async function dumpQuotaLimits(mountPoint: string, kind: QuotaKind): Promise<string> {
  return (await run('xfs_quota', ['-x', '-c', `dump ${FLAG[kind]}`, mountPoint])).stdout;
}

/**
 * Sets the limits on the file system mounted at mountPoint (from device: what the fs line
 * must name), then reads them back: every row must be there as given.
 */
export async function restoreQuotaLimits(mountPoint: string, device: string, limits: QuotaLimits): Promise<void> {
  const input = limits.rows.map((r) => `fs = ${device}\n${r}\n`).join('');
  await run('xfs_quota', ['-x', '-c', `restore ${FLAG[limits.kind]}`, mountPoint], { input });
  const now = new Set(parseQuotaDump(limits.kind, await dumpQuotaLimits(mountPoint, limits.kind), mountPoint).rows);
  const missing = limits.rows.filter((r) => !now.has(r));
  if (missing.length) {
    throw new UserError(
      'restore',
      `xfs_quota did not set ${missing.length} of the ${limits.rows.length} ${limits.kind} quota limits on ${mountPoint}`,
      {
        hint: `The first one not set: "${missing[0]}" (ID, block soft and hard, inode soft and hard). Run "syn3-backup resume" to restore /home again`,
      },
    );
  }
}
