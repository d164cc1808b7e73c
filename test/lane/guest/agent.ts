/**
 * The lane's agent: the host's hands inside a lane guest (not part of
 * syn3-backup). The guest's init starts it as `node /lane/agent.mjs PORT`,
 * where PORT is the virtio-serial port named "lane" (/dev/vportNpM). It reads
 * newline-delimited JSON requests from the port and answers each (see
 * ../protocol.ts): run a program (an argument array, never a shell), start a
 * background one by name, signal it, wait for it, write a file, read a file,
 * power off. Its first line is a hello with the disks it sees. When the host
 * goes away (the port reads end of file) it exits, and the init powers the
 * guest off: no guest outlives its test.
 *
 * Bundled by esbuild into the lane's root image; it uses nothing but Node.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, openSync, read, readFileSync, readdirSync, write, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { constants } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import type { Hello, Request, Response, RunOptions, RunResult } from '../protocol.js';

const port = process.argv[2];
if (!port) throw new Error('usage: agent.mjs /dev/vportNpM');

const BASE_ENV: Record<string, string> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  TERM: 'dumb',
  // No udev in the guest: LVM and dmsetup make their own device nodes.
  DM_DISABLE_UDEV: '1',
};
/** Output kept per stream; more is cut (read big results with readFile). */
const OUTPUT_LIMIT = 32 * 2 ** 20;

const fd = openSync(port, 'r+');

function log(line: string): void {
  process.stderr.write(`lane-agent: ${line}\n`);
}

/**
 * The guest's end, from here rather than by exiting to the init: a thread of
 * Node's pool sits in a read of the port, and an exiting Node waits for its
 * pool's threads. Nothing on the guest's root outlives it (the host boots it
 * with snapshot=on); sync is for the spec's extra disks.
 */
function powerOff(why: string): never {
  log(`${why}: powering off`);
  spawnSync('sync');
  spawnSync('/lane/busybox', ['poweroff', '-f']);
  process.exit(1);
}
process.on('uncaughtException', (e) => powerOff(`crashed: ${e.stack ?? e.message}`));

// Writes go out one after the other, each line whole.
let writing: Promise<void> = Promise.resolve();
function send(message: Response | Hello): void {
  const buf = Buffer.from(`${JSON.stringify(message)}\n`);
  writing = writing.then(() => writeAll(buf));
}
function writeAll(buf: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    write(fd, buf, 0, buf.length, null, (err, n) => {
      if (err) reject(err);
      else if (n < buf.length) writeAll(buf.subarray(n)).then(resolve, reject);
      else resolve();
    });
  });
}

interface Job {
  child: ChildProcess;
  done: Promise<RunResult>;
}
const jobs = new Map<string, Job>();

function describeArgv(argv: string[]): string {
  const text = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** Starts a program in a process group of its own (a timeout kills the whole group). */
function launch(argv: string[], opts: RunOptions): Job {
  const started = Date.now();
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: opts.cwd ?? '/',
    env: { ...BASE_ENV, ...opts.env },
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    detached: true,
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const collect = (into: Buffer[]) => {
    let size = 0;
    return (chunk: Buffer) => {
      if (size < OUTPUT_LIMIT) into.push(chunk);
      size += chunk.length;
    };
  };
  child.stdout!.on('data', collect(out));
  child.stderr!.on('data', collect(err));
  if (opts.input !== undefined) {
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(opts.input);
  }
  let timedOut = false;
  const timer =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          killGroup(child, 'SIGKILL');
        }, opts.timeoutMs);
  const done = new Promise<RunResult>((resolve) => {
    let settled = false;
    const finish = (exitCode: number, signal?: string, extra = '') => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      const r: RunResult = {
        exitCode,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + extra,
        ...(signal ? { signal } : {}),
        ...(timedOut ? { timedOut } : {}),
      };
      const secs = ((Date.now() - started) / 1000).toFixed(2);
      log(`exit ${exitCode}${signal ? ` (${signal})` : ''}${timedOut ? ' (timed out)' : ''} in ${secs} s: ${describeArgv(argv)}`);
      if (exitCode !== 0) for (const line of r.stderr.trim().split('\n').slice(-5)) if (line) log(`  stderr: ${line}`);
      resolve(r);
    };
    child.on('error', (e) => finish(127, undefined, `lane-agent: cannot run ${argv[0]}: ${e.message}\n`));
    // 'close' comes once the program has ended and its pipes are closed. A
    // daemon it left behind may hold them open: then the exit decides, and the
    // pipes get a moment to drain.
    child.on('close', (code, signal) => finish(status(code, signal), signal ?? undefined));
    child.on('exit', (code, signal) => {
      setTimeout(() => {
        child.stdout!.destroy();
        child.stderr!.destroy();
        finish(status(code, signal), signal ?? undefined);
      }, 500).unref();
    });
  });
  return { child, done };
}

