/**
 * The freezer protocol of snapshot mode: a modules/*.freeze program holds its
 * database frozen for as long as its standard input stays open. It prints a
 * line "frozen" once it is; it thaws and exits 0 when its standard input
 * closes. Nothing here has to survive this process: if it dies at any moment
 * the pipes close, and every freezer thaws by itself.
 *
 * A freezer may first prepare and say "ready" (checks, connecting, a
 * checkpoint: nothing held yet), then freeze only when it reads a line
 * "freeze". Every freezer prepares at the same time, and all are told to
 * freeze together once the last is ready, so no database waits frozen through
 * another's preparations. One that says "frozen" straight away is frozen from
 * then on. Told nothing and its standard input closed, a ready freezer exits 0
 * without freezing.
 */
import { createInterface } from 'node:readline';
import type { ResultPromise } from 'execa';
import { UserError } from '../errors.js';
import { lastLines, start } from './run.js';

export interface FreezeOptions {
  env: Record<string, string>;
  cwd: string;
  /** How long a freezer may take to say "ready" or "frozen", to say "frozen" once told, and to exit once released. */
  timeoutMs: number;
  log: (message: string) => void;
  /** Runs once every freezer is ready, before any is told to freeze (snapshot mode flushes /home here). */
  beforeFreeze?: () => Promise<void>;
}

type Word = 'ready' | 'frozen';

interface Held {
  file: string;
  child: ResultPromise;
  /** Settles when the freezer exits, with its exit code (null: killed) and stderr. */
  exit: Promise<{ code: number | null; signal?: string; stderr: string }>;
  exited: boolean;
  /** How it ended, once everything it said has been read. */
  outcome?: { code: number | null; signal?: string; stderr: string };
  startedAt: number;
  /** When it said each word. */
  said: Partial<Record<Word, number>>;
  /** Called after every line it says. */
  listeners: Set<() => void>;
}

export interface Frozen {
  /** When the first freezer was started. */
  startedAt: number;
  /** When the first freezer said "frozen": the freeze window begins here (a freezer's preparations hold nothing). */
  firstFrozenAt: number;
  /** When the last freezer said "frozen". */
  frozenAt: number;
  /** Thaws every freezer in reverse order; fails if one had ended before it was released, or did not thaw cleanly. */
  release(): Promise<{ thawedAt: number }>;
}

/**
 * Starts the freezers in name order, all at once; once every one is ready (or frozen), tells the
 * ready ones to freeze, together, and returns when every one has said "frozen".
 */
export async function freezeAll(modules: readonly string[], o: FreezeOptions): Promise<Frozen> {
  const held: Held[] = [];
  const startedAt = Date.now();
  try {
    for (const file of modules) {
      o.log(`freeze: starting ${file}`);
      held.push(launch(file, o));
    }
    await Promise.all(held.map((h) => until(h, ['ready', 'frozen'], o)));
    await o.beforeFreeze?.();
    const told = Date.now();
    const ready = held.filter((h) => h.said.frozen === undefined);
    for (const h of ready) h.child.stdin?.write('freeze\n');
    await Promise.all(
      ready.map(async (h) => {
        await until(h, ['frozen'], o);
        o.log(`freeze: ${h.file} is frozen (${h.said.frozen! - told} ms after it was told)`);
      }),
    );
  } catch (e) {
    await thaw(held, o).catch(() => undefined);
    throw e;
  }
  const times = held.map((h) => h.said.frozen!);
  const frozenAt = times.length ? Math.max(...times) : Date.now();
  return {
    startedAt,
    firstFrozenAt: times.length ? Math.min(...times) : frozenAt,
    frozenAt,
    release: async () => ({ thawedAt: await thaw(held, o) }),
  };
}

