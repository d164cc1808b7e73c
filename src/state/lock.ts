/**
 * One run at a time. The lock file holds the holder's pid and start time; a
 * lock whose holder is gone (killed, machine rebooted) is taken over. A pid
 * check fits better than proper-lockfile's mtime staleness: a dump may run for
 * hours without touching the lock, and the holder is always on this machine.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync, fsyncSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';

export interface LockHolder {
  pid: number;
  since: string;
  command: string;
  /** A pid from before a reboot (a restored system carries its lock file along) says nothing. */
  bootId?: string;
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

export type LockResult = { acquired: true; release: () => void; tookOverFrom?: LockHolder } | { acquired: false; holder: LockHolder };

export function acquireLock(stateDir: string, command: string): LockResult {
  const file = join(stateDir, 'lock');
  let tookOverFrom: LockHolder | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      const me: LockHolder = { pid: process.pid, since: new Date().toISOString(), command, bootId: bootId() };
      writeSync(fd, JSON.stringify(me));
      fsyncSync(fd);
      closeSync(fd);
      return { acquired: true, release: () => releaseIfMine(file), ...(tookOverFrom ? { tookOverFrom } : {}) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new UserError('state', `cannot create the lock file (${(e as NodeJS.ErrnoException).code})`, {
          where: file,
          hint: 'Check that the state directory (paths.state) exists and is writable by root',
        });
      }
    }
    const holder = readHolder(file);
    if (holder && (!holder.bootId || holder.bootId === bootId()) && isAlive(holder.pid)) return { acquired: false, holder };
    // The holder is dead or the file is unreadable (crash while writing it).
    tookOverFrom = holder ?? { pid: 0, since: 'unknown', command: 'unknown' };
    try {
      unlinkSync(file);
    } catch {
      /* another process took it over first; the next attempt sees its lock */
    }
  }
  throw new UserError('state', 'cannot take the lock: it keeps changing hands', {
    where: file,
    hint: 'Another syn3-backup process is starting at the same moment; try again',
  });
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(file, 'utf8')) as LockHolder;
    return typeof h.pid === 'number' ? h : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function releaseIfMine(file: string): void {
  const holder = readHolder(file);
  if (holder?.pid === process.pid) unlinkSync(file);
}
