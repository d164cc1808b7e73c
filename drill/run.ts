#!/usr/bin/env node
/**
 * npm run drill: the disaster-recovery drill in virtual machines.
 *
 * A small real Debian 12 server is installed on a disk image (MBR, /boot
 * ext4, / XFS, /home XFS on LVM, GRUB, fstab by UUID, PostgreSQL, syn3-backup
 * installed with "syn3-backup install") and boots under QEMU through its own
 * GRUB. It lives a little, is backed up by "syn3-backup tick", and burns: its
 * disk is deleted. A new disk of another size gets a fresh installation, which
 * restores the host from the backups ("syn3-backup restore --confirm"),
 * reboots into the initrd phase and runs post.restore; the restored machine is
 * checked. The original backs up in snapshot mode while a client commits to
 * PostgreSQL on /home, its spool module dumping another database, to an SMB
 * share (a real smbd on this host's loopback) or, with --target disk, to a
 * backup disk (the file target); the whole file system is compared and the
 * initrd phase is cut by a power failure once (scenario.ts).
 *
 * Everything lives in one temp dir, removed on success and kept (serial logs
 * included) on failure. The Debian template is cached (SYN3_DRILL_CACHE).
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUserError, UserError } from '../src/errors.js';
import { requireDrillTools } from './tools.js';
import { DrillFailure } from './failure.js';
import { powerOffAll } from './qemu.js';
import { Report } from './report.js';
import { drill, type DrillTarget } from './scenario.js';
import type { Shared } from './steps.js';
import { cacheDir, ensureTemplate, guestNode } from './template.js';

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DRILL_ROOT = join(PACKAGE_ROOT, 'drill');

const TITLE =
  'a living server backed up in snapshot mode while PostgreSQL commits, restored on a new disk, a power cut in the initrd phase';

const USAGE = `usage: npm run drill [-- [--target share|disk] [--keep]]

The disaster-recovery drill in QEMU (see README, "The drill"). An original server is installed,
lives (users, ACLs, xattrs, PostgreSQL's cluster on /home), and backs up in snapshot mode
(postgresql.freeze, an LVM snapshot, the spool module's dump) while a client commits row after
row; it burns, and a fresh machine restores it; the initrd phase is cut by a power failure once;
the restored machine must boot through GRUB, match the original's fingerprint, have the spool's
database back row for row and the snapshot's as a gapless prefix PostgreSQL replayed from its WAL
(pg_amcheck passes); the report gives the freeze window.
  --target share  the backups go to an SMB share (smbd on this host's loopback, reached through
                  QEMU's user network with restrict=on) and come back from it (the default)
  --target disk   the backups go to a second disk (the file target) instead
  --keep          keep the work folder (it is kept anyway when the drill fails)
SYN3_DRILL_CACHE: where the Debian template is cached (default ${cacheDir()}).
`;

function targetAsked(args: string[]): DrillTarget {
  let target: DrillTarget = 'share';
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = a === '--target' ? args[++i] : a.startsWith('--target=') ? a.slice('--target='.length) : undefined;
    if (a === '--target' || a.startsWith('--target=')) {
      if (value !== 'share' && value !== 'disk') {
        throw new UserError('usage', `--target wants share or disk, not ${value ?? 'nothing'}`, { hint: 'npm run drill -- --help' });
      }
      target = value;
    } else if (a !== '--keep') {
      throw new UserError('usage', `unknown argument ${a}`, { hint: 'npm run drill -- --help' });
    }
  }
  return target;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const keep = args.includes('--keep');
  const target = targetAsked(args);
  await requireDrillTools();
  const work = await mkdtemp(join(tmpdir(), 'syn3-drill-'));
  const report = new Report((line) => process.stdout.write(`${line}\n`));
  process.stdout.write(`syn3-backup drill (backups to the ${target === 'share' ? 'SMB share' : 'backup disk'}) in ${work}\n`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      powerOffAll();
      process.stdout.write(`\ndrill interrupted (${signal}); the machines are off. Kept for reading: ${work}\n`);
      process.exit(130);
    });
  }
  const images: string[] = [];
  try {
    const template = await report.phase(
      'the Debian template (mmdebstrap, cached)',
      () => ensureTemplate(DRILL_ROOT, (m) => process.stdout.write(`  ${m}\n`)),
      (t) => (t.built.length ? `built: ${t.built.join(', ')}` : 'from the cache'),
    );
    const shared: Shared = { template, node: await guestNode(), work, drillRoot: DRILL_ROOT, packageRoot: PACKAGE_ROOT, report, images };
    report.section(TITLE);
    await drill(shared, target);
  } catch (e) {
    reportFailure(report, e);
  }
  // A failure anywhere is a failed check in the report (reportFailure): the outcome is the report's.
  const outcome = report.failed.length ? 'FAILED' : 'PASSED';
  report.write(join(work, 'report.txt'), outcome);
  process.stdout.write(`\n${report.text(outcome)}`);
  if (outcome === 'PASSED' && !keep) {
    await rm(work, { recursive: true, force: true });
    return 0;
  }
  if (outcome === 'PASSED') for (const img of images) rmSync(img, { force: true });
  process.stdout.write(
    `\nKept for reading: ${work} (report.txt, *.serial.log, the job results per boot${outcome === 'FAILED' ? ', the disk images' : ''}).\n`,
  );
  return outcome === 'PASSED' ? 0 : 1;
}

function reportFailure(report: Report, e: unknown): void {
  const failure = e instanceof DrillFailure ? e : undefined;
  report.check(
    'the drill ran to its end',
    false,
    `${(e as Error).message}${failure?.serialLog ? ` (serial log: ${failure.serialLog})` : ''}`,
  );
  if (!failure && !isUserError(e)) process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`drill: ${isUserError(e) ? e.paragraph() : ((e as Error).stack ?? String(e))}\n`);
    process.exit(isUserError(e) ? e.exitCode : 1);
  },
);
