// Runs the built command line against a sandbox, the way cron would: no
// terminal on stdin, stdout or stderr, and a configuration file of its own.
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import type { Sandbox } from './sandbox.js';

/** The repository root: the nearest directory above this file holding package.json (works from test/ and dist/test/). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || dir.endsWith('/dist')) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root (package.json) above test/support');
    dir = up;
  }
  return dir;
}

export const REPO_ROOT = repoRoot();
export const CLI = join(REPO_ROOT, 'dist', 'bin', 'syn3-backup.mjs');

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface SandboxConfigOptions {
  /** Where the config file goes; default <sandbox.dir>/config.yaml. */
  file?: string;
  host?: string;
  /** A YAML schedule mapping line, default "every: 1d" (so a second tick is not due). */
  schedule?: string;
  /** The file target's directory; or name another target with targetLines. */
  target?: string;
  /**
   * The lines under `target:` (without their indentation), for any target: they replace the file
   * target's type, path, require_mount and retention.
   */
  targetLines?: readonly string[];
  /** Default false: most tests back up into a plain directory (the program's default is true). */
  requireMount?: boolean;
  keep?: number;
  /** Default <sandbox.dir>/state. */
  state?: string;
  /** Default <sandbox.dir>/modules. */
  modules?: string;
  /** The trust section's signing key: default <sandbox.dir>/signing.key, made if missing; false names one that does not exist. */
  signingKey?: string | false;
  /** trust.public_keys, the keys a restore accepts besides its own signing key's. */
  publicKeys?: string[];
  /** YAML appended verbatim, for the bad-input cases. */
  extra?: string;
}

export const SANDBOX_HOST = 'sandbox-host';

/** The YAML of a configuration that backs up the sandbox's root, boot and home to a file target. */
export function sandboxConfigText(sandbox: Sandbox, o: SandboxConfigOptions): string {
  const lines = [
    `host: ${o.host ?? SANDBOX_HOST}`,
    'schedule:',
    `  ${o.schedule ?? 'every: 1d'}`,
    'mode: spool',
    'paths:',
    `  root: ${sandbox.root.mountPoint}`,
    `  boot: ${sandbox.boot.mountPoint}`,
    `  home: ${sandbox.home.mountPoint}`,
    `  state: ${o.state ?? join(sandbox.dir, 'state')}`,
    `  modules: ${o.modules ?? join(sandbox.dir, 'modules')}`,
    'target:',
    ...targetLines(o).map((l) => `  ${l}`),
    ...trustLines(sandbox, o),
  ];
  return `${lines.join('\n')}\n${o.extra ?? ''}`;
}

function targetLines(o: SandboxConfigOptions): readonly string[] {
  if (o.targetLines) return o.targetLines;
  if (o.target === undefined) throw new Error('a sandbox configuration needs target (a directory) or targetLines');
  return ['type: file', `path: ${o.target}`, `require_mount: ${o.requireMount ?? false}`, 'retention:', `  keep: ${o.keep ?? 7}`];
}

function trustLines(sandbox: Sandbox, o: SandboxConfigOptions): string[] {
  const key = o.signingKey === undefined ? join(sandbox.dir, 'signing.key') : o.signingKey;
  // Without a key of its own a sandbox must still not fall back to this machine's /etc/syn3-backup/signing.key.
  return [
    'trust:',
    ...(key === false ? ['  signing_key: /nonexistent/syn3-backup-signing.key'] : [`  signing_key: ${key}`]),
    ...(o.publicKeys?.length ? ['  public_keys:', ...o.publicKeys.map((k) => `    - "${k}"`)] : []),
  ];
}

/**
 * An Ed25519 signing key as "syn3-backup key init" makes one (PKCS#8 PEM,
 * 0600), made here with node:crypto rather than by the program under test;
 * an existing one is kept. Returns its public key line.
 */
export function ensureSigningKey(file: string): string {
  if (!existsSync(file)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
  }
  return publicKeyOf(file);
}

/** The "ed25519:<base64>" line of a private key file: the last 32 bytes of its SubjectPublicKeyInfo. */
export function publicKeyOf(file: string): string {
  const spki = createPublicKey(readFileSync(file, 'utf8')).export({ format: 'der', type: 'spki' });
  return `ed25519:${spki.subarray(spki.length - 32).toString('base64')}`;
}

