/**
 * The one way this program runs another program: execa with an argument array,
 * never a shell. stderr is kept so a failure can say what the tool said;
 * secrets are passed through files or stdin, never argv (callers' duty, and
 * `redact` scrubs anything that slipped into a message).
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { execa, type ResultPromise, type Options } from 'execa';
import { UserError } from '../errors.js';

const PACKAGE_OF: Record<string, string> = {
  xfsdump: 'xfsdump',
  xfsrestore: 'xfsdump',
  xfs_info: 'xfsprogs',
  'mkfs.xfs': 'xfsprogs',
  xfs_admin: 'xfsprogs',
  xfs_quota: 'xfsprogs',
  rsync: 'rsync',
  blkid: 'util-linux',
  findmnt: 'util-linux',
  mountpoint: 'util-linux',
  find: 'findutils',
  smbclient: 'smbclient',
  mt: 'mt-st',
  mkfifo: 'coreutils',
  dd: 'coreutils',
  tee: 'coreutils',
  wc: 'coreutils',
  zstd: 'zstd',
  'grub-install': 'grub-pc',
  tail: 'coreutils',
  openssl: 'openssl',
  lvs: 'lvm2',
  vgs: 'lvm2',
  lvcreate: 'lvm2',
  lvremove: 'lvm2',
  dmsetup: 'dmsetup',
};

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Words that must never appear in an error message or log. */
  secrets?: string[];
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export async function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  try {
    const r = await execa(cmd, args, {
      ...baseOptions(options),
      ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
    });
    return { stdout: String(r.stdout), stderr: String(r.stderr) };
  } catch (e) {
    throw toolError(cmd, args, e, options.secrets);
  }
}

/** Start a program whose stdin/stdout the caller pipes; await it with `finish`. */
export function start(
  cmd: string,
  args: readonly string[],
  options: RunOptions & { stdin?: 'pipe' | 'ignore'; stdout?: 'pipe' | 'ignore'; processGroup?: boolean } = {},
): ResultPromise {
  return execa(cmd, args, {
    ...baseOptions(options),
    stdin: options.stdin ?? 'ignore',
    stdout: options.stdout ?? 'pipe',
    buffer: { stdout: false, stderr: true },
    // In a process group of its own, the program and whatever it started can be killed together.
    ...(options.processGroup ? { detached: true } : {}),
  });
}

export type Command = readonly [cmd: string, args: readonly string[]];

export interface ChainOptions extends RunOptions {
  /**
   * Where the last program writes: an open descriptor, a pipe this process reads to the end (small
   * outputs only), or 'log' for a program whose stdout is its log (xfsdump -f): read as its stderr.
   */
  output: number | 'capture' | 'log';
}

export interface ChainResult {
  /** Each program's stderr, in order. */
  stderr: string[];
  /** The last program's stdout, when captured. */
  stdout: string;
}

/**
 * Runs a chain of programs (xfsdump | zstd > file): each one's stdout is
 * handed to the next as its stdin, so the data never passes through this
 * process. (execa only passes the standard streams through like this, hence
 * node's own spawn.)
 */
export async function runChain(chain: readonly Command[], options: ChainOptions): Promise<ChainResult> {
  return startChain(chain, options).done;
}

