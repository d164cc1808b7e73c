/**
 * The seed's "xfsdump carries all ACLs and quotas along", made true in both
 * modes. In spool mode xfsdump puts the limits into the dump itself (the files
 * xfsdump_quotas, _group and _proj at the top of /home) because quota
 * accounting is on where it reads. A snapshot is mounted read-only without
 * quotas, so in snapshot mode the limits of the live /home are written into
 * the spool, under the same names, just before the snapshot, and leave the
 * live spool again once it is taken. After xfsrestore the restore sets them on
 * the new /home (mounted with the quotas the backup recorded), reads them back
 * and removes the files, so the restored /home holds what the old one did.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { RestorePlan } from '../machines/restore-types.js';
import type { QuotaAccounting, QuotaKind } from '../machines/types.js';
import type { Config } from '../src/config/schema.js';
import { UserError } from '../src/errors.js';
import { writeDurable } from '../src/state/durable.js';
import { mountAt } from '../src/system/mounts.js';
import { ensureTrustedDirectory, requireTrusted, trustProblem } from '../src/system/trust.js';
import {
  dumpQuotaLimits,
  missingQuotas,
  parseQuotaDump,
  QUOTA_FILE,
  QUOTA_KINDS,
  quotaAccounting,
  quotaKinds,
  quotaMountOptions,
  restoreQuotaLimits,
} from '../src/system/xfs-quota.js';

/** Snapshot mode, before the freeze: the live /home's limits into the spool, for the snapshot to hold. */
export async function keepLimitsInSpool(home: string, spool: string, log: (m: string) => void): Promise<void> {
  const kinds = quotaKinds(quotaAccounting(mountAt(home)?.superOptions ?? []));
  dropLimitsFromSpool(spool);
  if (!kinds.length) return;
  ensureTrustedDirectory(dirname(spool), `the spool's parent directory`);
  ensureTrustedDirectory(spool, 'the spool directory');
  for (const kind of kinds) {
    const text = await dumpQuotaLimits(home, kind);
    const file = join(spool, QUOTA_FILE[kind]);
    // Read as the restore will read it: a dump it could not use must fail the backup, not the restore.
    const { rows } = parseQuotaDump(kind, text, `xfs_quota dump of ${home}`);
    writeDurable(file, text);
    log(`quota: ${rows.length} ${kind} limit(s) of ${home} kept in ${file} for the snapshot`);
  }
}

/** Once the snapshot holds them (or the step failed): the live spool is as it was. */
export function dropLimitsFromSpool(spool: string): void {
  removeQuotaFiles(QUOTA_KINDS.map((kind) => join(spool, QUOTA_FILE[kind])));
}

/** Removed only from a directory root alone can change: nothing is deleted through another's link. */
function removeQuotaFiles(files: string[]): void {
  for (const file of files) if (!trustProblem(dirname(file), 'directory')) rmSync(file, { force: true });
}

/** Where a restored /home may hold each kind's file: xfsrestore's place first, then snapshot mode's. */
function quotaFiles(config: Config, kind: QuotaKind): string[] {
  return [join(config.paths.home, QUOTA_FILE[kind]), join(config.paths.spool, QUOTA_FILE[kind])];
}

/** After xfsrestore: the recorded kinds' limits set on the new /home, read back, and their files gone. */
export async function applyQuotaLimits(
  config: Config,
  plan: RestorePlan,
  log: (m: string) => void,
): Promise<Partial<Record<QuotaKind, number>>> {
  const want = plan.recorded.home.quota;
  const kinds = quotaKinds(want);
  if (!kinds.length) return {};
  const home = config.paths.home;
  const mounted = mountAt(home);
  const lacking = missingQuotas(want, quotaAccounting(mounted?.superOptions ?? []));
  if (!mounted || lacking.length) throw mountedWithoutQuotas(home, want!, lacking, mounted?.superOptions ?? []);
  const set: Partial<Record<QuotaKind, number>> = {};
  for (const kind of kinds) {
    const file = quotaFiles(config, kind).find((f) => existsSync(f));
    if (!file) {
      log(`quota: the backup kept ${kind} quotas on ${home} but holds no ${QUOTA_FILE[kind]}: no ${kind} limits are set`);
      continue;
    }
    requireTrusted(file, 'file', `the restored ${kind} quota limits`);
    const limits = parseQuotaDump(kind, readFileSync(file, 'utf8'), `${file} (restored from backup ${plan.backupId})`);
    await restoreQuotaLimits(home, mounted.source, limits);
    set[kind] = limits.rows.length;
    log(`quota: ${limits.rows.length} ${kind} limit(s) set on ${home} and read back`);
  }
  removeQuotaFiles(kinds.flatMap((kind) => quotaFiles(config, kind)));
  return set;
}

/** The first boot, /home mounted as the restored /etc/fstab says: the limits are only enforced with the quotas on. */
export function quotasAtBoot(config: Config, plan: RestorePlan, warn: (m: string) => void): void {
  const want = plan.recorded.home.quota;
  const mounted = mountAt(config.paths.home);
  const lacking = missingQuotas(want, quotaAccounting(mounted?.superOptions ?? []));
  if (!lacking.length) return;
  warn(
    `${config.paths.home} is mounted without ${lacking.join(', ')} quotas, which it kept at backup time: the restored limits are on disk but not kept or enforced. ` +
      `Add ${quotaMountOptions(want)} to the options of the ${config.paths.home} line in /etc/fstab and reboot (XFS turns quotas on only when it mounts, not on a remount)`,
  );
}

function mountedWithoutQuotas(home: string, want: QuotaAccounting, lacking: QuotaKind[], options: readonly string[]): UserError {
  return new UserError(
    'restore',
    `the backup kept ${lacking.join(', ')} quota limits for ${home}, but ${home} is mounted without those quotas (${options.join(',') || 'not mounted'}), so they cannot be set`,
    {
      hint: `Mount it with ${quotaMountOptions(want)}: add them to the options of the ${home} line in /etc/fstab, run "umount ${home} && mount ${home}" (XFS turns quotas on only when it mounts), then run "syn3-backup resume"`,
    },
  );
}
