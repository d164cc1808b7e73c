/**
 * Snapshot mode's dump: the snapshot mounted read-only at a private mount point
 * (nouuid: XFS refuses a second file system with its origin's UUID), xfsdumped
 * with the snapshot's time as the dump time, then unmounted and removed, on
 * success and on failure. A snapshot whose copy-on-write space runs out turns
 * invalid and reads garbage from then on: it is watched during the dump (the
 * dump is stopped) and checked once more after it.
 */
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import type { DumpResult, SnapshotTaken } from '../machines/types.js';
import { UserError } from '../src/errors.js';
import { currentState, removeSnapshot, snapshotBroken, snapshotInvalid, type LogicalVolume } from '../src/system/lvm.js';
import { mount, unmount } from '../src/system/mount.js';
import { dumpHome, type DumpRequest } from './xfsdump.js';

export interface SnapshotDumpRequest extends Omit<DumpRequest, 'home' | 'dumpTimeFile'> {
  snapshot: SnapshotTaken;
  /** Where the snapshot is mounted while it is dumped: a directory only root can reach. */
  mountDir: string;
  /** A file whose mtime is set to the snapshot's time, for xfsdump -t. */
  timeFile: string;
  log: (message: string) => void;
  /** How often the snapshot's state is looked at during the dump. */
  watchEveryMs?: number;
}

export async function dumpSnapshot(r: SnapshotDumpRequest): Promise<DumpResult> {
  const lv = await findSnapshot(r.snapshot);
  if (snapshotInvalid(lv)) throw exhausted(r.snapshot);
  await unmount(r.mountDir);
  mkdirSync(r.mountDir, { recursive: true, mode: 0o700 });
  writeFileSync(r.timeFile, `${new Date(r.snapshot.takenAt).toISOString()}\n`, { mode: 0o600 });
  utimesSync(r.timeFile, r.snapshot.takenAt / 1000, r.snapshot.takenAt / 1000);
  const watch = watchSnapshot(lv, r.watchEveryMs ?? 2000);
  try {
    await mount(lv.dmPath, r.mountDir, 'xfs', 'ro,nouuid');
    const signal = r.signal ? AbortSignal.any([r.signal, watch.signal]) : watch.signal;
    let result: DumpResult;
    try {
      result = await dumpHome({ ...r, home: r.mountDir, dumpTimeFile: r.timeFile, signal });
    } catch (e) {
      // An overflowed snapshot often makes xfsdump fail (I/O errors) before the watch looks again.
      throw watch.invalid() || (await invalidNow(lv)) ? exhausted(r.snapshot, e) : e;
    }
    watch.stop();
    if (await invalidNow(lv)) throw exhausted(r.snapshot);
    return result;
  } finally {
    watch.stop();
    await release(lv, r);
  }
}

async function invalidNow(lv: LogicalVolume): Promise<boolean> {
  const now = await currentState(lv).catch(() => lv);
  return !now || snapshotInvalid(now);
}

async function findSnapshot(s: SnapshotTaken): Promise<LogicalVolume> {
  const lv = await currentState({ vg: s.vg, name: s.name });
  if (!lv) {
    throw new UserError('state', `the snapshot ${s.vg}/${s.name} taken for this backup is gone`, {
      hint: 'Something removed it before it was dumped; the next backup takes a new one. The earlier backups are kept',
    });
  }
  return lv;
}

/** Polls device-mapper; aborts the dump when the snapshot turns invalid or disappears (dmeventd may drop an overflowed one). */
function watchSnapshot(lv: LogicalVolume, everyMs: number) {
  const controller = new AbortController();
  let bad = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const look = async () => {
    if (stopped) return;
    if (await snapshotBroken(lv)) {
      bad = true;
      controller.abort(new Error('the snapshot became invalid'));
      return;
    }
    if (!stopped) timer = setTimeout(look, everyMs);
  };
  timer = setTimeout(look, everyMs);
  return {
    signal: controller.signal,
    invalid: () => bad,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

async function release(lv: LogicalVolume, r: SnapshotDumpRequest): Promise<void> {
  try {
    await unmount(r.mountDir);
    const still = await currentState(lv);
    if (still) await removeSnapshot(still);
    r.log(`snapshot: ${lv.vg}/${lv.name} unmounted and removed`);
  } catch (e) {
    // The dump's own outcome stands; the next preflight removes what is left, or says why it cannot.
    r.log(`snapshot: could not remove ${lv.vg}/${lv.name} yet: ${(e as Error).message}`);
  }
}

function exhausted(s: SnapshotTaken, cause?: unknown): UserError {
  return new UserError(
    'config',
    `the snapshot ${s.vg}/${s.name} ran out of copy-on-write space during the dump (lvs shows it invalid), so the dump is not of one moment`,
    {
      hint: 'Raise snapshot.size (more of the volume group kept free for it), or back up when /home changes less; the earlier backups are kept',
      cause,
    },
  );
}
