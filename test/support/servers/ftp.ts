/**
 * A real vsftpd on 127.0.0.1 for the FTP target's tests and benchmark: a random
 * free port, its configuration, logs and files under a temp dir, a throw-away
 * local user (vsftpd logs in system users through PAM), optionally explicit
 * FTPS with a self-signed certificate, and optionally a small tmpfs as the
 * user's root so a "full" server can be provoked. Everything it creates is
 * undone by stop(), and by an exit/signal safety net if a test run dies.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { freePort, killTree, safetyNet, sleep } from './common.js';
import { join } from 'node:path';

export const FTP_HOST = '127.0.0.1';

export interface FtpServerOptions {
  /** Explicit FTPS (AUTH TLS) with a self-signed certificate for 127.0.0.1; plain FTP is refused then. */
  tls?: boolean;
  /** Put the user's root on a tmpfs of this many MiB (for "the server is full"). */
  tmpfsMiB?: number;
}

export interface FtpServer {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** The password in a 0600 file, as the target's password_file wants it. */
  readonly passwordFile: string;
  /** The temp dir that holds everything (config, logs, certificate, root). */
  readonly dir: string;
  /** The local directory the FTP user sees as "/" (chrooted). */
  readonly root: string;
  /** The server's self-signed certificate (PEM), when tls is on: trust it with ca_file. */
  readonly certFile: string | undefined;
  readonly tls: boolean;
  /** The FTP user's uid and gid: files a test puts in the root as if uploaded belong to them. */
  readonly uid: number;
  readonly gid: number;
  /** Whether vsftpd is running. */
  readonly running: boolean;
  /**
   * A directory in the root, as the FTP user sees it ("/name"), owned by that
   * user; with writable false it belongs to root and the user cannot write in it.
   */
  makeDirectory(name: string, options?: { writable?: boolean }): string;
  /** SIGKILL vsftpd and every session it forked: the connection drops as in a crash. */
  crash(): Promise<void>;
  /** Start vsftpd again on the same port, root and user (after crash()). */
  restart(): Promise<void>;
  /** Kill the server, remove the user, unmount the tmpfs, delete the temp dir. Idempotent, never throws. */
  stop(): Promise<void>;
}

/** What is missing to run a real vsftpd here, or undefined. */
export function ftpServerMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'vsftpd tests need root (they create a system user and run vsftpd)';
  for (const [tool, pkg] of [
    ['vsftpd', 'vsftpd'],
    ['openssl', 'openssl'],
    ['useradd', 'passwd'],
    ['chpasswd', 'passwd'],
  ] as const) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0) {
      return `${tool} is not installed (apt-get install -y --no-install-recommends ${pkg})`;
    }
  }
  if (!existsSync('/etc/pam.d/vsftpd')) return '/etc/pam.d/vsftpd is missing (reinstall the vsftpd package)';
  return undefined;
}

export { freePort };

const { track, untrack } = safetyNet();

// ---- the server ----