function status(code: number | null, signal: NodeJS.Signals | null): number {
  return code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

async function handle(req: Request): Promise<Response> {
  switch (req.op) {
    case 'run':
      return { id: req.id, ok: true, run: await launch(req.argv, req.opts).done };
    case 'start': {
      if (jobs.has(req.name)) return { id: req.id, ok: false, error: `a background process named ${req.name} exists already` };
      const job = launch(req.argv, req.opts);
      jobs.set(req.name, job);
      return { id: req.id, ok: true, ...(job.child.pid ? { pid: job.child.pid } : {}) };
    }
    case 'signal': {
      const job = jobs.get(req.name);
      if (!job) return { id: req.id, ok: false, error: `no background process named ${req.name}` };
      job.child.kill(req.signal as NodeJS.Signals);
      return { id: req.id, ok: true };
    }
    case 'wait': {
      const job = jobs.get(req.name);
      if (!job) return { id: req.id, ok: false, error: `no background process named ${req.name}` };
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<undefined>((resolve) => {
        if (req.timeoutMs !== undefined) timer = setTimeout(() => resolve(undefined), req.timeoutMs);
      });
      const r = await Promise.race([job.done, timeout]);
      if (timer) clearTimeout(timer);
      if (!r) return { id: req.id, ok: false, error: `${req.name} still runs after ${req.timeoutMs} ms` };
      jobs.delete(req.name);
      return { id: req.id, ok: true, run: r };
    }
    case 'write':
      mkdirSync(dirname(req.path), { recursive: true });
      writeFileSync(req.path, Buffer.from(req.base64, 'base64'));
      if (req.mode !== undefined) chmodSync(req.path, req.mode);
      return { id: req.id, ok: true };
    case 'read':
      return { id: req.id, ok: true, base64: readFileSync(req.path).toString('base64') };
    case 'poweroff':
      // The answer goes out first.
      writing.then(() => powerOff('the host asked'));
      return { id: req.id, ok: true };
  }
}

function serve(line: string): void {
  let req: Request;
  try {
    req = JSON.parse(line) as Request;
  } catch {
    log(`not JSON, ignored: ${line.slice(0, 200)}`);
    return;
  }
  handle(req).then(send, (e: unknown) => send({ id: req.id, ok: false, error: (e as Error).message ?? String(e) }));
}

/** Extra disks by serial (virtio-blk shows each disk's serial in sysfs; without udev there is no /dev/disk/by-id). */
function disks(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const dev of readdirSync('/sys/block').filter((d) => d.startsWith('vd'))) {
    try {
      const serial = readFileSync(`/sys/block/${dev}/serial`, 'utf8').trim();
      if (serial) out[serial] = `/dev/${dev}`;
    } catch {
      // a disk without a serial is not one the host asked for
    }
  }
  return out;
}

let pending = '';
const decoder = new StringDecoder('utf8');
const chunk = Buffer.alloc(64 * 1024);
function readLoop(): void {
  read(fd, chunk, 0, chunk.length, null, (err, n) => {
    if (err) {
      powerOff(`reading ${port} failed: ${err.message}`);
    }
    if (n === 0) {
      // The host closed its end: nobody is left to talk to.
      powerOff('the host has gone');
    }
    pending += decoder.write(chunk.subarray(0, n));
    let nl = pending.indexOf('\n');
    while (nl >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.trim()) serve(line);
      nl = pending.indexOf('\n');
    }
    readLoop();
  });
}

const uptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
send({ hello: { uptime, kernel, disks: disks() } });
log(`ready at uptime ${uptime.toFixed(2)} s on ${port}`);
// A write waits until the host's end is open, but a read before that returns
// end of file at once: read only once the hello has gone out.
writing.then(readLoop, (e: unknown) => {
  powerOff(`cannot write to ${port}: ${(e as Error).message}`);
});
