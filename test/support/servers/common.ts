/** What every test server shares: a free port on 127.0.0.1, and a safety net so none outlives a dying test run. */
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface Stoppable {
  stopSync(): void;
}

const FATAL_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/**
 * Servers tracked while they run are stopped on exit and on fatal signals
 * (vitest stops its workers with SIGTERM); the hooks are installed only
 * while something is tracked.
 */
export function safetyNet(): { track(s: Stoppable): void; untrack(s: Stoppable): void } {
  const live = new Set<Stoppable>();
  const onExit = () => {
    for (const s of [...live]) s.stopSync();
  };
  const onFatalSignal = (signal: NodeJS.Signals) => {
    onExit();
    set(false);
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  const set = (on: boolean) => {
    const method = on ? 'on' : 'off';
    process[method]('exit', onExit);
    for (const signal of FATAL_SIGNALS) process[method](signal, onFatalSignal);
  };
  return {
    track(s) {
      if (live.size === 0) set(true);
      live.add(s);
    },
    untrack(s) {
      if (live.delete(s) && live.size === 0) set(false);
    },
  };
}

/** SIGKILL a process, its process group and every descendant (collected first: they get re-parented). */
export function killTree(pid: number): void {
  const all = [pid, ...descendants(pid)];
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group is gone already.
  }
  for (const p of all) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    for (const c of children.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
