/**
 * The test lane: vitest specs whose checks run in a QEMU guest with the kernel
 * this host lacks (device-mapper and LVM snapshots, XFS quotas, DRBD, SCSI tape).
 *
 * A guest boots the drill's Debian template and cloud kernel (TCG only: this
 * host's KVM hangs a standard kernel) straight into the lane's own init, which
 * starts an agent on a virtio-serial port; the spec drives the agent through
 * this module: run a program, start a background one, write and read files.
 * The current build of syn3-backup reaches the guest on a read-only disk made
 * per boot (/opt/syn3-backup; /usr/local/bin/syn3-backup runs it).
 *
 * Everything a guest uses lives in one 0700 work folder (the agent's socket,
 * the serial log, the extra disks), removed when the guest stops unless a spec
 * failed; failures name the serial log. See README, "Tests", and lane.lane.test.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { run } from '../../src/system/run.js';
import { ensureLaneImage, type LaneImage, programDisk } from './image.js';
import type { Hello, Request, Response, RunOptions, RunResult } from './protocol.js';

export type GuestRun = RunResult;
export type GuestRunOptions = RunOptions;

export interface GuestDisk {
  /** At most 20 characters (virtio-blk's limit): letters, digits, - and _. */
  serial: string;
  sizeMiB: number;
  /**
   * An image of the spec's own (made at sizeMiB if it does not exist), kept when the guest
   * stops: a disk that outlives its machine, as a backup disk carried to the new one.
   */
  file?: string;
}

export interface GuestOptions {
  /** Names the guest in messages and its work folder. */
  name: string;
  /** Blank sparse disks for the spec, in this order /dev/vdb, /dev/vdc …; guest.disk(serial) names each. */
  disks?: GuestDisk[];
  /** Default 2048. */
  memoryMb?: number;
  /** Folders or files of the repository (e.g. "examples/modules") put on the program disk, at /opt/syn3-backup/<path>. */
  share?: string[];
  /** The guest's host name (DRBD's "on <host>" must match it); default "lane". */
  hostname?: string;
  /** From QEMU's start to the agent's hello; default 5 minutes (a loaded host under TCG). */
  bootTimeoutMs?: number;
  /** A virtual network card, eth0 in the guest: see GuestNetwork. */
  network?: GuestNetwork;
}

/**
 * QEMU socket networking over UDP on this host's loopback: the card's frames go
 * from localPort to remotePort, where the other guest's card listens. No
 * connection to keep, so a guest can stop and a new one take its ports (a
 * machine replaced on the same wire); no other network is attached.
 */
export interface GuestNetwork {
  localPort: number;
  remotePort: number;
  /** 52:54:00:… (QEMU's own prefix). */
  mac: string;
  /** Given to eth0 by the init, as address/prefix. */
  address: string;
}

export interface Guest {
  readonly name: string;
  /** Seconds from QEMU's start until the agent could take the first command. */
  readonly bootSeconds: number;
  /** The guest kernel's uptime at that moment: the kernel's and the init's share of bootSeconds. */
  readonly guestUptime: number;
  readonly serialLog: string;
  /** The 0700 work folder on the host (serial log, socket, disks). */
  readonly work: string;
  readonly image: LaneImage;
  run(argv: string[], opts?: GuestRunOptions): Promise<GuestRun>;
  /** run, and throw (naming the command, its stderr and stdout tails and the serial log) unless it exits 0. */
  ok(argv: string[], opts?: GuestRunOptions): Promise<GuestRun>;
  /** A background process, by name: its output is collected until wait(name). */
  start(name: string, argv: string[], opts?: GuestRunOptions): Promise<{ pid: number }>;
  signal(name: string, signal: NodeJS.Signals): Promise<void>;
  /** Its result once it has ended; throws if it still runs after timeoutMs. */
  wait(name: string, timeoutMs?: number): Promise<GuestRun>;
  /** Makes the parent folders; mode as chmod (default: the agent's umask, 0644). */
  writeFile(path: string, content: string | Buffer, mode?: number): Promise<void>;
  readFile(path: string): Promise<Buffer>;
  /** The guest's device of an extra disk (/dev/vdb …; also /dev/disk/by-id/virtio-<serial> in the guest). */
  disk(serial: string): string;
  /** Keep the work folder when the guest stops (useGuest calls it when a spec fails). */
  keep(): void;
  /** A clean power-off, then SIGKILL if it takes too long; removes the work folder unless kept. */
  stop(): Promise<void>;
}

