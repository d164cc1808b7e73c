/**
 * Throwaway database servers for the tests of the shipped database modules
 * (examples/modules): a PostgreSQL cluster or a MariaDB server in a temp dir of
 * its own, reachable only through a unix socket in that dir (no TCP listener,
 * so nothing else on this machine collides with it or reaches it). Data lives
 * under <dir>/home, which the tests hand to the freezers as SYN3_HOME;
 * <dir>/outside is for what must not be on that volume. stop() kills the
 * server and deletes the dir; an exit/signal safety net does the same if a
 * test run dies. Also: the modules copied into a root-only modules directory
 * with their settings file, and a freezer started the way the protocol says.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { REPO_ROOT } from './cli.js';
import { freePort, killTree, safetyNet, sleep } from './servers/common.js';

export const MODULES_SOURCE = join(REPO_ROOT, 'examples', 'modules');

const { track, untrack } = safetyNet();

const PG_LIB = '/usr/lib/postgresql';

/** A tool on PATH, or PostgreSQL's own (Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, off PATH). */
function onPath(tool: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  if (r.status === 0) return r.stdout.trim();
  const versions = existsSync(PG_LIB) ? readdirSync(PG_LIB).sort((a, b) => Number(b) - Number(a)) : [];
  return versions.map((v) => join(PG_LIB, v, 'bin', tool)).find((f) => existsSync(f));
}

function account(name: string): { uid: number; gid: number } | undefined {
  const r = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  return r.status === 0 && g.status === 0 ? { uid: Number(r.stdout), gid: Number(g.stdout) } : undefined;
}

function missingOf(tools: string[], user: string, hint: string): string | undefined {
  if (process.getuid?.() !== 0) return 'the database module tests need root (the modules run as root and switch to the server account)';
  for (const tool of tools) if (!onPath(tool)) return `${tool} is not installed (${hint})`;
  if (!account(user)) return `there is no ${user} account (${hint})`;
  return undefined;
}

/** What is missing to run a throwaway PostgreSQL and the postgresql modules here, or undefined. */
export function postgresMissing(): string | undefined {
  return missingOf(['initdb', 'pg_ctl', 'psql', 'pg_dumpall', 'pg_isready', 'runuser'], 'postgres', 'apt-get install -y postgresql');
}

/** What is missing to run a throwaway MariaDB and the mariadb modules here, or undefined. */
export function mariadbMissing(): string | undefined {
  return missingOf(
    ['mariadbd', 'mariadb-install-db', 'mariadb', 'mariadb-dump', 'mariadb-admin'],
    'mysql',
    'apt-get install -y --no-install-recommends mariadb-server mariadb-client',
  );
}