export async function startFtpServer(options: FtpServerOptions = {}): Promise<FtpServer> {
  const missing = ftpServerMissing();
  if (missing) throw new Error(`cannot start vsftpd: ${missing}`);
  const server = new Server(options, await freePort());
  track(server);
  try {
    await server.setUp();
    await server.restart();
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

class Server implements FtpServer {
  readonly host = FTP_HOST;
  readonly dir: string;
  readonly root: string;
  readonly user: string;
  readonly password: string;
  readonly passwordFile: string;
  readonly certFile: string | undefined;
  readonly tls: boolean;
  #child: ChildProcess | undefined;
  #userCreated = false;
  #mounted = false;
  #stopped = false;
  #log = '';
  #uid = 0;
  #gid = 0;

  constructor(
    private readonly options: FtpServerOptions,
    readonly port: number,
  ) {
    this.tls = options.tls === true;
    this.dir = mkdtempSync(join(tmpdir(), 'syn3-vsftpd-'));
    chmodSync(this.dir, 0o755);
    this.root = join(this.dir, 'root');
    this.user = `syn3ftp${randomBytes(4).toString('hex')}`;
    this.password = randomBytes(15).toString('base64url');
    this.passwordFile = join(this.dir, 'ftp.pass');
    this.certFile = this.tls ? join(this.dir, 'cert.pem') : undefined;
  }

  get uid(): number {
    return this.#uid;
  }

  get gid(): number {
    return this.#gid;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  async setUp(): Promise<void> {
    mkdirSync(this.root, { mode: 0o755 });
    if (this.options.tmpfsMiB) {
      must('mount', ['-t', 'tmpfs', '-o', `size=${this.options.tmpfsMiB}m,mode=0755`, 'tmpfs', this.root]);
      this.#mounted = true;
    }
    // vsftpd's secure_chroot_dir: empty, owned by root, not writable by anyone else.
    const empty = join(this.dir, 'empty');
    mkdirSync(empty, { mode: 0o755 });

    await addUser(this.user, this.root);
    this.#userCreated = true;
    // SHA-512 rather than Debian's yescrypt: a login takes 5 ms instead of 400 (two hashes each).
    must('chpasswd', ['-c', 'SHA512'], `${this.user}:${this.password}\n`);
    const { uid, gid } = ids(this.user);
    this.#uid = uid;
    this.#gid = gid;
    chownSync(this.root, uid, gid);
    writeFileSync(this.passwordFile, `${this.password}\n`, { mode: 0o600 });

    const conf = [
      'listen=YES',
      'listen_ipv6=NO',
      'background=NO',
      `listen_address=${FTP_HOST}`,
      `listen_port=${this.port}`,
      `pasv_address=${FTP_HOST}`,
      'pasv_enable=YES',
      'port_enable=NO',
      'connect_from_port_20=NO',
      'anonymous_enable=NO',
      'local_enable=YES',
      'write_enable=YES',
      'local_umask=077',
      'chroot_local_user=YES',
      'allow_writeable_chroot=YES',
      'pam_service_name=vsftpd',
      'userlist_enable=NO',
      'tcp_wrappers=NO',
      `secure_chroot_dir=${empty}`,
      'seccomp_sandbox=NO',
      // A new network namespace per session costs 100-400 ms here.
      'isolate_network=NO',
      'isolate=NO',
      'delay_failed_login=0',
      'max_login_fails=10',
      'xferlog_enable=YES',
      `vsftpd_log_file=${join(this.dir, 'vsftpd.log')}`,
      'dual_log_enable=NO',
      'syslog_enable=NO',
    ];
    if (this.tls) {
      const key = join(this.dir, 'key.pem');
      must('openssl', [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        key,
        '-out',
        this.certFile!,
      ]);
      chmodSync(key, 0o600);
      conf.push(
        'ssl_enable=YES',
        `rsa_cert_file=${this.certFile!}`,
        `rsa_private_key_file=${key}`,
        'force_local_logins_ssl=YES',
        'force_local_data_ssl=YES',
        'require_ssl_reuse=NO',
        'ssl_ciphers=HIGH',
      );
    }
    writeFileSync(join(this.dir, 'vsftpd.conf'), `${conf.join('\n')}\n`, { mode: 0o600 });
  }

  makeDirectory(name: string, options: { writable?: boolean } = {}): string {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`bad directory name ${JSON.stringify(name)}`);
    const local = join(this.root, name);
    mkdirSync(local, { mode: 0o755 });
    if (options.writable !== false) chownSync(local, this.#uid, this.#gid);
    return `/${name}`;
  }

  async restart(): Promise<void> {
    if (this.#stopped) throw new Error('this vsftpd was stopped for good');
    if (this.running) return;
    this.#log = '';
    // detached: its own process group, so crash() reaches the sessions it forks too.
    const child = spawn('vsftpd', [join(this.dir, 'vsftpd.conf')], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const keep = (d: Buffer) => {
      this.#log = (this.#log + d.toString('utf8')).slice(-8192);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('error', (e) => keep(Buffer.from(String(e))));
    this.#child = child;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (!this.running) throw new Error(`vsftpd exited at start (${child.exitCode ?? child.signalCode}): ${this.#log.trim()}`);
      if (await greets(this.port)) return;
      if (Date.now() > deadline) {
        await this.crash();
        throw new Error(`vsftpd did not answer on ${FTP_HOST}:${this.port} within 10 s: ${this.#log.trim()}`);
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
    if (this.#userCreated) {
      // A session that outlived the kill would keep userdel from removing the user: -f.
      for (let i = 0; i < 20 && spawnSync('userdel', ['-f', this.user], { stdio: 'ignore' }).status === 10; i++) sleepSync(100);
      this.#userCreated = false;
    }
    if (this.#mounted) {
      if (spawnSync('umount', [this.root], { stdio: 'ignore' }).status !== 0) spawnSync('umount', ['-l', this.root], { stdio: 'ignore' });
      this.#mounted = false;
    }
    rmSync(this.dir, { recursive: true, force: true });
    untrack(this);
  }
}

/** useradd retries while another test (Samba's, say) holds the lock on /etc/passwd. */
async function addUser(user: string, home: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const r = spawnSync('useradd', ['-M', '-d', home, '-s', '/bin/bash', user], { encoding: 'utf8' });
    if (r.status === 0) return;
    // Exit code 1: cannot update the password file (locked); 10: cannot update the group file.
    if ((r.status === 1 || r.status === 10) && attempt < 50) {
      await sleep(100);
      continue;
    }
    throw new Error(`useradd ${user} failed (${r.status}): ${r.stderr}`);
  }
}

function ids(user: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  const f = line?.split(':');
  if (!f) throw new Error(`user ${user} is not in /etc/passwd`);
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

function must(cmd: string, args: string[], input?: string): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...(input === undefined ? { stdio: ['ignore', 'pipe', 'pipe'] } : { input }) });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status ?? r.signal}): ${r.stderr || r.error?.message || ''}`);
}

/** True once something on the port sends an FTP greeting (220). */
async function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, FTP_HOST);
    let said = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('data', (d: Buffer) => {
      said += d.toString('latin1');
      if (/^220[ -]/m.test(said)) done(true);
    });
  });
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