/** What a guest needs on this host, as program → Debian package (scripts/setup.sh installs them). */
const NEEDED: Record<string, string> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  mmdebstrap: 'mmdebstrap',
  cpio: 'cpio',
  busybox: 'busybox-static',
  strip: 'binutils',
  'mkfs.ext4': 'e2fsprogs',
};

/** Why the lane cannot run on this host (not root, a program missing), or undefined when it can. */
export function laneMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'the lane must run as root (it builds disk images from a Debian tree owned by root)';
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  const found = (tool: string) =>
    dirs.some((d) => {
      try {
        accessSync(join(d, tool), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  const missing = [...new Set(Object.entries(NEEDED).flatMap(([tool, pkg]) => (found(tool) ? [] : [pkg])))];
  return missing.length
    ? `the lane needs ${missing.join(' ')} (apt-get install ${missing.join(' ')}; scripts/setup.sh does it)`
    : undefined;
}

/** The QEMU processes of this process's guests: none may outlive it (Ctrl-C, a crash, a hung spec). */
const running = new Set<ChildProcess>();
let handlersInstalled = false;
function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const killAll = () => {
    for (const q of running) q.kill('SIGKILL');
  };
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll();
      process.kill(process.pid, signal);
    });
  }
}

type Without<T> = T extends unknown ? Omit<T, 'id'> : never;
type Answer = Extract<Response, { ok: true }>;

