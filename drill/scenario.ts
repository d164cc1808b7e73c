/**
 * The drill (README, "The drill"): the original server lives (users, ACLs,
 * xattrs, PostgreSQL's cluster on /home with a database the spool module dumps
 * and one a client keeps committing to) and backs up in snapshot mode (the
 * spool modules, postgresql.freeze holding PostgreSQL while LVM snapshots
 * /home, xfsdump of the snapshot) to an SMB share, a real smbd on this host's
 * loopback that the machines reach through QEMU's user network with
 * restrict=on and one guestfwd (share.ts); or, with --target disk, to a
 * backup disk (the file target). After the fire a fresh installation gets
 * the configuration and the share's credentials as an administrator brings
 * them, lists the share and restores from it, reboots into the initrd phase
 * (the power is cut halfway once), boots again to finish it and run
 * post.restore (the spool's database loaded), and reboots once more. The
 * restored machine must boot through GRUB, match the original's fingerprint
 * but for an explicit list, have the spool's database back row for row, the
 * snapshot's database as it was at the freeze (database-checks.ts), and say
 * it was restored.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ALLOWED_DIFFERENCES } from './allowed-differences.js';
import { checkDatabase, checkFrozenWhileCommitting } from './database-checks.js';
import { compareFingerprints, readFingerprint, type Entry } from './fingerprint.js';
import { writeJobDisk } from './job-disk.js';
import type { Machine } from './machine.js';
import { boot, serialText } from './qemu.js';
import { shareTarget, startDrillShare } from './share.js';
import {
  burn,
  checkBootedThroughGrub,
  checkInitrdAndPostRestore,
  checkMountIdentity,
  checkStatusRestored,
  drillConfig,
  installAndBackUp,
  jobScript,
  machineBoot,
  ORIGINAL,
  readText,
  REPLACEMENT,
  requireJob,
  restoreOnFreshMachine,
  runJob,
  drillContext,
  type Context,
  type Shared,
} from './steps.js';

const HOST = 'syn3drill';

/**
 * Snapshot mode. The original's volume group: the disk (4G) less /boot and / leaves about 2236 MiB
 * for the PV; /home takes 1700 MiB, so some 530 MiB are free. The snapshot gets 300 MiB: the writes
 * to /home during the dump (the client's rows, the WAL) are a few MiB.
 */
const SNAPSHOT_MODE = 'mode: snapshot\nsnapshot:\n  size: 300M\n  freeze_timeout: 60s\n';

export type DrillTarget = 'share' | 'disk';

/** The initrd phase's log line as it starts to copy / back (on the serial console, CRLF). */
const COPYING_ROOT = /copying \/home\/\.syn3systembackup\/ to \/\r?$/m;

export async function drill(shared: Shared, target: DrillTarget): Promise<void> {
  if (target === 'disk') return drillOn(await drillContext(shared, HOST, drillConfig(HOST, SNAPSHOT_MODE)));
  const share = await shared.report.phase("the SMB share: smbd on this host's loopback", startDrillShare, (s) => `port ${s.hostPort}`);
  try {
    await drillOn(await drillContext(shared, HOST, drillConfig(HOST, SNAPSHOT_MODE, shareTarget(share)), share));
  } finally {
    await share.stop();
  }
}