function must(cmd: string, args: string[], o: { input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: o.input, stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.error?.message || ''}`);
  return r.stdout.trim();
}

/** A temp dir root owns with mode 0755, so the server's account can reach what it owns inside. */
function serverDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  for (const d of ['home', 'outside']) mkdirSync(join(dir, d), { mode: 0o755 });
  return dir;
}

abstract class Server {
  readonly dir: string;
  #stopped = false;

  constructor(
    prefix: string,
    readonly owner: { uid: number; gid: number },
  ) {
    this.dir = serverDir(prefix);
    track(this);
  }

  /** The volume the snapshot would hold: SYN3_HOME for the freezers. */
  get home(): string {
    return join(this.dir, 'home');
  }

  /** A directory (relative to dir) owned by the server's account, for the server to write in. */
  ownedDir(relative: string): string {
    const d = join(this.dir, relative);
    mkdirSync(dirname(d), { recursive: true, mode: 0o755 });
    mkdirSync(d, { mode: 0o700 });
    chownSync(d, this.owner.uid, this.owner.gid);
    return d;
  }

  protected abstract kill(): void;

  async stop(): Promise<void> {
    this.stopSync();
  }

  stopSync(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      this.kill();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
      untrack(this);
    }
  }
}

// ---- PostgreSQL ----

export interface PostgresOptions {
  /** Where initdb puts the data directory, relative to the server's dir (default home/data). */
  dataDir?: string;
  /** initdb --waldir, relative to the server's dir: pg_wal becomes a symbolic link to it. */
  walDir?: string;
}

export class PostgresServer extends Server {
  readonly dataDir: string;
  readonly socketDir: string;
  readonly port: number;
  readonly #bin: string;
  readonly #wal: string[];

  constructor(o: PostgresOptions, port: number) {
    super('syn3-pg-', account('postgres')!);
    this.port = port;
    // pg_ctl and initdb are looked up as root: runuser may not keep PATH.
    this.#bin = dirname(must('readlink', ['-f', onPath('pg_ctl')!]));
    this.dataDir = this.ownedDir(o.dataDir ?? 'home/data');
    this.socketDir = this.ownedDir('run');
    this.#wal = o.walDir ? ['-X', this.ownedDir(o.walDir)] : [];
  }

  start(): void {
    this.#asPostgres('initdb', ['-D', this.dataDir, '-U', 'postgres', '--auth=trust', '-N', ...this.#wal]);
    this.#asPostgres('pg_ctl', [
      '-D',
      this.dataDir,
      '-o',
      `-c listen_addresses='' -c fsync=off -p ${this.port} -k ${this.socketDir}`,
      '-l',
      join(this.socketDir, 'log'),
      '-w',
      'start',
    ]);
  }

  #asPostgres(tool: string, args: string[], input?: string): string {
    return must('runuser', ['-u', 'postgres', '--', join(this.#bin, tool), ...args], { input });
  }

  /** The settings file's lines the postgresql modules need to reach this server. */
  get settings(): string {
    return `PORT=${this.port}\nSOCKET_DIR=${this.socketDir}\n`;
  }

  /** Runs SQL as postgres; returns psql's unaligned, tuples-only output. */
  sql(query: string, database = 'postgres'): string {
    return this.#asPostgres('psql', [
      '-X',
      '-At',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      this.socketDir,
      '-p',
      String(this.port),
      '-d',
      database,
      '-c',
      query,
    ]);
  }

  log(): string {
    const file = join(this.socketDir, 'log');
    return existsSync(file) ? readFileSync(file, 'utf8').slice(-8192) : '';
  }

  protected kill(): void {
    const pidFile = join(this.dataDir, 'postmaster.pid');
    if (!existsSync(pidFile)) return;
    const r = spawnSync(
      'runuser',
      ['-u', 'postgres', '--', join(this.#bin, 'pg_ctl'), '-D', this.dataDir, '-m', 'immediate', '-w', 'stop'],
      {
        stdio: 'ignore',
      },
    );
    if (r.status !== 0 && existsSync(pidFile)) killTree(Number(readFileSync(pidFile, 'utf8').split('\n')[0]));
  }
}

export async function startPostgres(o: PostgresOptions = {}): Promise<PostgresServer> {
  const missing = postgresMissing();
  if (missing) throw new Error(`cannot start PostgreSQL: ${missing}`);
  // The port only names the socket in a directory of its own: any number will do.
  const server = new PostgresServer(o, await freePort());
  try {
    server.start();
    return server;
  } catch (e) {
    server.stopSync();
    throw e;
  }
}

// ---- MariaDB ----

export class MariadbServer extends Server {
  readonly dataDir: string;
  readonly socket: string;
  #child: ChildProcess | undefined;

  constructor() {
    super('syn3-mariadb-', account('mysql')!);
    this.dataDir = this.ownedDir('home/mysql');
    this.socket = join(this.ownedDir('run'), 'mysqld.sock');
  }

  async start(): Promise<void> {
    must('mariadb-install-db', [
      '--no-defaults',
      '--user=mysql',
      `--datadir=${this.dataDir}`,
      '--auth-root-authentication-method=socket',
      '--skip-test-db',
    ]);
    const out = openSync(join(this.dir, 'run', 'log'), 'a');
    // detached: its own process group, so kill() reaches whatever it starts.
    const child = spawn(
      'mariadbd',
      [
        '--no-defaults',
        '--user=mysql',
        `--datadir=${this.dataDir}`,
        `--socket=${this.socket}`,
        `--pid-file=${join(this.dir, 'run', 'mysqld.pid')}`,
        '--skip-networking',
        '--skip-log-bin',
        '--innodb-buffer-pool-size=32M',
        '--innodb-flush-log-at-trx-commit=2',
      ],
      { stdio: ['ignore', out, out], detached: true },
    );
    closeSync(out);
    child.on('error', () => undefined);
    this.#child = child;
    const deadline = Date.now() + 30_000;
    while (spawnSync('mariadb-admin', [`--socket=${this.socket}`, '--connect-timeout=1', 'ping'], { stdio: 'ignore' }).status !== 0) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`mariadbd exited at start: ${this.log()}`);
      if (Date.now() > deadline) throw new Error(`mariadbd did not answer on ${this.socket} within 30 s: ${this.log()}`);
      await sleep(100);
    }
  }

  /** The settings file's lines the mariadb modules need to reach this server. */
  get settings(): string {
    return `SOCKET=${this.socket}\n`;
  }

  /** Runs SQL as root over the socket; returns the batch output without column names. */
  sql(query: string): string {
    return must('mariadb', [`--socket=${this.socket}`, '--batch', '--skip-column-names', '-e', query]);
  }

  /** The same, started: for a statement that is expected to wait. */
  startSql(query: string): ResultPromise {
    return execa('mariadb', [`--socket=${this.socket}`, '--batch', '--skip-column-names', '-e', query], { reject: false, stdin: 'ignore' });
  }

  log(): string {
    const file = join(this.dir, 'run', 'log');
    return existsSync(file) ? readFileSync(file, 'utf8').slice(-8192) : '';
  }

  protected kill(): void {
    if (this.#child?.pid) killTree(this.#child.pid);
    this.#child = undefined;
  }
}

export async function startMariadb(): Promise<MariadbServer> {
  const missing = mariadbMissing();
  if (missing) throw new Error(`cannot start MariaDB: ${missing}`);
  const server = new MariadbServer();
  try {
    await server.start();
    return server;
  } catch (e) {
    server.stopSync();
    throw e;
  }
}

// ---- the modules ----

export interface InstalledModules {
  dir: string;
  freeze: string;
  backup: string;
  restore: string;
  /** The settings file beside them. */
  conf: string;
}

/**
 * Copies examples/modules/<db>.{freeze,backup,restore} into <into> (made root's, 0700) as an
 * administrator enables them (0700), with <db>.conf (0600) holding `settings`.
 */
export function installModules(into: string, db: 'postgresql' | 'mariadb', settings: string): InstalledModules {
  mkdirSync(into, { recursive: true, mode: 0o700 });
  chmodSync(into, 0o700);
  const copy = (suffix: string) => {
    const file = join(into, `${db}.${suffix}`);
    copyFileSync(join(MODULES_SOURCE, `${db}.${suffix}`), file);
    chmodSync(file, 0o700);
    return file;
  };
  const conf = join(into, `${db}.conf`);
  writeFileSync(conf, settings, { mode: 0o600 });
  chmodSync(conf, 0o600);
  return { dir: into, freeze: copy('freeze'), backup: copy('backup'), restore: copy('restore'), conf };
}

/** The environment of a module: PATH and what the program passes, nothing else of this process. */
export function moduleEnv(vars: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', ...vars };
}

/** Runs a spool module (.backup or .restore) to its end. */
export async function runModule(file: string, vars: Record<string, string>): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await execa(file, [], { env: moduleEnv(vars), extendEnv: false, reject: false, stdin: 'ignore', timeout: 60_000 });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export interface RunningFreezer {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when the freezer has printed its "ready" line (its preparation done, nothing held); rejects if it exits first. */
  ready(timeoutMs?: number): Promise<void>;
  /** Tells a ready freezer to freeze, as snapshot mode does, and resolves when it has printed "frozen"; rejects if it exits first. */
  frozen(timeoutMs?: number): Promise<void>;
  /** Its exit, whenever it comes. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Closes its stdin: the snapshot is taken. */
  thaw(): void;
}

/** Starts a freezer as syn3-backup's snapshot mode does: no arguments, stdin a pipe kept open, a small environment. */
export function startFreezer(file: string, vars: { SYN3_HOME: string; SYN3_BACKUP_ID?: string }): RunningFreezer {
  const child = spawn(file, [], {
    env: moduleEnv({ SYN3_BACKUP_ID: vars.SYN3_BACKUP_ID ?? 'sandbox-host-20260101T000000Z', SYN3_HOME: vars.SYN3_HOME }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  child.stdin!.on('error', () => undefined);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const said = async (line: 'ready' | 'frozen', timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    let gone = false;
    void exited.then(() => {
      gone = true;
    });
    while (!new RegExp(`^${line}$`, 'm').test(out)) {
      if (gone) throw new Error(`the freezer exited (${child.exitCode ?? child.signalCode}) before it said ${line}: ${err.trim()}`);
      if (Date.now() > deadline) throw new Error(`the freezer did not say ${line} within ${timeoutMs} ms: ${err.trim()}`);
      await sleep(20);
    }
  };
  const ready = (timeoutMs = 30_000) => said('ready', timeoutMs);
  const frozen = async (timeoutMs = 30_000) => {
    await ready(timeoutMs);
    child.stdin!.write('freeze\n');
    await said('frozen', timeoutMs);
  };
  return { child, stdout: () => out, stderr: () => err, ready, frozen, exited, thaw: () => child.stdin!.end() };
}