export async function startGuest(opts: GuestOptions): Promise<Guest> {
  const missing = laneMissing();
  if (missing) throw new Error(`lane guest ${opts.name}: ${missing}`);
  for (const d of opts.disks ?? []) {
    if (!/^[A-Za-z0-9_-]{1,20}$/.test(d.serial) || d.serial.startsWith('lane-'))
      throw new Error(`lane guest ${opts.name}: disk serial ${JSON.stringify(d.serial)}: 1-20 of A-Z a-z 0-9 - _, not lane-…`);
  }
  installHandlers();
  const image = await ensureLaneImage((line) => console.info(`lane: ${line}`));
  for (const b of image.built) console.info(`lane: built ${b.what} in ${b.seconds.toFixed(0)} s`);
  // mkdtemp makes it 0700: only root reaches the agent's socket.
  const work = await mkdtemp(join(tmpdir(), `syn3-lane-${opts.name.replace(/[^\w-]/g, '_')}-`));
  const serialLog = join(work, 'serial.log');
  const socketPath = join(work, 'agent.sock');
  let qemu: ChildProcess | undefined;
  let server: Server | undefined;
  try {
    await programDisk(join(work, 'program.img'), opts.share);
    const disks: string[] = [];
    for (const d of opts.disks ?? []) {
      const file = d.file ?? join(work, `${d.serial}.img`);
      if (!existsSync(file)) await run('truncate', ['-s', `${d.sizeMiB}M`, file]);
      disks.push(`-drive`, `if=none,id=${d.serial},file=${file},format=raw,cache=unsafe`);
      disks.push('-device', `virtio-blk-pci,drive=${d.serial},serial=${d.serial}`);
    }
    const net = opts.network;
    const network = net
      ? [
          '-netdev',
          `socket,id=wire,udp=127.0.0.1:${net.remotePort},localaddr=127.0.0.1:${net.localPort}`,
          '-device',
          `virtio-net-pci,netdev=wire,mac=${net.mac}`,
        ]
      : [];
    let connect: (s: Socket) => void = () => undefined;
    const connected = new Promise<Socket>((resolve) => {
      connect = resolve;
    });
    const listening = createServer((s) => connect(s));
    server = listening;
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(socketPath, () => resolve());
    });
    const args = [
      '-machine',
      'q35,accel=tcg',
      '-cpu',
      'max',
      '-smp',
      '2',
      '-m',
      String(opts.memoryMb ?? 2048),
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      '-serial',
      `file:${serialLog}`,
      '-no-reboot',
      '-kernel',
      image.kernel,
      '-initrd',
      image.initrd,
      '-append',
      `console=ttyS0 quiet panic=-1 lane.hostname=${opts.hostname ?? 'lane'}${net ? ` lane.address=${net.address}` : ''}`,
      '-drive',
      `if=none,id=root,file=${image.root},format=raw,snapshot=on,cache=unsafe`,
      '-device',
      'virtio-blk-pci,drive=root,serial=lane-root',
      ...disks,
      ...network,
      '-drive',
      `if=none,id=prog,file=${join(work, 'program.img')},format=raw,readonly=on`,
      '-device',
      'virtio-blk-pci,drive=prog,serial=lane-prog',
      '-device',
      'virtio-serial-pci',
      // QEMU connects to the host's socket (it listens already): the port is open before the guest boots.
      '-chardev',
      `socket,id=lane,path=${socketPath}`,
      '-device',
      'virtserialport,chardev=lane,name=lane',
    ];
    const started = performance.now();
    // TMPDIR: snapshot=on keeps the root's changes in a temporary file there.
    const q = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: work } });
    qemu = q;
    running.add(q);
    let qemuStderr = '';
    q.stderr!.on('data', (c: Buffer) => {
      qemuStderr = (qemuStderr + c.toString()).slice(-4000);
    });
    const exited = new Promise<string>((resolve) => {
      q.on('exit', (code, signal) => {
        running.delete(q);
        resolve(`QEMU exited with ${signal ?? code}${qemuStderr.trim() ? `: ${qemuStderr.trim()}` : ''}`);
      });
      q.on('error', (e) => resolve(`QEMU did not start: ${e.message}`));
    });
    const bootTimeout = opts.bootTimeoutMs ?? 5 * 60_000;
    const died = exited.then((why) => {
      throw new Error(`${why} before the agent was ready`);
    });
    died.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const tooLate = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the agent was not ready ${bootTimeout / 1000} s after QEMU started`)), bootTimeout);
    });
    const channel = new Channel(await Promise.race([connected, died, tooLate]), opts.name, serialLog);
    const hello = await Promise.race([channel.hello, died, tooLate]).finally(() => clearTimeout(timer));
    const bootSeconds = (performance.now() - started) / 1000;
    channel.onGone(exited);
    return new LaneGuest(opts.name, channel, q, listening, exited, hello.hello, bootSeconds, serialLog, work, image);
  } catch (e) {
    qemu?.kill('SIGKILL');
    server?.close();
    throw new Error(`lane guest ${opts.name} did not start: ${(e as Error).message}\n${serialNote(serialLog, work)}`);
  }
}

function serialNote(serialLog: string, work: string): string {
  const tail = existsSync(serialLog)
    ? readFileSync(serialLog, 'latin1')
        .split(/\r?\n/)
        .filter((l) => l.trim())
        .slice(-12)
    : [];
  return `serial log: ${serialLog} (work folder ${work} kept)${tail.length ? `; its last lines:\n    ${tail.join('\n    ')}` : ''}`;
}

/** The host's end of the agent's port: one JSON object per line, answers matched to requests by id. */
class Channel {
  readonly hello: Promise<Hello>;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Answer) => void; reject: (e: Error) => void; what: string }>();
  private gone: string | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly name: string,
    private readonly serialLog: string,
  ) {
    let buffered = '';
    let onHello: (h: Hello) => void = () => undefined;
    this.hello = new Promise((resolve) => {
      onHello = resolve;
    });
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      buffered += text;
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf('\n');
        if (!line.trim()) continue;
        let message: Response | Hello;
        try {
          message = JSON.parse(line) as Response | Hello;
        } catch {
          continue;
        }
        if ('hello' in message) {
          onHello(message);
          continue;
        }
        const p = this.pending.get(message.id);
        if (!p) continue;
        this.pending.delete(message.id);
        if (message.ok) p.resolve(message);
        else p.reject(new Error(`lane guest ${this.name}: ${p.what}: ${message.error} (serial log: ${this.serialLog})`));
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.fail('the connection to the agent closed'));
  }

  /** When QEMU ends, every request still waiting fails with the reason. */
  onGone(exited: Promise<string>): void {
    exited.then((why) => this.fail(why));
  }

  private fail(why: string): void {
    this.gone ??= why;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new Error(`lane guest ${this.name}: ${p.what}: ${why} (serial log: ${this.serialLog})`));
    }
  }

  request(req: Without<Request>, what: string): Promise<Answer> {
    if (this.gone) return Promise.reject(new Error(`lane guest ${this.name}: ${what}: ${this.gone} (serial log: ${this.serialLog})`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, what });
      this.socket.write(`${JSON.stringify({ ...req, id })}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The first lines (a usage message says what is wrong at its top) and the last (where most tools say it). */
function excerpt(text: string, lines: number): string {
  const all = text.trimEnd().split('\n');
  return (all.length > lines ? [...all.slice(0, 3), '…', ...all.slice(3 - lines)] : all).join('\n    ');
}