/** runChain, started: the programs' pids are known at once (a follower waits for the last one). */
export function startChain(chain: readonly Command[], options: ChainOptions): { pids: number[]; done: Promise<ChainResult> } {
  const children: ChildProcess[] = [];
  for (const [i, [cmd, args]] of chain.entries()) {
    const input = i === 0 ? 'ignore' : children[i - 1]!.stdout!;
    const last = i === chain.length - 1;
    const output = last && typeof options.output === 'number' ? options.output : 'pipe';
    children.push(
      spawn(cmd, args, {
        stdio: [input, output, 'pipe'],
        env: { ...process.env, LC_ALL: 'C', ...options.env },
        ...(options.cwd ? { cwd: options.cwd } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      }),
    );
    // The next program has the pipe now; this process's end of it would never be read, and
    // the previous program's 'close' would wait for it forever.
    if (i > 0) children[i - 1]!.stdout!.destroy();
  }
  return { pids: children.map((c) => c.pid ?? 0), done: awaitChain(chain, children, options) };
}

async function awaitChain(chain: readonly Command[], children: ChildProcess[], options: ChainOptions): Promise<ChainResult> {
  let stdout = '';
  if (options.output === 'capture') {
    children
      .at(-1)
      ?.stdout?.setEncoding('utf8')
      .on('data', (d: string) => {
        stdout = (stdout + d).slice(-65_536);
      });
  }
  const outcomes = await Promise.all(children.map((c, i) => exitOf(c, options.output === 'log' && i === children.length - 1)));
  for (const [i, o] of outcomes.entries()) {
    const failed = exitError(chain[i]!, o, options.secrets);
    if (failed) throw failed;
  }
  return { stderr: outcomes.map((o) => o.stderr), stdout };
}

export interface TeeOutcome {
  /** Each program's exit: the producers', tee's, each side's, then the sink's, in that order. */
  exits: (Exit & { command: Command })[];
  /** Each side program's stdout (small outputs: a digest, a count). */
  sides: string[];
  /** The first failure among them as a tool error, or undefined when all exited 0. */
  failure: (index: number) => UserError | undefined;
}

/**
 * A stream split by `tee` with no copy through this process: the producers'
 * chain (or, when `producers` is empty, a pipe this process writes to:
 * `input`) goes into tee, which hands it on to the sink's stdin and to each
 * side program through a FIFO of its own (a side is given the FIFO's path to
 * read; node's pipes are sockets, which tee cannot open as /dev/fd/N). The
 * sides' outputs are captured. Every program's exit is returned, so the caller
 * decides whose failure tells the story (a sink that fails kills the
 * producers with SIGPIPE).
 */
export async function startTee(
  producers: readonly Command[],
  sides: readonly ((fifo: string) => Command)[],
  sink: Command,
  options: RunOptions = {},
): Promise<{ input: Writable | undefined; done: Promise<TeeOutcome> }> {
  const dir = await mkdtemp(join(tmpdir(), 'syn3-tee-'));
  const fifos = sides.map((_, i) => join(dir, `side${i}`));
  try {
    if (fifos.length) await run('mkfifo', ['-m', '0600', ...fifos]);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  const env = { ...process.env, LC_ALL: 'C', ...options.env };
  const common = { env, ...(options.cwd ? { cwd: options.cwd } : {}), ...(options.signal ? { signal: options.signal } : {}) };
  const children: ChildProcess[] = [];
  const commands: Command[] = [];
  const add = (command: Command, stdio: StdioOptions): ChildProcess => {
    const child = spawn(command[0], command[1], { ...common, stdio });
    // A program that cannot start says so through its exit below, not as an unhandled 'error' event.
    child.once('error', () => undefined);
    children.push(child);
    commands.push(command);
    return child;
  };
  for (const [i, command] of producers.entries()) {
    add(command, [i === 0 ? 'ignore' : children[i - 1]!.stdout!, 'pipe', 'pipe']);
    if (i > 0) children[i - 1]!.stdout!.destroy();
  }
  const from = producers.length ? children.at(-1)!.stdout! : 'pipe';
  const tee = add(['tee', fifos], [from, 'pipe', 'pipe']);
  if (producers.length) children.at(-2)!.stdout!.destroy();
  const sideChildren = sides.map((side, i) => add(side(fifos[i]!), ['ignore', 'pipe', 'pipe']));
  add(sink, [tee.stdout!, 'ignore', 'pipe']);
  tee.stdout!.destroy();
  const outputs = sideChildren.map(() => '');
  sideChildren.forEach((s, i) => {
    s.stdout!.setEncoding('utf8').on('data', (d: string) => {
      outputs[i] = (outputs[i]! + d).slice(-65_536);
    });
  });
  const done = Promise.all(children.map(async (child, i) => ({ command: commands[i]!, ...(await exitOf(child)) })))
    .then((exits) => ({
      exits,
      sides: outputs,
      failure: (index: number) => (exits[index] ? exitError(exits[index].command, exits[index], options.secrets) : undefined),
    }))
    .finally(() => rm(dir, { recursive: true, force: true }));
  return { input: producers.length ? undefined : (tee.stdin ?? undefined), done };
}

interface Exit {
  code: number | null;
  signal: string | null;
  error?: NodeJS.ErrnoException;
  stderr: string;
}

/** How a program ended, with the last 64 KiB of its stderr. */
async function exitOf(child: ChildProcess, stdoutIsLog = false): Promise<Exit> {
  let stderr = '';
  const collect = (d: string) => {
    stderr = (stderr + d).slice(-65_536);
  };
  child.stderr?.setEncoding('utf8').on('data', collect);
  if (stdoutIsLog) child.stdout?.setEncoding('utf8').on('data', collect);
  const end = await new Promise<Omit<Exit, 'stderr'>>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return { ...end, stderr };
}

/** A program's failure as the tool error that names it, or undefined when it exited 0. */
function exitError([cmd, args]: Command, o: Exit, secrets?: string[]): UserError | undefined {
  if (!o.error && o.code === 0) return undefined;
  return toolError(
    cmd,
    args,
    {
      code: o.error?.code,
      exitCode: o.code ?? undefined,
      signal: o.signal ?? undefined,
      stderr: o.stderr,
      isCanceled: o.error?.name === 'AbortError',
    },
    secrets,
  );
}

export async function finish(child: ResultPromise, cmd: string, args: readonly string[], secrets?: string[]): Promise<RunResult> {
  try {
    const r = await child;
    return { stdout: '', stderr: String(r.stderr ?? '') };
  } catch (e) {
    throw toolError(cmd, args, e, secrets);
  }
}

function baseOptions(options: RunOptions): Options {
  return {
    cwd: options.cwd,
    env: { LC_ALL: 'C', ...options.env },
    extendEnv: true,
    timeout: options.timeoutMs,
    cancelSignal: options.signal,
    killSignal: 'SIGTERM',
    forceKillAfterDelay: 5000,
    stripFinalNewline: true,
  };
}

interface ExecaLikeError {
  code?: string;
  exitCode?: number;
  signal?: string;
  stderr?: unknown;
  timedOut?: boolean;
  isCanceled?: boolean;
  cause?: { code?: string };
  shortMessage?: string;
}

export function toolError(cmd: string, args: readonly string[], e: unknown, secrets: string[] = []): UserError {
  const err = (e ?? {}) as ExecaLikeError;
  const missing = err.code === 'ENOENT' || err.cause?.code === 'ENOENT';
  if (missing) {
    const pkg = PACKAGE_OF[cmd];
    return new UserError('tool', `the program '${cmd}' was not found on PATH`, {
      hint: pkg
        ? `Install it (apt-get install ${pkg}) or put it on PATH for this program`
        : `Install it or put it on PATH for this program`,
      cause: e,
    });
  }
  const said = lastLines(typeof err.stderr === 'string' ? err.stderr : '', 4);
  let what: string;
  if (err.timedOut) what = `${cmd} took too long and was stopped`;
  else if (err.isCanceled) what = `${cmd} was cancelled`;
  else if (err.signal) what = `${cmd} was killed by ${err.signal}`;
  else what = `${cmd} failed with exit code ${err.exitCode ?? '?'}`;
  const message = redact(`${what}${said ? `: ${said}` : ''} (ran: ${[cmd, ...args].join(' ')})`, secrets);
  return new UserError('tool', message, { cause: e });
}

export function lastLines(text: string, n: number): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-n)
    .join(' / ');
}

export function redact(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}
