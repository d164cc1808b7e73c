/**
 * Snapshot mode's benchmarks, in a lane guest (this host has no
 * device-mapper): one run, QEMU TCG on this machine's cores.
 *
 * 1. The dump stage of a snapshot-mode backup against a bare xfsdump of the
 *    same kind of snapshot, mounted the same way, to a file then fsynced:
 *    alternating, cold cache before each, the median of each side.
 * 2. The freeze window with both shipped freezers (MariaDB, PostgreSQL, their
 *    data on /home) while a client commits to each: milliseconds, per backup.
 *
 * 3. The tape target's write on the real st driver against a bare dd of the
 *    same xfsdump stream to the same /dev/nst0 (lane-tape.ts), in a guest of
 *    its own.
 *
 * `npm run bench:lane -- --only snapshot|tape` runs one part and keeps the
 * other's figures from bench/lane-results.json. Writes bench/lane-results.json.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMariadb, startPostgres } from '../test/lane/databases.js';
import { type Guest, startGuest } from '../test/lane/guest.js';
import { makeSnapshotServer, SERVER } from '../test/lane/snapshot-server.js';
import { benchLaneTape } from './lane-tape.js';
import { fmtMs, median, readLog, stepMs } from './util.js';

const RESULTS = fileURLToPath(new URL('../../bench/lane-results.json', import.meta.url));
const { home: HOME, modules: MODULES, config: CONFIG } = SERVER;
const LOG = '/var/lib/syn3-backup/syn3-backup.log';
const PAIRS = 3;
const WINDOWS = 3;

function say(m: string): void {
  process.stdout.write(`[bench lane ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
}

const sh = (g: Guest, script: string, timeoutMs = 15 * 60_000) => g.ok(['bash', '-euo', 'pipefail', '-c', script], { timeoutMs });

async function setUp(g: Guest): Promise<void> {
  await makeSnapshotServer(g, { homeMiB: 1600, config: { size: '256M', keep: 2 } });
  // A home: 4000 files of 10 KiB in 40 folders (split makes them in one process: one per file is slow
  // under TCG), and 12 files of 24 MiB: about 330 MiB in all.
  await sh(
    g,
    `for d in $(seq 40); do mkdir -p ${HOME}/u$d && head -c 1000K /dev/urandom | split -a 3 -b 10K - ${HOME}/u$d/f; done && ` +
      `for i in $(seq 12); do head -c 24M /dev/urandom > ${HOME}/u$i/large.bin; done`,
  );
}

/** Milliseconds of one shell script's timed part, as it prints them ("ms=N"). */
async function timed(g: Guest, script: string): Promise<number> {
  const out = (await sh(g, `${script}\necho "ms=$(( (t1 - t0) / 1000000 ))"`)).stdout;
  const m = /ms=(\d+)/.exec(out);
  if (!m) throw new Error(`no timing in: ${out.slice(-300)}`);
  return Number(m[1]);
}

async function bareDump(g: Guest): Promise<number> {
  return timed(
    g,
    [
      'lvcreate -q -y -s -L 256M -n benchsnap vg0/home >/dev/null',
      'mkdir -p /mnt/bare && mount -o ro,nouuid /dev/vg0/benchsnap /mnt/bare',
      'sync; echo 3 > /proc/sys/vm/drop_caches',
      't0=$(date +%s%N)',
      'xfsdump -l 0 -J -F -L bare -M lane -f /backup/bare.dump /mnt/bare >/dev/null 2>&1 && sync /backup/bare.dump',
      't1=$(date +%s%N)',
      'umount /mnt/bare && lvremove -q -y vg0/benchsnap >/dev/null && rm -f /backup/bare.dump',
    ].join('\n'),
  );
}

async function programDump(g: Guest, host: string): Promise<{ dumpMs: number; freezeMs: number }> {
  await sh(g, 'sync; echo 3 > /proc/sys/vm/drop_caches');
  const before = (await g.run(['stat', '-c', '%s', LOG])).stdout.trim();
  const r = await g.run(['syn3-backup', '--config', CONFIG, 'backup'], { timeoutMs: 20 * 60_000 });
  if (r.exitCode !== 0) throw new Error(`syn3-backup backup failed: ${r.stderr.slice(-800)}`);
  writeFileSync(host, await g.readFile(LOG));
  const entries = readLog(host, Number(before || 0));
  const dumpMs = stepMs(entries, 'dump');
  if (dumpMs === undefined) throw new Error('no dump step in the log');
  // Where the snapshot step's and the dump step's time went, line by line (ms from the step's start).
  for (const step of ['snapshot', 'dump']) {
    const start = entries.find((e) => e.msg === `${step}: started`);
    if (!start) continue;
    const t0 = Date.parse(start.time);
    const lines = entries.filter((e) => Date.parse(e.time) >= t0 && (e.step === step || /^(freeze|snapshot|dump):/.test(e.msg)));
    const until = lines.findIndex((e) => e.msg === `${step}: done`);
    for (const e of lines.slice(0, until < 0 ? undefined : until + 1)) say(`  +${Date.parse(e.time) - t0} ms ${e.msg}`);
  }
  const status = JSON.parse((await g.ok(['syn3-backup', '--config', CONFIG, 'status', '--json'])).stdout) as {
    lastSuccess: { freezeWindowMs: number };
  };
  return { dumpMs, freezeMs: status.lastSuccess.freezeWindowMs };
}

