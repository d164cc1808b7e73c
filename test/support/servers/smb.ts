/**
 * A real Samba smbd on 127.0.0.1 for the smb target's tests and benchmark: a
 * random free port, its smb.conf, private databases, logs and shares under a
 * temp dir; optionally a share on a small tmpfs so a "full" share can be
 * provoked. The SMB account ("backup") lives only in this server's own passdb
 * and is mapped to root by a username map, so no system user is created.
 * Everything it creates is undone by stop(), and by an exit/signal safety net
 * if a test run dies.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { freePort, killTree, safetyNet, sleep } from './common.js';
import { join } from 'node:path';

export const SMB_HOST = '127.0.0.1';
const SMB_USER = 'backup';

export interface SmbShareOptions {
  /** The share name, as in //127.0.0.1/<name>. */
  name: string;
  /** Put the share on a tmpfs of this many MiB (for "the share is full"). */
  tmpfsMiB?: number;
  /** A share the user may read but not write. */
  readOnly?: boolean;
}

export interface SmbServerOptions {
  /** Default: one share named "backups". */
  shares?: SmbShareOptions[];
  /** smbd's "server smb encrypt" (default: Samba's own, which offers encryption without requiring it). */
  encrypt?: 'off' | 'if_required' | 'desired' | 'required';
}

export interface SmbServer {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** username=/password=/domain= lines, mode 0600: what the target's credentials_file wants. */
  readonly credentialsFile: string;
  /** The temp dir that holds everything (smb.conf, databases, log, shares). */
  readonly dir: string;
  readonly running: boolean;
  /** //127.0.0.1/<share> */
  unc(share: string): string;
  /** The local directory a share serves. */
  path(share: string): string;
  /** Writes a credentials file for this server's user (or other lines), mode 0600 unless told. */
  writeCredentials(file: string, options?: { password?: string; mode?: number }): string;
  /** smbd's log so far (for a failing test's message). */
  log(): string;
  /** What smbstatus says about the open sessions and shares (their signing and encryption). */
  sessions(): string;
  /** SIGKILL smbd and every connection it forked: the connection drops as in a crash. */
  crash(): Promise<void>;
  /** Start smbd again on the same port and shares (after crash()). */
  restart(): Promise<void>;
  /** Kill the server, unmount the tmpfs shares, delete the temp dir. Idempotent, never throws. */
  stop(): Promise<void>;
}

/** What is missing to run a real smbd here, or undefined. */
export function smbServerMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'the Samba tests need root (smbd serves files as root, tmpfs mounts)';
  for (const [tool, _pkg] of [
    ['smbd', 'samba'],
    ['smbpasswd', 'samba'],
    ['smbclient', 'smbclient'],
  ] as const) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0) {
      return `${tool} is not installed (apt-get install -y --no-install-recommends samba smbclient)`;
    }
  }
  return undefined;
}

export { freePort };

const { track, untrack } = safetyNet();

// ---- the server ----

export async function startSmbServer(options: SmbServerOptions = {}): Promise<SmbServer> {
  const missing = smbServerMissing();
  if (missing) throw new Error(`cannot start smbd: ${missing}`);
  // The port was free a moment ago; if someone took it since, smbd exits and a new one is tried.
  for (let attempt = 1; ; attempt++) {
    const server = new Server(options.shares ?? [{ name: 'backups' }], await freePort(), options.encrypt);
    track(server);
    try {
      server.setUp();
      await server.restart();
      return server;
    } catch (e) {
      await server.stop();
      if (attempt >= 3) throw e;
    }
  }
}

class Server implements SmbServer {
  readonly host = SMB_HOST;
  readonly user = SMB_USER;
  readonly dir: string;
  readonly password: string;
  readonly credentialsFile: string;
  readonly #conf: string;
  readonly #logFile: string;
  readonly #mounted: string[] = [];
  #child: ChildProcess | undefined;
  #stopped = false;