export function describeArgv(argv: string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

class LaneGuest implements Guest {
  readonly guestUptime: number;
  private kept = false;
  private stopped = false;

  constructor(
    readonly name: string,
    private readonly channel: Channel,
    private readonly qemu: ChildProcess,
    private readonly server: Server,
    private readonly exited: Promise<string>,
    private readonly hello: Hello['hello'],
    readonly bootSeconds: number,
    readonly serialLog: string,
    readonly work: string,
    readonly image: LaneImage,
  ) {
    this.guestUptime = hello.uptime;
  }

  async run(argv: string[], opts: GuestRunOptions = {}): Promise<GuestRun> {
    if (!argv.length) throw new Error('run: an empty argv');
    return (await this.channel.request({ op: 'run', argv, opts }, describeArgv(argv))).run!;
  }

  async ok(argv: string[], opts: GuestRunOptions = {}): Promise<GuestRun> {
    const r = await this.run(argv, opts);
    if (r.exitCode === 0) return r;
    const how = r.timedOut ? `was killed after ${opts.timeoutMs} ms` : `exited with ${r.exitCode}${r.signal ? ` (${r.signal})` : ''}`;
    const parts = [`lane guest ${this.name}: ${describeArgv(argv)} ${how}`];
    if (r.stderr.trim()) parts.push(`  stderr:\n    ${excerpt(r.stderr, 15)}`);
    if (r.stdout.trim()) parts.push(`  stdout:\n    ${excerpt(r.stdout, 8)}`);
    parts.push(`  serial log: ${this.serialLog}`);
    throw new Error(parts.join('\n'));
  }

  async start(name: string, argv: string[], opts: GuestRunOptions = {}): Promise<{ pid: number }> {
    const r = await this.channel.request({ op: 'start', name, argv, opts }, `start ${name}: ${describeArgv(argv)}`);
    return { pid: r.pid ?? 0 };
  }

  async signal(name: string, signal: NodeJS.Signals): Promise<void> {
    await this.channel.request({ op: 'signal', name, signal }, `signal ${name} ${signal}`);
  }

  async wait(name: string, timeoutMs?: number): Promise<GuestRun> {
    return (await this.channel.request({ op: 'wait', name, ...(timeoutMs === undefined ? {} : { timeoutMs }) }, `wait ${name}`)).run!;
  }

  async writeFile(path: string, content: string | Buffer, mode?: number): Promise<void> {
    const base64 = Buffer.from(content).toString('base64');
    await this.channel.request({ op: 'write', path, base64, ...(mode === undefined ? {} : { mode }) }, `write ${path}`);
  }

  async readFile(path: string): Promise<Buffer> {
    return Buffer.from((await this.channel.request({ op: 'read', path }, `read ${path}`)).base64 ?? '', 'base64');
  }

  disk(serial: string): string {
    const dev = this.hello.disks[serial];
    if (!dev)
      throw new Error(`lane guest ${this.name}: no disk with serial ${serial} (it has ${Object.keys(this.hello.disks).join(', ')})`);
    return dev;
  }

  keep(): void {
    this.kept = true;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const poweredOff = await Promise.race([
      this.channel.request({ op: 'poweroff' }, 'poweroff').then(
        () => this.exited.then(() => true),
        () => false,
      ),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 30_000)),
    ]);
    if (!poweredOff && this.qemu.exitCode === null) {
      this.qemu.kill('SIGKILL');
      await this.exited;
    }
    this.channel.close();
    this.server.close();
    if (this.kept) {
      console.info(`lane guest ${this.name}: kept ${this.work} (serial log ${this.serialLog})`);
      return;
    }
    await rm(this.work, { recursive: true, force: true });
  }
}

/**
 * One guest for a describe block: booted in beforeAll (printing its boot time),
 * stopped in afterAll. When any test in the block fails, the work folder is
 * kept and the failure's message names the serial log.
 */
export function useGuest(opts: GuestOptions): () => Guest {
  let guest: Guest | undefined;
  beforeAll(async () => {
    guest = await startGuest(opts);
    console.info(
      `lane guest ${opts.name}: QEMU start to the first command ${guest.bootSeconds.toFixed(1)} s (the guest's uptime then ${guest.guestUptime.toFixed(1)} s)`,
    );
  }, BOOT_HOOK_TIMEOUT_MS);
  beforeEach(({ onTestFailed }) => {
    onTestFailed(({ task }) => {
      if (!guest) return;
      guest.keep();
      const note = `\nlane guest ${opts.name}: serial log ${guest.serialLog} (work folder ${guest.work} kept)`;
      for (const e of task.result?.errors ?? []) if (!e.message.includes(guest.serialLog)) e.message += note;
    });
  });
  afterAll(async () => {
    await guest?.stop();
  }, 60_000);
  return () => {
    if (!guest) throw new Error(`lane guest ${opts.name} is not running (its start failed: see beforeAll)`);
    return guest;
  };
}

/** A first run builds the Debian template (mmdebstrap, a few minutes, network) and the lane's image before the boot. */
export const BOOT_HOOK_TIMEOUT_MS = 30 * 60_000;