function launch(file: string, o: FreezeOptions): Held {
  // Its own process group: a freezer that must be killed goes with whatever it started.
  const child = start(file, [], { stdin: 'pipe', stdout: 'pipe', env: o.env, cwd: o.cwd, processGroup: true });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-16_384);
  });
  // The outcome is read from the process's exit below, not from execa's promise, which also
  // waits for every process that inherited the pipes (a freezer's stray child would hold it).
  const settled = child.then(
    () => undefined,
    () => undefined,
  );
  const h: Held = {
    file,
    child,
    exited: false,
    startedAt: Date.now(),
    said: {},
    listeners: new Set(),
    exit: new Promise((resolve) => {
      child.once('error', (e: NodeJS.ErrnoException) => {
        h.exited = true;
        resolve({ code: null, signal: e.code === 'ENOENT' ? 'not found' : e.code, stderr: e.message });
      });
      child.once('exit', (code, signal) => {
        h.exited = true;
        // What it said last is still in the pipe: give it a moment to arrive.
        void Promise.race([settled, new Promise((r) => setTimeout(r, 200))]).then(() => {
          // A stray child of the freezer may still hold its pipes: they must not keep this process alive.
          child.stdout?.destroy();
          child.stderr?.destroy();
          resolve({ code, ...(signal ? { signal } : {}), stderr });
        });
      });
    }),
  };
  // A freezer that stops reading its stdin early must not take this process down with EPIPE.
  child.stdin?.on('error', () => undefined);
  createInterface({ input: child.stdout! }).on('line', (raw) => {
    const line = raw.trim();
    if (line === 'ready' || line === 'frozen') {
      h.said[line] ??= Date.now();
      if (line === 'ready') o.log(`freeze: ${file} is ready (${h.said.ready! - h.startedAt} ms after its start)`);
    } else if (line) o.log(`freeze: ${file} said: ${line}`);
    for (const l of h.listeners) l();
  });
  void h.exit.then((x) => {
    h.outcome = x;
    for (const l of h.listeners) l();
  });
  return h;
}

/** Waits until the freezer has said one of `words`; rejects if it exits first or takes longer than the timeout. */
function until(h: Held, words: readonly Word[], o: FreezeOptions): Promise<void> {
  const heard = () => words.some((w) => h.said[w] !== undefined);
  const wanted = words.map((w) => `"${w}"`).join(' or ');
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      h.listeners.delete(check);
    };
    const check = () => {
      if (heard()) {
        done();
        resolve();
      } else if (h.outcome) {
        const x = h.outcome;
        done();
        reject(
          new UserError(
            'module',
            `freezer ${h.file} ${x.signal ? `was stopped (${x.signal})` : `exited with ${x.code}`} before it said ${wanted}${x.stderr.trim() ? `: ${lastLines(x.stderr, 3)}` : ''}`,
            { hint: 'Run it by hand to see why; the backup was not made and the earlier ones are kept' },
          ),
        );
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(
        new UserError('module', `freezer ${h.file} did not say ${wanted} within ${Math.round(o.timeoutMs / 1000)} s`, {
          hint: words.includes('ready')
            ? 'Run it by hand to see where it waits (it must print a line "frozen" once the database is frozen, or "ready" and then freeze when it reads "freeze"), or raise snapshot.freeze_timeout; the backup was not made and the earlier ones are kept'
            : 'It said "ready" but did not freeze when told to: run it by hand and type "freeze", or raise snapshot.freeze_timeout; the backup was not made and the earlier ones are kept',
        }),
      );
    }, o.timeoutMs);
    h.listeners.add(check);
    check();
  });
}

function killGroup(h: Held): void {
  try {
    if (h.child.pid) process.kill(-h.child.pid, 'SIGKILL');
  } catch {
    h.child.kill('SIGKILL');
  }
}

/** Closes each freezer's stdin, last started first, and waits for it to exit; returns when the last has. */
async function thaw(held: Held[], o: FreezeOptions): Promise<number> {
  const problems: string[] = [];
  for (const h of [...held].reverse()) {
    const early = h.exited;
    h.child.stdin?.end();
    const timer = setTimeout(() => killGroup(h), o.timeoutMs);
    const x = await h.exit;
    clearTimeout(timer);
    if (early) problems.push(`${h.file} ended while it should have held its freeze (exit ${x.code ?? x.signal})`);
    else if (x.code !== 0) problems.push(`${h.file} did not thaw cleanly (${x.signal ? `killed: ${x.signal}` : `exit ${x.code}`})`);
    if (x.stderr.trim()) o.log(`freeze: ${h.file} said on stderr: ${lastLines(x.stderr, 5)}`);
    o.log(`freeze: ${h.file} released`);
  }
  const thawedAt = Date.now();
  if (problems.length) {
    throw new UserError('module', `a freeze did not hold: ${problems.join('; ')}`, {
      hint: 'A snapshot taken then may not be consistent, so it was not used; run the freezer by hand to see why. The earlier backups are kept',
    });
  }
  return thawedAt;
}
