/**
 * Takes the dump step apart when it misses its goal: the same xfsdump, cold
 * each time, written in the ways the program writes it (straight into the
 * target file, with and without the fsync; through Node with a hash, as the
 * stream targets get it), each right after a bare `xfsdump -f FILE`.
 * The variants the new dump path made moot (a shell pipe, a Node pipe without
 * hashing, "direct + fsync", which is now the program's own step) are gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createWriteStream, fsyncSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { dumpHome, xfsdumpArgs } from '../actors/xfsdump.js';
import { Measure } from '../src/system/streams.js';
import { FileTarget } from '../src/targets/file.js';
import { cpuSeconds, dropCaches, timeRun } from './util.js';

export interface DiagnosisRow {
  name: string;
  ms: number;
  /** The bare dump run just before it. */
  bareMs: number;
  ratio: number;
  /** That bare dump plus `sync FILE` (an fsync) right after it. */
  bareFsyncMs: number;
  ratioFsync: number;
  cpu: number;
  bareCpu: number;
}

export interface DiagnoseInput {
  home: string;
  /** A directory on the target volume. */
  dir: string;
  host: string;
  /** The program's rsync calls, run before each dump as the systemSync step does. */
  calls: string[][];
}

function exitOf(child: ChildProcess): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) =>
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`xfsdump exited with ${code}: ${stderr.slice(-500)}`)))),
  );
}

async function nodePipe(args: string[], file: string, o: { hash: boolean; flush: boolean }): Promise<number> {
  const t0 = performance.now();
  const child = spawn('xfsdump', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = exitOf(child);
  const measure = new Measure();
  const sink = createWriteStream(file, { mode: 0o600, flush: o.flush });
  await (o.hash ? pipeline(child.stdout!, measure, sink) : pipeline(child.stdout!, sink));
  await exited;
  if (o.hash) measure.digest();
  return performance.now() - t0;
}

/** xfsdump writes the file itself (the file is its stdout), as runToFile does; optionally one fsync. */
async function directToFd(args: string[], file: string, fsync: boolean): Promise<number> {
  const t0 = performance.now();
  const fd = openSync(file, 'w', 0o600);
  try {
    const child = spawn('xfsdump', args, { stdio: ['ignore', fd, 'pipe'] });
    await exitOf(child);
    if (fsync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return performance.now() - t0;
}

/**
 * Paired: before every variant, a bare dump right next to it, each from a cold
 * cache; the machine is shared, so a ratio of neighbours is steadier than a
 * ratio of bests taken minutes apart. CPU seconds (this process and its
 * children) are given too: they depend much less on what else runs.
 */
export async function diagnoseDump(d: DiagnoseInput): Promise<DiagnosisRow[]> {
  const file = join(d.dir, 'diag.dump');
  const labels = { home: d.home, sessionLabel: `syn3-backup ${d.host}-20250101T000000Z`, mediaLabel: d.host };
  const toFile = xfsdumpArgs(labels, file);
  const toStdout = xfsdumpArgs(labels);
  let fsyncMs = 0;
  const bareCase = async () => {
    const ms = timeRun('xfsdump', toFile).ms;
    fsyncMs = timeRun('sync', [file]).ms;
    return ms;
  };
  const variants: Array<[string, () => Promise<number>]> = [
    ["direct, no fsync: the file as xfsdump's stdout", () => directToFd(toStdout, file, false)],
    ["node pipe + sha256 + flush (the stream targets' path)", () => nodePipe(toStdout, file, { hash: true, flush: true })],
    [
      "actor: dumpHome + FileTarget (the program's step, no CLI)",
      async () => {
        const target = new FileTarget({ type: 'file', path: d.dir, require_mount: false, retention: { keep: 1 } });
        const t0 = performance.now();
        await dumpHome({ ...labels, id: 'diag', target });
        const ms = performance.now() - t0;
        await target.cleanPending();
        return ms;
      },
    ],
  ];
  const measure = async (body: () => Promise<number>): Promise<{ ms: number; cpu: number }> => {
    dropCaches();
    for (const args of d.calls) timeRun('rsync', args);
    const cpu0 = cpuSeconds();
    const ms = await body();
    const cpu = cpuSeconds() - cpu0;
    rmSync(file, { force: true });
    return { ms, cpu };
  };
  const rows: DiagnosisRow[] = [];
  for (const [name, body] of variants) {
    const bare = await measure(bareCase);
    const bareFsyncMs = bare.ms + fsyncMs;
    const v = await measure(body);
    rows.push({
      name,
      ms: v.ms,
      bareMs: bare.ms,
      ratio: v.ms / bare.ms,
      bareFsyncMs,
      ratioFsync: v.ms / bareFsyncMs,
      cpu: v.cpu,
      bareCpu: bare.cpu,
    });
    process.stderr.write(
      `[bench] diagnosis: ${name}: ${v.ms.toFixed(0)} ms (${v.cpu.toFixed(2)} s CPU) against bare ${bare.ms.toFixed(0)} ms, + fsync ${bareFsyncMs.toFixed(0)} ms (${bare.cpu.toFixed(2)} s CPU)\n`,
    );
  }
  return rows;
}
