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
 * checked. Two variants, by default one after the other: spool
 * (spool-variant.ts: backups on an SMB share, a real smbd on this host's
 * loopback; the whole file system compared, a power cut in the initrd phase)
 * and snapshot (snapshot-variant.ts: backups on a second disk, the file
 * target; a snapshot-mode backup while a client commits to PostgreSQL).
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
import { snapshotDrill } from './snapshot-variant.js';
import { spoolDrill } from './spool-variant.js';
import type { Shared } from './steps.js';
import { cacheDir, ensureTemplate, guestNode } from './template.js';

const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DRILL_ROOT = join(PACKAGE_ROOT, 'drill');

const VARIANTS: Record<string, { title: string; run: (shared: Shared) => Promise<void> }> = {
  spool: {
    title: 'spool variant: a living server backed up in spool mode to an SMB share, a power cut in the initrd phase',
    run: spoolDrill,
  },
  snapshot: { title: 'snapshot variant: PostgreSQL committing on /home while a snapshot-mode backup runs', run: snapshotDrill },
};

const USAGE = `usage: npm run drill [-- [--variant spool|snapshot] [--keep]]

The disaster-recovery drill in QEMU (see README, "The drill"). An original server is installed,
backs up, burns, and a fresh machine restores it and boots; then the restored machine is checked.
  --variant spool     the server lives (users, ACLs, xattrs, a database) and backs up in spool mode
                      to an SMB share (smbd on this host's loopback, reached through QEMU's user
                      network with restrict=on); the fresh installation restores from the share;
                      the initrd phase is cut by a power failure once; the restored machine must
                      match the original's fingerprint and have its database back row for row
  --variant snapshot  PostgreSQL's cluster on /home, a client committing row after row while the
                      backup runs in snapshot mode (postgresql.freeze, an LVM snapshot) onto a
                      second disk (the file target); restored, PostgreSQL replays its WAL, its
                      rows are a gapless prefix of what was committed, pg_amcheck passes; the
                      report gives the freeze window
  (no --variant)      both, spool first; each has its own section in the report, and the drill
                      passes only if both do
  --keep              keep the work folder (it is kept anyway when the drill fails)
SYN3_DRILL_CACHE: where the Debian template is cached (default ${cacheDir()}).
`;

function variantsAsked(args: string[]): string[] {
  const asked: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = a === '--variant' ? args[++i] : a.startsWith('--variant=') ? a.slice('--variant='.length) : undefined;
    if (a === '--variant' || a.startsWith('--variant=')) {
      if (!value || !VARIANTS[value]) {
        throw new UserError('usage', `--variant wants spool or snapshot, not ${value ?? 'nothing'}`, {
          hint: 'npm run drill -- --help',
        });
      }
      asked.push(value);
    } else if (a !== '--keep') {
      throw new UserError('usage', `unknown argument ${a}`, { hint: 'npm run drill -- --help' });
    }
  }
  return asked.length ? [...new Set(asked)] : Object.keys(VARIANTS);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const keep = args.includes('--keep');
  const variants = variantsAsked(args);
  await requireDrillTools();
  const work = await mkdtemp(join(tmpdir(), 'syn3-drill-'));
  const report = new Report((line) => process.stdout.write(`${line}\n`));
  process.stdout.write(`syn3-backup drill (${variants.join(', ')}) in ${work}\n`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      powerOffAll();
      process.stdout.write(`\ndrill interrupted (${signal}); the machines are off. Kept for reading: ${work}\n`);
      process.exit(130);
    });
  }
  const images: string[] = [];
  let ran = 0;
  try {
    const template = await report.phase(
      'the Debian template (mmdebstrap, cached)',
      () => ensureTemplate(DRILL_ROOT, (m) => process.stdout.write(`  ${m}\n`)),
      (t) => (t.built.length ? `built: ${t.built.join(', ')}` : 'from the cache'),
    );
    const shared: Shared = { template, node: await guestNode(), work, drillRoot: DRILL_ROOT, packageRoot: PACKAGE_ROOT, report, images };
    // Each variant runs to its end or its first failure; a failed one does not keep the next from telling its own result.
    for (const name of variants) {
      report.section(VARIANTS[name]!.title);
      await failuresReported(report, () => VARIANTS[name]!.run(shared));
      ran++;
    }
  } catch (e) {
    reportFailure(report, e);
  }
  const outcome = ran === variants.length && !report.failed.length ? 'PASSED' : 'FAILED';
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

async function failuresReported(report: Report, body: () => Promise<unknown>): Promise<void> {
  try {
    await body();
  } catch (e) {
    reportFailure(report, e);
  }
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
