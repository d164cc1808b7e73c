/** Small helpers for the benchmark: timing child processes, page cache, statistics, the JSON log. */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

export interface Timed {
  ms: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion and times it (wall clock, including process start). Throws on failure. */
export function timeRun(cmd: string, args: readonly string[], options: SpawnSyncOptions = {}): Timed {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  const ms = performance.now() - t0;
  const stdout = String(r.stdout ?? '');
  const stderr = String(r.stderr ?? '');
  if (r.error) throw r.error;
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}:\n${tail(stderr || stdout, 20)}`);
  }
  return { ms, stdout, stderr };
}

/** A shell pipeline, timed as a whole (set -o pipefail, so any failing stage fails). */
export function timeShell(script: string): Timed {
  return timeRun('bash', ['-c', `set -euo pipefail; ${script}`]);
}

export function tail(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

let cacheDropWorks: boolean | undefined;

/** Writes dirty pages back and empties the page, dentry and inode caches, so the next run starts cold. */
export function dropCaches(): boolean {
  spawnSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    cacheDropWorks = true;
  } catch {
    cacheDropWorks = false;
  }
  return cacheDropWorks;
}

export function cacheDropped(): boolean | undefined {
  return cacheDropWorks;
}

/** CPU seconds used so far by this process and by its children that have been waited for. */
export function cpuSeconds(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  // After "pid (comm) ": state is field 3, so utime..cstime (fields 14..17) sit at 11..14 here.
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
  return ticks / 100;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function min(xs: number[]): number {
  return Math.min(...xs);
}

export interface LogEntry {
  time: string;
  msg: string;
  step?: string;
  runId?: string;
  command?: string;
  level: number;
  [k: string]: unknown;
}

/** The JSON lines of the program's log, from a byte offset on (to see only one run's lines). */
export function readLog(file: string, fromByte = 0): LogEntry[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file).subarray(fromByte).toString('utf8');
  const out: LogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as LogEntry);
    } catch {
      // A line that is not JSON is not ours to time.
    }
  }
  return out;
}

export function logSize(file: string): number {
  return existsSync(file) ? readFileSync(file).length : 0;
}

/** Milliseconds between "<step>: started" and "<step>: done" in one run's log lines. */
export function stepMs(entries: LogEntry[], step: string): number | undefined {
  const started = entries.find((e) => e.step === step && e.msg === `${step}: started`);
  const done = entries.find((e) => e.step === step && e.msg === `${step}: done`);
  if (!started || !done) return undefined;
  return Date.parse(done.time) - Date.parse(started.time);
}

export function stepDurations(entries: LogEntry[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of entries) {
    const m = /^(\w+): started$/.exec(e.msg);
    if (m && e.step === m[1]) {
      const ms = stepMs(entries, m[1]!);
      if (ms !== undefined) out[m[1]!] = ms;
    }
  }
  return out;
}

export function fmtMs(ms: number): string {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 100 ? 1 : 0)} ms`;
}

export function fmtBytes(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

const MiB = 1024 * 1024;
let pool: Buffer | undefined;

/** `bytes` of incompressible data in 1 MiB chunks, cut from a random pool at shifting offsets (no generator cost in the timing). */
export function randomSource(bytes: number): Readable {
  pool ??= randomBytes(16 * MiB);
  const p = pool;
  return Readable.from(
    (function* () {
      let i = 0;
      for (let done = 0; done < bytes; done += MiB, i++) {
        const off = (i * 7919 * 1024) % (p.length - MiB);
        yield p.subarray(off, off + Math.min(MiB, bytes - done));
      }
    })(),
  );
}