/** Writes a sandbox configuration (and its signing key, unless told not to) and returns its path. */
export async function writeSandboxConfig(sandbox: Sandbox, o: SandboxConfigOptions): Promise<string> {
  const file = o.file ?? join(sandbox.dir, 'config.yaml');
  if (o.signingKey !== false) ensureSigningKey(o.signingKey ?? join(sandbox.dir, 'signing.key'));
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, sandboxConfigText(sandbox, o));
  return file;
}

export interface RunOptions {
  /** Replaces PATH for the CLI (node itself is started by its absolute path). */
  path?: string;
  /** More environment, e.g. a TMPDIR inside the machine under test. */
  env?: Record<string, string>;
}

function cliArgs(config: string, args: string[]): string[] {
  if (!existsSync(CLI)) throw new Error(`${CLI} does not exist: run "npm run build" before the integration tests`);
  return [CLI, '--config', config, ...args];
}

function cliEnv(o: RunOptions): Record<string, string | undefined> {
  return { SYN3_BACKUP_CONFIG: undefined, ...(o.path === undefined ? {} : { PATH: o.path }), ...o.env };
}

/** Runs `syn3-backup --config <config> <args>` to its end; never rejects on a non-zero exit. */
export async function runCli(config: string, args: string[], o: RunOptions = {}): Promise<CliResult> {
  const r = await execa(process.execPath, cliArgs(config, args), {
    stdin: 'ignore',
    env: cliEnv(o),
    reject: false,
    stripFinalNewline: false,
    timeout: 170_000,
  });
  if (r.exitCode === undefined) throw new Error(`syn3-backup ${args.join(' ')} did not exit: ${r.message}`);
  return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Starts the CLI without waiting for it, for tests that kill it half-way. */
export function startCli(config: string, args: string[], o: RunOptions = {}): ResultPromise {
  return execa(process.execPath, cliArgs(config, args), { stdin: 'ignore', env: cliEnv(o), reject: false, buffer: true });
}

export interface ListedBackup {
  id: string;
  created: string;
  size: number;
  location: string;
  host: string;
  sha256: string;
}

/** `list --json`, failing loudly when the command does. */
export async function listBackups(config: string): Promise<ListedBackup[]> {
  const r = await runCli(config, ['list', '--json']);
  if (r.exitCode !== 0) throw new Error(`syn3-backup list failed (${r.exitCode}): ${r.stderr}`);
  return JSON.parse(r.stdout) as ListedBackup[];
}

export interface StatusReport {
  state: string;
  lastSuccess: { id: string; result: string; size?: number; finishedAt: string } | null;
  lastFailure: { id: string; result: string; step?: string; reason?: string } | null;
  consecutiveFailures: number;
  nextDue: string;
}

export async function statusJson(config: string): Promise<{ exitCode: number; report: StatusReport }> {
  const r = await runCli(config, ['status', '--json']);
  return { exitCode: r.exitCode, report: JSON.parse(r.stdout) as StatusReport };
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** What the persisted backup machine says, or undefined before the first save. */
export async function savedState(stateDir: string): Promise<{ value: unknown; context: Record<string, unknown> } | undefined> {
  const text = await readFile(join(stateDir, 'backup-state.json'), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return (JSON.parse(text) as { snapshot: { value: unknown; context: Record<string, unknown> } }).snapshot;
  } catch {
    return undefined; // caught between write and rename: read again
  }
}

/** Entries of <target>/.incoming (unfinished writes); [] when it does not exist. */
export async function incomingLeftovers(target: string): Promise<string[]> {
  return readdir(join(target, '.incoming')).catch(() => []);
}

/** The JSON lines of <state>/syn3-backup.log, in order. */
export async function logEntries(stateDir: string): Promise<Array<Record<string, unknown> & { msg: string }>> {
  const text = await readFile(join(stateDir, 'syn3-backup.log'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown> & { msg: string });
}

/** A stack trace or a raw error name on stderr means an error escaped unexplained. */
export function looksLikeStackTrace(stderr: string): boolean {
  return /^\s+at \S/m.test(stderr) || /\b[A-Z]?[a-z]*Error:/.test(stderr);
}
