/**
 * The drill's snapshot variant (issue 11, item 5): the original machine backs
 * up in snapshot mode while a client keeps committing rows to PostgreSQL,
 * whose data directory and WAL are on /home. The shipped postgresql.freeze
 * holds PostgreSQL while LVM snapshots /home; there is no spool module for it.
 * After the fire a fresh machine restores the backup and reboots once into the
 * initrd phase (no power cut: the spool variant proves that) and post.restore.
 * PostgreSQL must start on the restored files (it replays its WAL), its rows
 * must be a gapless prefix of what the client committed, holding every row
 * committed before the freeze and none begun after it, and pg_amcheck must
 * pass. The fingerprint comparison is left to the spool variant: what it
 * proves (the system copy, xfsdump and xfsrestore of every kind of file) is
 * the same code in both modes, and a /home that is written during the backup
 * differs from its snapshot by design; the databases are this variant's proof.
 */
import { readFileSync } from 'node:fs';
import { lastLines } from '../src/system/run.js';
import type { MachineSpec } from './machine.js';
import {
  burn,
  checkInitrdAndPostRestore,
  checkMountIdentity,
  checkStatusRestored,
  drillConfig,
  installAndBackUp,
  jobScript,
  ORIGINAL,
  readText,
  REPLACEMENT,
  restoreOnFreshMachine,
  runJob,
  variantContext,
  type Context,
  type Shared,
} from './steps.js';

const HOST = 'syn3snap';

/**
 * The original's volume group: the disk (4G) less /boot and / leaves about 2236 MiB for the PV;
 * /home takes 1700 MiB, so some 530 MiB are free. The snapshot gets 300 MiB: the writes to /home
 * during the dump (the client's rows, the WAL) are a few MiB.
 */
const SNAPSHOT_ORIGINAL: MachineSpec = { ...ORIGINAL, hostname: HOST };
const SNAPSHOT_CONFIG = drillConfig(HOST, 'mode: snapshot\nsnapshot:\n  size: 300M\n  freeze_timeout: 60s\n');

export async function snapshotDrill(shared: Shared): Promise<void> {
  const ctx = await variantContext(shared, 'snapshot', HOST, SNAPSHOT_CONFIG);
  const { report } = ctx;

  // 1. The original server, backing up in snapshot mode while a client commits.
  const { original, life, publicKey, status } = await installAndBackUp(
    ctx,
    SNAPSHOT_ORIGINAL,
    'original: PostgreSQL on /home, a client committing, syn3-backup tick (snapshot mode)',
    { name: 'snapshot-life-and-backup', script: jobScript(ctx, 'snapshot-life-and-backup') },
  );
  report.check(
    "PostgreSQL's data directory is on /home",
    readText(life.result.dir, 'data-directory.txt') === '/home/pgdata',
    readText(life.result.dir, 'data-directory.txt'),
  );
  const [vg, vgSize, vgFree] = readText(life.result.dir, 'vgs.txt').split(/\s+/);
  report.note(`the volume group ${vg ?? '?'} has room for the 300 MiB snapshot`, `${vgSize ?? '?'} MiB, ${vgFree ?? '?'} MiB free`);
  const freeze = freezeTimes(readText(life.result.dir, 'syn3-backup.log'));
  const windowMs = status.lastSuccess?.freezeWindowMs;
  report.check(
    'the backup froze PostgreSQL with postgresql.freeze and says how long',
    freeze?.freezers.includes('/usr/backup/modules/postgresql.freeze') === true && typeof windowMs === 'number',
    `freezers: ${freeze?.freezers.join(', ') || 'none in the log'}; status: databases frozen ${windowMs ?? '?'} ms`,
  );
  const commits = readCommits(readText(life.result.dir, 'commits.log'));
  const committed = Number(readText(life.result.dir, 'committed.txt'));
  const bounds = freeze ? prefixBounds(commits, freeze) : undefined;
  report.check(
    'the client kept committing, before the freeze and after it',
    committed > 0 && commits.length === committed && bounds !== undefined && bounds.before > 0 && bounds.after < committed,
    `rows 1..${committed} committed (${readText(life.result.dir, 'rows-at-stop.txt')} count/max at the stop); ` +
      `${bounds ? `${bounds.before} returned before the freeze began, row ${bounds.after + 1} began after it ended` : 'no freeze in the log'}`,
  );

  // 2. The fire. 3. The restore on a fresh machine.
  burn(ctx, original);
  const replacement = await restoreOnFreshMachine(ctx, REPLACEMENT, original, publicKey);

  // 4. One reboot: the initrd phase to its end, post.restore, and the checks in the same boot.
  const first = await runJob(ctx, replacement, 'reboot: the initrd phase, post.restore, PostgreSQL checked', {
    name: 'snapshot-check',
    script: jobScript(ctx, 'snapshot-check'),
    files: { 'after-restore.sh': readFileSync(jobScript(ctx, 'after-restore'), 'utf8') },
  });
  checkInitrdAndPostRestore(ctx, first, 'the initrd phase ran and finished');
  checkStatusRestored(ctx, first.result.dir);
  checkDatabase(ctx, first.result.dir, { committed, bounds, windowMs });
  checkMountIdentity(ctx, life.result.dir, first.result.dir, original);
}

