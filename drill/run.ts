#!/usr/bin/env node
/**
 * npm run drill: the disaster-recovery drill in virtual machines.
 *
 * A small real Debian 12 server is installed on a disk image (MBR, /boot
 * ext4, / XFS, /home XFS on LVM, GRUB, fstab by UUID, PostgreSQL, syn3-backup
 * installed with "syn3-backup install") and boots under QEMU through its own
 * GRUB. It lives a little (users, ACLs, xattrs, a database), is backed up by
 * "syn3-backup tick" onto a second disk, and fingerprinted. Then it burns: its
 * disk is deleted. A new disk of another size gets a fresh installation, which
 * restores the host from the backup disk ("syn3-backup restore --confirm"),
 * reboots into the initrd phase (the power is cut in the middle of it once),
 * boots again to finish it and to run post.restore, and reboots once more. The
 * restored machine must boot through GRUB, match the fingerprint but for an
 * explicit list, have its database back and say it was restored.
 *
 * Everything lives in one temp dir, removed on success and kept (serial logs
 * included) on failure. The Debian template is cached (SYN3_DRILL_CACHE).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUserError } from '../src/errors.js';
import { requireDrillTools } from './tools.js';
import { ALLOWED_DIFFERENCES } from './allowed-differences.js';
import { compareFingerprints, readFingerprint, type Entry } from './fingerprint.js';
import { DrillFailure } from './failure.js';
import { readJobDisk, writeJobDisk, type Job, type JobResult } from './job-disk.js';
import { installMachine, makeBackupDisk, type Machine, type MachineSpec } from './machine.js';
import { boot, powerOffAll, serialText, type BootSpec } from './qemu.js';
import { Report } from './report.js';
import { cacheDir, ensureTemplate, guestNode } from './template.js';

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DRILL_ROOT = join(PACKAGE_ROOT, 'drill');
const JOBS = join(DRILL_ROOT, 'guest', 'jobs');
const HOST = 'syn3drill';

const ORIGINAL: MachineSpec = { role: 'original', hostname: HOST, diskSize: '4G', bootSize: '256M', rootSize: '1600M', homeSize: '1700M' };
/** The new disk is bigger, its partitions too: a restore must not need the same geometry. */
const REPLACEMENT: MachineSpec = {
  role: 'replacement',
  hostname: 'new-server',
  diskSize: '5G',
  bootSize: '320M',
  rootSize: '2G',
  homeSize: '2200M',
};

const CONFIG = `# syn3-backup on the drill machine: hourly backups onto the backup disk.
host: ${HOST}
schedule:
  every: 1h
target:
  type: file
  path: /backup
  require_mount: true
`;

/** The initrd phase's log line as it starts to copy / back (on the serial console, CRLF). */
const COPYING_ROOT = /copying \/home\/\.syn3systembackup\/ to \/\r?$/m;

/** One boot's time limit under TCG on two cores; a healthy boot takes a fraction of it. */
const BOOT_TIMEOUT_MS = 12 * 60_000;

interface Context {
  work: string;
  backupDisk: string;
  jobDisk: string;
  report: Report;
}

async function main(): Promise<number> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    process.stdout.write(
      `usage: npm run drill [-- --keep]\n\nThe disaster-recovery drill in QEMU (see README, "The drill"). --keep keeps the work folder.\nSYN3_DRILL_CACHE: where the Debian template is cached (default ${cacheDir()}).\n`,
    );
    return 0;
  }
  const keep = process.argv.includes('--keep');
  await requireDrillTools();
  const work = await mkdtemp(join(tmpdir(), 'syn3-drill-'));
  const report = new Report((line) => process.stdout.write(`${line}\n`));
  const ctx: Context = { work, backupDisk: join(work, 'backup-disk.img'), jobDisk: join(work, 'job-disk.img'), report };
  process.stdout.write(`syn3-backup drill in ${work}\n`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      powerOffAll();
      process.stdout.write(`\ndrill interrupted (${signal}); the machines are off. Kept for reading: ${work}\n`);
      process.exit(130);
    });
  }
  let outcome = 'FAILED';
  try {
    await drill(ctx);
    outcome = report.failed.length ? 'FAILED' : 'PASSED';
  } catch (e) {
    const failure = e instanceof DrillFailure ? e : undefined;
    report.check(
      'the drill ran to its end',
      false,
      `${(e as Error).message}${failure?.serialLog ? ` (serial log: ${failure.serialLog})` : ''}`,
    );
    if (!failure && !isUserError(e)) process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  }
  const reportFile = join(work, 'report.txt');
  report.write(reportFile, outcome);
  process.stdout.write(`\n${report.text(outcome)}`);
  if (outcome === 'PASSED' && !keep) {
    await rm(work, { recursive: true, force: true });
    return 0;
  }
  for (const img of ['original.img', 'replacement.img', 'backup-disk.img'])
    if (outcome === 'PASSED') rmSync(join(work, img), { force: true });
  process.stdout.write(
    `\nKept for reading: ${work} (report.txt, *.serial.log, the job results per boot${outcome === 'FAILED' ? ', the disk images' : ''}).\n`,
  );
  return outcome === 'PASSED' ? 0 : 1;
}