  constructor(
    private readonly shares: SmbShareOptions[],
    readonly port: number,
    private readonly encrypt?: SmbServerOptions['encrypt'],
  ) {
    for (const s of shares) if (!/^[A-Za-z0-9._-]+$/.test(s.name)) throw new Error(`bad share name ${JSON.stringify(s.name)}`);
    this.dir = mkdtempSync(join(tmpdir(), 'syn3-smbd-'));
    this.password = randomBytes(15).toString('base64url');
    this.credentialsFile = join(this.dir, 'smb.cred');
    this.#conf = join(this.dir, 'smb.conf');
    this.#logFile = join(this.dir, 'smbd.log');
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  unc(share: string): string {
    return `//${SMB_HOST}/${share}`;
  }

  path(share: string): string {
    if (!this.shares.some((s) => s.name === share)) throw new Error(`no share ${share} on this server`);
    return join(this.dir, 'shares', share);
  }

  setUp(): void {
    const state = (name: string) => {
      const d = join(this.dir, name);
      mkdirSync(d, { recursive: true, mode: 0o700 });
      return d;
    };
    const global = [
      '[global]',
      'server role = standalone server',
      'workgroup = WORKGROUP',
      `interfaces = ${SMB_HOST}`,
      'bind interfaces only = yes',
      `smb ports = ${this.port}`,
      'disable netbios = yes',
      'load printers = no',
      'printing = bsd',
      'printcap name = /dev/null',
      'disable spoolss = yes',
      `private dir = ${state('private')}`,
      `binddns dir = ${state('bind-dns')}`,
      `lock directory = ${state('lock')}`,
      `state directory = ${state('state')}`,
      `cache directory = ${state('cache')}`,
      `pid directory = ${state('pid')}`,
      `ncalrpc dir = ${state('ncalrpc')}`,
      `passdb backend = tdbsam:${join(this.dir, 'private', 'passdb.tdb')}`,
      `username map = ${join(this.dir, 'users.map')}`,
      'log level = 1',
      'map to guest = never',
      ...(this.encrypt ? [`server smb encrypt = ${this.encrypt}`] : []),
    ];
    const sections: string[] = [];
    for (const s of this.shares) {
      const dir = join(this.dir, 'shares', s.name);
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      if (s.tmpfsMiB) {
        must('mount', ['-t', 'tmpfs', '-o', `size=${s.tmpfsMiB}m,mode=0755`, 'tmpfs', dir]);
        this.#mounted.push(dir);
      }
      sections.push(`[${s.name}]`, `path = ${dir}`, `read only = ${s.readOnly ? 'yes' : 'no'}`, 'browseable = yes', 'valid users = root');
    }
    writeFileSync(this.#conf, `${[...global, '', ...sections].join('\n')}\n`, { mode: 0o600 });
    // The SMB account: "backup" on the wire, root on this machine, known only to this passdb.
    writeFileSync(join(this.dir, 'users.map'), `root = ${SMB_USER}\n`, { mode: 0o600 });
    must('smbpasswd', ['-c', this.#conf, '-s', '-a', 'root'], `${this.password}\n${this.password}\n`);
    this.writeCredentials(this.credentialsFile);
  }

  writeCredentials(file: string, options: { password?: string; mode?: number } = {}): string {
    writeFileSync(file, `username = ${SMB_USER}\npassword = ${options.password ?? this.password}\ndomain = WORKGROUP\n`, { mode: 0o600 });
    chmodSync(file, options.mode ?? 0o600);
    return file;
  }

  sessions(): string {
    const r = spawnSync('smbstatus', [`--configfile=${this.#conf}`], { encoding: 'utf8' });
    return `${r.stdout}${r.stderr}`;
  }

  log(): string {
    return existsSync(this.#logFile) ? readFileSync(this.#logFile, 'utf8').slice(-8192) : '';
  }

  async restart(): Promise<void> {
    if (this.#stopped) throw new Error('this smbd was stopped for good');
    if (this.running) return;
    const out = openSync(this.#logFile, 'a');
    // detached: its own process group, so crash() reaches the connections it forks too.
    const child = spawn('smbd', ['--foreground', '--no-process-group', `--configfile=${this.#conf}`, '--debug-stdout'], {
      stdio: ['ignore', out, out],
      detached: true,
    });
    closeSync(out);
    this.#child = child;
    child.on('error', () => undefined);
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (!this.running) throw new Error(`smbd exited at start (${child.exitCode ?? child.signalCode}): ${this.log().trim()}`);
      if (await accepts(this.port)) return;
      if (Date.now() > deadline) {
        await this.crash();
        throw new Error(`smbd did not listen on ${SMB_HOST}:${this.port} within 10 s: ${this.log().trim()}`);
      }
      await sleep(50);
    }
  }

  async crash(): Promise<void> {
    const child = this.#child;
    if (!child?.pid) return;
    killTree(child.pid);
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => child.once('exit', () => resolve()));
    }
    this.#child = undefined;
  }

  async stop(): Promise<void> {
    await this.crash().catch(() => undefined);
    this.stopSync();
  }

  stopSync(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#child?.pid) killTree(this.#child.pid);
    this.#child = undefined;
    for (const dir of this.#mounted.splice(0)) {
      if (spawnSync('umount', [dir], { stdio: 'ignore' }).status !== 0) spawnSync('umount', ['-l', dir], { stdio: 'ignore' });
    }
    rmSync(this.dir, { recursive: true, force: true });
    untrack(this);
  }
}

function must(cmd: string, args: string[], input?: string): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...(input === undefined ? { stdio: ['ignore', 'pipe', 'pipe'] } : { input }) });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.error?.message || ''}`);
}

/** True once something accepts TCP connections on the port. */
async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, SMB_HOST);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => done(true));
  });
}