function checkDatabase(
  ctx: Context,
  dir: string,
  before: { committed: number; bounds: Bounds | undefined; windowMs: number | undefined },
): void {
  const { report } = ctx;
  const log = readText(dir, 'postgresql.log');
  report.check(
    'PostgreSQL started on the restored /home/pgdata and replayed its WAL',
    readText(dir, 'pg-ready.txt') === 'yes' &&
      readText(dir, 'data-directory.txt') === '/home/pgdata' &&
      /automatic recovery in progress/.test(log) &&
      /redo done at/.test(log),
    lastLines(
      log
        .split('\n')
        .filter((l) => /recovery|redo|ready to accept/.test(l))
        .join('\n'),
      4,
    ) || 'no server log',
  );
  const [count, min, max] = readText(dir, 'rows.txt').split(' ').map(Number);
  const { committed, bounds } = before;
  const gapless = count !== undefined && count > 0 && min === 1 && max === count && count <= committed;
  report.check(
    'the rows are a gapless prefix of what was committed',
    gapless,
    `count ${count}, min ${min}, max ${max}; ${committed} committed before the fire`,
  );
  if (bounds) {
    report.check(
      'it holds every row committed before the freeze, none begun after it',
      count !== undefined && count >= bounds.before && count <= bounds.after,
      `${bounds.before} <= ${count} <= ${bounds.after}`,
    );
  }
  const amcheckRc = readText(dir, 'amcheck-rc.txt');
  const amcheck = readText(dir, 'amcheck.txt');
  const checked = amcheck.split('\n').filter((l) => /^pg_amcheck: checking /.test(l));
  const said = amcheck.split('\n').filter((l) => l.trim() && !/^pg_amcheck: checking /.test(l));
  report.check(
    "pg_amcheck --all --heapallindexed finds no corruption, the rows' table and index included",
    amcheckRc === '0' &&
      checked.some((l) => l.includes('"drill.public.ticks"')) &&
      checked.some((l) => l.includes('"drill.public.ticks_pkey"')),
    `exit ${amcheckRc || 'none'}, ${checked.length} relations checked${said.length ? `: ${lastLines(said.join('\n'), 3)}` : ''}`,
  );
  report.note(
    'freeze window and prefix',
    `databases frozen ${before.windowMs ?? '?'} ms; rows 1..${gapless ? count : '?'} of ${committed} committed`,
  );
}

export interface FreezeTimes {
  /** The first freezer's start, and the last one's release (epoch ms, the guest's clock). */
  startedAt: number;
  releasedAt: number;
  freezers: string[];
}

/** The freeze window as syn3-backup's log (JSON lines, ISO times) tells it: "freeze: starting F" … "freeze: F released". */
export function freezeTimes(log: string): FreezeTimes | undefined {
  let startedAt: number | undefined;
  let releasedAt: number | undefined;
  const freezers: string[] = [];
  for (const line of log.split('\n')) {
    let entry: { time?: string; msg?: string };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    const at = entry.time ? Date.parse(entry.time) : Number.NaN;
    const starting = /^freeze: starting (.+)$/.exec(entry.msg ?? '');
    if (starting?.[1] && !Number.isNaN(at)) {
      if (!freezers.length) startedAt = at;
      freezers.push(starting[1]);
    }
    if (/^freeze: .+ released$/.test(entry.msg ?? '') && !Number.isNaN(at)) releasedAt = at;
  }
  return startedAt !== undefined && releasedAt !== undefined ? { startedAt, releasedAt, freezers } : undefined;
}

/** The client's log: "N epoch-ms" once row N's commit had returned. */
export function readCommits(text: string): { n: number; at: number }[] {
  return text
    .split('\n')
    .map((l) => /^(\d+) (\d+)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ n: Number(m[1]), at: Number(m[2]) }));
}

export interface Bounds {
  /** Rows 1..before had returned before the freeze began: the snapshot must hold them. */
  before: number;
  /** Row after had returned once the freeze was over, so row after+1 began after the snapshot: it cannot hold it. */
  after: number;
}

export function prefixBounds(commits: { n: number; at: number }[], f: FreezeTimes): Bounds {
  const before = commits.filter((c) => c.at < f.startedAt).reduce((m, c) => Math.max(m, c.n), 0);
  const after = commits.find((c) => c.at > f.releasedAt)?.n ?? commits.at(-1)?.n ?? 0;
  return { before, after };
}
