/**
 * The drill's database proof of snapshot mode (issue 11, item 5): the original
 * backs up in snapshot mode while a client keeps committing rows to the
 * "drill" database, whose cluster (data directory and WAL) is on /home; the
 * shipped postgresql.freeze holds PostgreSQL while LVM snapshots /home, and
 * the spool module leaves that database to the snapshot. After the restore,
 * PostgreSQL must start on the restored files (it replays its WAL), the rows
 * must be a gapless prefix of what the client committed, holding every row
 * committed before the freeze and none begun after it, and pg_amcheck must pass.
 */
import { lastLines } from '../src/system/run.js';
import { readText, type Context } from './steps.js';

/** What the original's life job says of the freeze and the client: checked, and kept for the restored machine's checks. */
export interface Committed {
  committed: number;
  bounds: Bounds | undefined;
  windowMs: number | undefined;
}

export function checkFrozenWhileCommitting(ctx: Context, lifeDir: string, windowMs: number | undefined): Committed {
  const { report } = ctx;
  report.check(
    "PostgreSQL's data directory is on /home",
    readText(lifeDir, 'data-directory.txt') === '/home/pgdata',
    readText(lifeDir, 'data-directory.txt'),
  );
  const [vg, vgSize, vgFree] = readText(lifeDir, 'vgs.txt').split(/\s+/);
  report.note(`the volume group ${vg ?? '?'} has room for the snapshot`, `${vgSize ?? '?'} MiB, ${vgFree ?? '?'} MiB free`);
  const freeze = freezeTimes(readText(lifeDir, 'syn3-backup.log'));
  report.check(
    'the backup froze PostgreSQL with postgresql.freeze and says how long',
    freeze?.freezers.includes('/usr/backup/modules/postgresql.freeze') === true && typeof windowMs === 'number',
    `freezers: ${freeze?.freezers.join(', ') || 'none in the log'}; status: databases frozen ${windowMs ?? '?'} ms`,
  );
  const commits = readCommits(readText(lifeDir, 'commits.log'));
  const committed = Number(readText(lifeDir, 'committed.txt'));
  const bounds = freeze ? prefixBounds(commits, freeze) : undefined;
  report.check(
    'the client kept committing, before the freeze and after it',
    committed > 0 && commits.length === committed && bounds !== undefined && bounds.before > 0 && bounds.after < committed,
    `rows 1..${committed} committed (${readText(lifeDir, 'rows-at-stop.txt')} count/max at the stop); ` +
      `${bounds ? `${bounds.before} returned before the freeze began, row ${bounds.after + 1} began after it ended` : 'no freeze in the log'}`,
  );
  return { committed, bounds, windowMs };
}

export function checkDatabase(ctx: Context, dir: string, before: Committed): void {
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