async function snapshotBench(): Promise<Record<string, unknown>> {
  const started = Date.now();
  const g = await startGuest({
    name: 'bench',
    disks: [
      { serial: 'vg', sizeMiB: 2560 },
      { serial: 'backup', sizeMiB: 2048 },
    ],
    share: ['examples/modules'],
  });
  const work = mkdtempSync(join(tmpdir(), 'syn3-bench-lane-'));
  const logCopy = join(work, 'log');
  try {
    say(`guest up in ${g.bootSeconds.toFixed(1)} s; writing a home of about 330 MiB`);
    await setUp(g);
    // A first backup, so both sides then find the same home (the system copy and spool are made).
    await programDump(g, logCopy);
    const bare: number[] = [];
    const program: number[] = [];
    for (let i = 0; i < PAIRS; i++) {
      bare.push(await bareDump(g));
      program.push((await programDump(g, logCopy)).dumpMs);
      say(
        `pair ${i + 1}: bare xfsdump -f + fsync of a mounted snapshot ${fmtMs(bare[i]!)}, the program's dump stage ${fmtMs(program[i]!)}`,
      );
    }
    const dumpRatio = median(program) / median(bare);
    say(`dump stage: median ${fmtMs(median(program))} against bare ${fmtMs(median(bare))}: ratio ${dumpRatio.toFixed(3)} (goal <= 1.05)`);

    say('starting MariaDB and PostgreSQL with their data on /home, the shipped freezers, a committing client for each');
    await sh(
      g,
      `install -m 0700 /opt/syn3-backup/examples/modules/mariadb.freeze /opt/syn3-backup/examples/modules/postgresql.freeze ${MODULES}/`,
    );
    const maria = await startMariadb(g, `${HOME}/mysql`);
    const pg = await startPostgres(g, `${HOME}/pgdata`);
    await maria.sql('CREATE DATABASE shop; CREATE TABLE shop.orders (n INT PRIMARY KEY, pad TEXT) ENGINE=InnoDB;');
    await pg.sql('CREATE TABLE orders (n int PRIMARY KEY, pad text);');
    await g.start('maria-writer', [
      'bash',
      '-c',
      `i=0; while [ ! -e /run/stop ]; do i=$((i+1)); mariadb --no-defaults --socket=${maria.socket} -u root -e "INSERT INTO shop.orders VALUES ($i, REPEAT('x', 2000))"; done`,
    ]);
    await g.start('pg-writer', [
      'bash',
      '-c',
      `i=0; while [ ! -e /run/stop ]; do i=$((i+1)); runuser -u postgres -- psql -XAtq -h ${pg.socketDir} -p ${pg.port} -c "INSERT INTO orders VALUES ($i, repeat('x', 2000))"; done`,
    ]);
    const windows: number[] = [];
    for (let i = 0; i < WINDOWS; i++) {
      windows.push((await programDump(g, logCopy)).freezeMs);
      say(`freeze window #${i + 1}: ${windows[i]} ms`);
    }
    await sh(g, 'touch /run/stop');
    await g.wait('maria-writer', 120_000);
    await g.wait('pg-writer', 120_000);
    const results = {
      at: new Date().toISOString(),
      where: `QEMU TCG guest (the lane), ${g.image.kernelRelease}, booted in ${g.bootSeconds.toFixed(1)} s`,
      dump: {
        bareMs: bare,
        programMs: program,
        ratio: dumpRatio,
        goal: 1.05,
        how: `alternating, ${PAIRS} pairs, cold cache before each, median of each side; bare = lvcreate -s, mount -o ro,nouuid, then timed: xfsdump -l0 -J -F -f FILE + sync FILE; program = "dump: started".."dump: done" of syn3-backup backup in snapshot mode (mount, xfsdump -t, fsync, checks, unmount, lvremove)`,
      },
      freezeWindow: {
        ms: windows,
        medianMs: median(windows),
        goalMs: 2000,
        how: 'first freezer said frozen to the last one exited, as syn3-backup measures and keeps it; the MariaDB and PostgreSQL freezers of examples/modules, a client committing one 2 KB row at a time to each',
      },
      seconds: (Date.now() - started) / 1000,
    };
    process.stdout.write(
      `\nsnapshot mode in the lane: dump stage ${dumpRatio.toFixed(3)} x a bare xfsdump of the mounted snapshot (goal 1.05: ${dumpRatio <= 1.05 ? 'met' : 'MISSED'}); ` +
        `freeze window ${windows.join(', ')} ms, median ${median(windows)} ms (goal 2000 ms: ${median(windows) <= 2000 ? 'met' : 'MISSED'})\n`,
    );
    return results;
  } catch (e) {
    g.keep();
    throw e;
  } finally {
    await g.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--only');
  const only = at >= 0 ? process.argv[at + 1] : undefined;
  if (only !== undefined && only !== 'snapshot' && only !== 'tape') throw new Error('--only takes snapshot or tape');
  const earlier = existsSync(RESULTS) ? (JSON.parse(readFileSync(RESULTS, 'utf8')) as Record<string, unknown>) : {};
  let results: Record<string, unknown> = { ...earlier };
  if (only !== 'tape') {
    results = { ...results, ...(await snapshotBench()) };
  }
  if (only !== 'snapshot') {
    const work = mkdtempSync(join(tmpdir(), 'syn3-bench-lane-tape-'));
    try {
      const started = Date.now();
      const tape = await benchLaneTape(say, work);
      results.tape = { ...tape, at: new Date().toISOString(), seconds: (Date.now() - started) / 1000 };
      process.stdout.write(
        `\ntape on the real st driver: the target's write ${tape.ratio.toFixed(3)} x the speed of a bare dd bs=256KiB of the same stream (goal >= ${tape.goal}: ${tape.ratio >= tape.goal ? 'met' : 'MISSED'})\n`,
      );
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`written: ${RESULTS}\n`);
}

await main();