async function drill(ctx: Context): Promise<void> {
  const { report, work } = ctx;
  const template = await report.phase(
    'the Debian template (mmdebstrap, cached)',
    () => ensureTemplate(DRILL_ROOT, (m) => process.stdout.write(`  ${m}\n`)),
    (t) => (t.built.length ? `built: ${t.built.join(', ')}` : 'from the cache'),
  );
  const node = await guestNode();
  const config = join(work, 'config.yaml');
  writeFileSync(config, CONFIG);
  const targetUuid = await makeBackupDisk(ctx.backupDisk, '3G');
  const inputs = { template, work, drillRoot: DRILL_ROOT, packageRoot: PACKAGE_ROOT, node, config, targetUuid };

  // 1. The original server.
  const original = await report.phase(`install the original machine (${ORIGINAL.diskSize} disk)`, () => installMachine(ORIGINAL, inputs));
  const life = await runJob(ctx, original, 'original: first boot, users and a database, syn3-backup tick', {
    name: 'life-and-backup',
    script: join(JOBS, 'life-and-backup.sh'),
  });
  requireJob(life, 'the backup job');
  checkBootedThroughGrub(ctx, life.serialLog, 'the original machine');
  const status = readJson(life.result.dir, 'status.json') as { lastSuccess?: { id?: string; size?: number } | null };
  const backups = readJson(life.result.dir, 'list.json') as Array<{ signature?: string; signedBy?: string }>;
  const publicKey = readText(life.result.dir, 'public-key.txt');
  report.check(
    "the backup is signed by the original's key (made by syn3-backup install)",
    /^ed25519:[A-Za-z0-9+/]{43}=$/.test(publicKey) && backups[0]?.signature === 'trusted' && backups[0]?.signedBy === publicKey,
    `${backups[0]?.signature ?? 'not listed'}, by ${backups[0]?.signedBy ?? 'nobody'}; key show: ${publicKey || 'nothing'}`,
  );
  report.check(
    'syn3-backup tick made a backup and says so',
    Array.isArray(backups) && backups.length === 1 && Boolean(status.lastSuccess?.id),
    `${Array.isArray(backups) ? backups.length : 0} backup(s) on the backup disk; last success ${status.lastSuccess?.id ?? 'none'} (${((status.lastSuccess?.size ?? 0) / 2 ** 20).toFixed(0)} MiB)`,
  );
  const dbBefore = readText(life.result.dir, 'db.txt');
  report.check('the database has rows before the fire', /^20000 [0-9a-f]{32}$/.test(dbBefore), dbBefore);

  // 2. The fire: nothing of the original machine is left but the backup disk.
  rmSync(original.disk);
  report.check('the original disk is gone', !existsSync(original.disk));

  // 3. A new disk, a fresh installation, the restore.
  // The fresh installation's configuration holds only the original's public key, as the papers do.
  const freshConfig = join(work, 'fresh-config.yaml');
  writeFileSync(freshConfig, `${CONFIG}trust:\n  public_keys:\n    - "${publicKey}"\n`);
  const replacement = await report.phase(`install a fresh machine on a new ${REPLACEMENT.diskSize} disk`, () =>
    installMachine(REPLACEMENT, { ...inputs, config: freshConfig }),
  );
  const restore = await runJob(ctx, replacement, 'fresh machine: syn3-backup restore --confirm, reboot', {
    name: 'fresh-install-restore',
    script: join(JOBS, 'fresh-install-restore.sh'),
    afterwards: 'reboot',
    files: { host: HOST },
  });
  requireJob(restore, 'the restore job');
  const seen = readJson(restore.result.dir, 'list.json') as Array<{ signature?: string; signedBy?: string }>;
  report.check(
    'the fresh machine, holding only the public key, trusts the backup',
    seen[0]?.signature === 'trusted' && seen[0]?.signedBy === publicKey,
    `${seen[0]?.signature ?? 'not listed'}, by ${seen[0]?.signedBy ?? 'nobody'}`,
  );
  checkBootedThroughGrub(ctx, restore.serialLog, 'the fresh machine');
  const restoreState = readJson(restore.result.dir, 'status.json') as { restore?: { state?: string } | null };
  report.check(
    'the restore waits for the reboot',
    restoreState.restore?.state === 'awaitingReboot',
    `restore state ${restoreState.restore?.state ?? 'none'}`,
  );

  // 4. The reboot into the initrd phase, with a power cut in the middle of it.
  await writeJobDisk(ctx.jobDisk, { name: 'after-restore', script: join(JOBS, 'after-restore.sh') });
  const cutLog = join(work, 'initrd-power-cut.serial.log');
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
  requireJob(first, 'the first boot');
  const firstSerial = serialText(first.serialLog);
  report.check(
    'the initrd phase ran again and finished',
    /syn3-backup: a restore is pending/.test(firstSerial) && /syn3-backup: \/ and \/boot are back; booting on/.test(firstSerial),
  );
  const resume = readText(first.result.dir, 'resume-result.txt');
  report.check(
    'post.restore finished (syn3-backup-resume.service)',
    /Result=success/.test(resume) && /ExecMainStatus=0/.test(resume),
    resume.replace(/\n/g, ' '),
  );
  const journal = readText(first.result.dir, 'resume-journal.txt');
  report.check(
    'post.restore reinstalled GRUB and loaded the database',
    /installing GRUB on \/dev\/vda/.test(journal) && /postgresql: loaded shop/.test(journal),
  );

  // 6. One more reboot: the restored machine on its own.
  const final = await runJob(ctx, replacement, 'reboot: the restored machine', { name: 'check', script: join(JOBS, 'check.sh') });
  requireJob(final, 'the check job');
  checkBootedThroughGrub(ctx, final.serialLog, 'the restored machine');
  const cmdline = readText(final.result.dir, 'cmdline.txt');
  report.check('it boots the restored root (its original UUID)', cmdline.includes(`root=UUID=${original.uuids.root}`), cmdline.trim());
  const dbAfter = readText(final.result.dir, 'db.txt');
  report.check('the database is back, row for row', dbAfter === dbBefore, dbAfter);
  const finalStatus = readJson(final.result.dir, 'status.json') as {
    restore?: { last?: { result?: string } | null; summary?: string } | null;
  };
  report.check(
    'syn3-backup status says restored',
    finalStatus.restore?.last?.result === 'restored',
    finalStatus.restore?.summary ?? 'no restore in the status',
  );
  compareMachines(ctx, join(life.result.dir, 'fingerprint'), join(final.result.dir, 'fingerprint'), original);
}