async function drillOn(ctx: Context): Promise<void> {
  const { report, work, share } = ctx;

  // 1. The original server.
  const { original, life, publicKey, status } = await installAndBackUp(
    ctx,
    ORIGINAL,
    'original: first boot, users, databases, a client committing, syn3-backup tick (snapshot mode)',
    {
      name: 'life-and-backup',
      script: jobScript(ctx, 'life-and-backup'),
    },
  );
  const dbBefore = readText(life.result.dir, 'db.txt');
  report.check('the database has rows before the fire', /^20000 [0-9a-f]{32}$/.test(dbBefore), dbBefore);
  const committed = checkFrozenWhileCommitting(ctx, life.result.dir, status.lastSuccess?.freezeWindowMs);
  if (share) {
    const onShare = readdirSync(share.files()).filter((f) => !f.startsWith('.'));
    report.check(
      `the backup is on the SMB share (smbd's folder on this host)`,
      onShare.some((f) => f.startsWith(`${HOST}-`) && f.endsWith('.meta.json')),
      onShare.join(', ') || 'nothing',
    );
  }

  // 2. The fire. 3. A new disk, a fresh installation, the restore.
  burn(ctx, original);
  const replacement = await restoreOnFreshMachine(ctx, REPLACEMENT, original, publicKey);

  // 4. The reboot into the initrd phase, with a power cut in the middle of it.
  await writeJobDisk(ctx.jobDisk, { name: 'after-restore', script: jobScript(ctx, 'after-restore') });
  const cutLog = join(work, `${replacement.spec.role}-initrd-power-cut.serial.log`);
  const cut = await report.phase(
    'reboot: the initrd puts / back; the power is cut halfway',
    () =>
      boot(
        machineBoot(ctx, replacement, 'initrd phase (power cut)', cutLog, {
          when: COPYING_ROOT,
          afterMs: 8_000,
        }),
      ),
    (r) => r.ended,
  );
  report.check(
    'the power was cut while the initrd phase copied /',
    cut.ended === 'power cut' && COPYING_ROOT.test(serialText(cutLog)) && !/\/ and \/boot are back/.test(serialText(cutLog)),
  );

  // 5. The next boot finishes the initrd phase, then the first boot runs post.restore.
  const first = await runJob(ctx, replacement, 'boot: the initrd phase again, then post.restore', undefined, 'first-boot');
  checkInitrdAndPostRestore(ctx, first, 'the initrd phase ran again and finished');
  const journal = readText(first.result.dir, 'resume-journal.txt');
  report.check(
    'post.restore reinstalled GRUB and loaded the database',
    /installing GRUB on \/dev\/vda/.test(journal) && /postgresql: loaded shop/.test(journal),
  );

  // 6. One more reboot: the restored machine on its own.
  const final = await runJob(ctx, replacement, 'reboot: the restored machine', { name: 'check', script: jobScript(ctx, 'check') });
  requireJob(final, 'the check job');
  checkBootedThroughGrub(ctx, final.serialLog, 'the restored machine');
  const cmdline = readText(final.result.dir, 'cmdline.txt');
  report.check('it boots the restored root (its original UUID)', cmdline.includes(`root=UUID=${original.uuids.root}`), cmdline.trim());
  const dbAfter = readText(final.result.dir, 'db.txt');
  report.check('the database is back, row for row', dbAfter === dbBefore, dbAfter);
  checkDatabase(ctx, final.result.dir, committed);
  checkStatusRestored(ctx, final.result.dir);
  compareMachines(ctx, join(life.result.dir, 'fingerprint'), join(final.result.dir, 'fingerprint'), original);
}

/** What the original machine's life made on /home, as the fingerprint must have seen it (else the comparison proves little). */
const LIFE_SEEN: { path: string; what: string; seen: (e: Entry) => boolean }[] = [
  {
    path: '/home/projects/plan.txt',
    what: 'an ACL and a user xattr',
    seen: (e) => /system\.posix_acl_access=/.test(e.xattrs ?? '') && /user\.origin=/.test(e.xattrs ?? ''),
  },
  {
    path: '/home/projects',
    what: 'a default ACL and setgid',
    seen: (e) => /system\.posix_acl_default=/.test(e.xattrs ?? '') && e.mode === '02775',
  },
  { path: '/home/alice/random.bin', what: 'a trusted xattr', seen: (e) => /trusted\.syn3=/.test(e.xattrs ?? '') },
  { path: '/home/alice/numbers.txt', what: 'setuid, owned by alice', seen: (e) => e.mode === '04750' && e.owner === '1001:1001' },
  { path: '/home/bob/pipe', what: 'a fifo', seen: (e) => e.type === 'p' },
  { path: '/home/bob/sparse.img', what: 'a 64 MiB sparse file', seen: (e) => e.size === String(64 * 2 ** 20) && Boolean(e.sha256) },
];

function compareMachines(ctx: Context, beforeDir: string, afterDir: string, original: Machine): void {
  const before = readFingerprint(beforeDir);
  const unseen = LIFE_SEEN.filter((l) => {
    const e = before.get(l.path);
    return !e || !l.seen(e);
  });
  ctx.report.check(
    'the original fingerprint saw ACLs, default ACLs, xattrs, setuid, a fifo and a sparse file',
    unseen.length === 0,
    unseen.length ? `not seen: ${unseen.map((l) => `${l.path} (${l.what})`).join(', ')}` : undefined,
  );
  const c = compareFingerprints(before, readFingerprint(afterDir), ALLOWED_DIFFERENCES);
  const shown = c.failures
    .slice(0, 15)
    .map((d) => `${d.path}: ${d.what}`)
    .join('; ');
  ctx.report.check(
    `the fingerprint matches: ${c.compared} paths with content, owner, mode, ACLs and xattrs`,
    c.failures.length === 0,
    c.failures.length ? `${c.failures.length} unexpected difference(s): ${shown}` : undefined,
  );
  for (const a of c.allowed) {
    if (a.count)
      ctx.report.note(`allowed to differ: ${a.allowance.path} (${a.allowance.why})`, `${a.count} path(s), e.g. ${a.examples.join('; ')}`);
  }
  checkMountIdentity(ctx, beforeDir, afterDir, original);
}
