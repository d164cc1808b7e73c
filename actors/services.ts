/**
 * The seed's restore step 1: stop, or kill, everything that uses /home. The
 * systemd units that own such processes are stopped first (so they are not
 * restarted), then what remains gets SIGTERM and, after the timeout, SIGKILL.
 * This process and its ancestors (the administrator's shell) are spared.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import { run } from '../src/system/run.js';

export interface StopRequest {
  home: string;
  timeoutMs: number;
  log: (message: string) => void;
}

export async function processesUsing(dir: string): Promise<number[]> {
  const root = resolve(dir);
  const inside = (p: string) => p === root || p.startsWith(`${root}/`);
  const spared = await ancestry();
  const pids = (await readdir('/proc'))
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((p) => !spared.has(p));
  const using: number[] = [];
  for (const pid of pids) {
    const links = [`/proc/${pid}/cwd`, `/proc/${pid}/root`, `/proc/${pid}/exe`];
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    links.push(...fds.map((fd) => `/proc/${pid}/fd/${fd}`));
    for (const link of links) {
      const target = await readlink(link).catch(() => '');
      if (target && inside(target.replace(/ \(deleted\)$/, ''))) {
        using.push(pid);
        break;
      }
    }
  }
  return using;
}

async function ancestry(): Promise<Set<number>> {
  const spared = new Set<number>([1]);
  for (let pid = process.pid; pid > 1 && !spared.has(pid); ) {
    spared.add(pid);
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    pid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  }
  return spared;
}

async function unitOf(pid: number): Promise<string | undefined> {
  const cgroup = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
  return /\/([^/]+\.service)(?:\/|$)/m.exec(cgroup)?.[1];
}

async function systemdRunning(): Promise<boolean> {
  return readlink('/proc/1/exe').then(
    (e) => e.includes('systemd'),
    () => false,
  );
}

export async function stopServicesUsing(r: StopRequest): Promise<{ stopped: string[] }> {
  const stopped: string[] = [];
  const first = await processesUsing(r.home);
  if (first.length && (await systemdRunning())) {
    const units = [...new Set((await Promise.all(first.map(unitOf))).filter((u): u is string => !!u))];
    for (const unit of units) {
      r.log(`stopping ${unit}: it uses ${r.home}`);
      await run('systemctl', ['stop', unit]).catch((e: Error) => r.log(`could not stop ${unit}: ${e.message}`));
      stopped.push(unit);
    }
  }
  for (const [signal, wait] of [
    ['SIGTERM', r.timeoutMs],
    ['SIGKILL', 2000],
  ] as const) {
    const left = await processesUsing(r.home);
    if (!left.length) break;
    r.log(`sending ${signal} to ${left.length} process(es) that use ${r.home}: ${left.join(' ')}`);
    for (const pid of left) {
      try {
        process.kill(pid, signal);
        stopped.push(`pid ${pid}`);
      } catch {
        /* already gone */
      }
    }
    const deadline = Date.now() + wait;
    while (Date.now() < deadline && (await processesUsing(r.home)).length) await new Promise((res) => setTimeout(res, 200));
  }
  return { stopped: [...new Set(stopped)] };
}