interface JobRun {
  result: JobResult;
  serialLog: string;
}

/** Boots the machine with a job on the job disk (or the one already there), then reads the results back. */
async function runJob(ctx: Context, m: Machine, title: string, job: Job | undefined, name = job?.name ?? 'job'): Promise<JobRun> {
  if (job) await writeJobDisk(ctx.jobDisk, job);
  const serialLog = join(ctx.work, `${m.spec.role}-${name}.serial.log`);
  await ctx.report.phase(title, () => boot(machineBoot(ctx, m, title, serialLog)));
  const result = await readJobDisk(ctx.jobDisk, join(ctx.work, `${m.spec.role}-${name}`));
  return { result, serialLog };
}

function machineBoot(ctx: Context, m: Machine, name: string, serialLog: string, powerCut?: BootSpec['powerCut']): BootSpec {
  return {
    name,
    serialLog,
    timeoutMs: BOOT_TIMEOUT_MS,
    disks: [{ file: m.disk, boot: true }, { file: ctx.backupDisk }, { file: ctx.jobDisk, serial: 'drilljob' }],
    ...(powerCut ? { powerCut } : {}),
  };
}

function requireJob(j: JobRun, what: string): void {
  if (j.result.rc === 0) return;
  const tail = j.result.log.split('\n').filter(Boolean).slice(-8).join('\n    ');
  throw new DrillFailure(
    `${what} ${j.result.rc === null ? 'never ran (no result on the job disk)' : `exited with ${j.result.rc}`}${tail ? `; its last lines:\n    ${tail}` : ''}`,
    j.serialLog,
  );
}

function checkBootedThroughGrub(ctx: Context, serialLog: string, who: string): void {
  const text = serialText(serialLog);
  ctx.report.check(
    `${who} booted from its disk through GRUB`,
    /GNU GRUB/.test(text) && /Booting `Debian GNU\/Linux/.test(text) && /Loading Linux/.test(text),
  );
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
  const mountsBefore = mountIdentity(beforeDir);
  const mountsAfter = mountIdentity(afterDir);
  for (const mp of ['/', '/boot', '/home']) {
    ctx.report.check(
      `${mp}: same type, UUID and label`,
      mountsBefore[mp] !== undefined && mountsBefore[mp] === mountsAfter[mp],
      `${mountsBefore[mp]} → ${mountsAfter[mp]}`,
    );
  }
  ctx.report.check("/ has the original machine's UUID", mountsAfter['/']?.includes(original.uuids.root) ?? false);
}

/** fstype, UUID and label of each mounted file system, from lsblk. */
function mountIdentity(dir: string): Record<string, string> {
  interface Dev {
    fstype?: string | null;
    uuid?: string | null;
    label?: string | null;
    mountpoint?: string | null;
    children?: Dev[];
  }
  const out: Record<string, string> = {};
  const walk = (d: Dev) => {
    if (d.mountpoint) out[d.mountpoint] = `${d.fstype} ${d.uuid} ${d.label ?? '-'}`;
    d.children?.forEach(walk);
  };
  (JSON.parse(readFileSync(join(dir, 'lsblk.json'), 'utf8')) as { blockdevices: Dev[] }).blockdevices.forEach(walk);
  return out;
}

function readText(dir: string, name: string): string {
  try {
    return readFileSync(join(dir, name), 'utf8').trim();
  } catch {
    return '';
  }
}

function readJson(dir: string, name: string): unknown {
  const text = readText(dir, name);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return {};
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`drill: ${isUserError(e) ? e.paragraph() : ((e as Error).stack ?? String(e))}\n`);
    process.exit(isUserError(e) ? e.exitCode : 1);
  },
);
