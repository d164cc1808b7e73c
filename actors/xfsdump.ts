/**
 * The seed's step 5: a level-0 xfsdump of /home to the target, with no
 * staging copy. A local file target gets xfsdump's output directly (no copy
 * through Node, which cost more than xfsdump itself); the checksum is taken
 * from the page cache behind it, mostly while the file is fsynced (see
 * hash-while-writing.ts); the step counts once both are done, and the file's
 * length must be what xfsdump says it wrote. The verify
 * step then reads it back against that checksum. A target with its own
 * native writer (the tape: tee into dd, openssl and wc) runs xfsdump's chain
 * itself. Other targets get a stream, counted and hashed on the way.
 * -J: the host's xfsdump inventory is not used (every dump is level 0, and a
 * restore on new disks has no inventory anyway).
 * Beside every dump, of the live /home or of a snapshot, one find lists the
 * files whose times xfsdump cannot keep (src/system/find-unkept-times.ts).
 */
import { closeSync, fstatSync, fsync, openSync, statfsSync } from 'node:fs';
import { promisify } from 'node:util';
import { dirname } from 'node:path';
import type { DumpResult } from '../machines/types.js';
import type { Target } from '../src/targets/target.js';
import { UserError } from '../src/errors.js';
import { formatBytes } from '../src/format.js';
import { Measure } from '../src/system/streams.js';
import { compressing, ZSTD_COMPRESS, type Compression } from '../src/system/compression.js';
import { cachedLag, hashWhileWritten } from '../src/system/hash-while-writing.js';
import { finish, start, startChain, type Command } from '../src/system/run.js';
import { findUnkeptTimes, type UnkeptTimesFound } from '../src/system/find-unkept-times.js';
import { unkeptTimesOf } from '../src/system/unkept-times.js';

export interface DumpRequest {
  home: string;
  id: string;
  sessionLabel: string;
  mediaLabel: string;
  target: Target;
  /** Default none. */
  compression?: Compression;
  /** xfsdump -t: the dump's time is this file's mtime (a snapshot's dump is of the moment it was taken). */
  dumpTimeFile?: string;
  onProgress?: (bytes: number) => void;
  /** Hears, once the dump is done, every file whose times it could not keep: the result names only the first few. */
  onUnkeptTimes?: (found: UnkeptTimesFound) => void;
  /** Where the step's time went: the dump itself, then the checksum's catch-up and the fsync. */
  log?: (message: string) => void;
  signal?: AbortSignal;
}

/** With no file, xfsdump writes the dump to stdout ("-" stands alone, not after -f). */
export function xfsdumpArgs(r: Pick<DumpRequest, 'home' | 'sessionLabel' | 'mediaLabel' | 'dumpTimeFile'>, file?: string): string[] {
  return [
    '-l',
    '0',
    '-J',
    '-F',
    ...(r.dumpTimeFile ? ['-t', r.dumpTimeFile] : []),
    '-L',
    r.sessionLabel,
    '-M',
    r.mediaLabel,
    ...(file ? ['-f', file] : ['-']),
    r.home,
  ];
}

/** "xfsdump: media file size 5268016 bytes": what xfsdump wrote, by its own count. */
export function mediaFileSize(stderr: string): number | undefined {
  const m = /media file size (\d+) bytes/.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

export async function dumpHome(r: DumpRequest): Promise<DumpResult> {
  const dumpFailed = new AbortController();
  const finding = findUnkeptTimes(r.home, { signal: r.signal ? AbortSignal.any([r.signal, dumpFailed.signal]) : dumpFailed.signal });
  let result: DumpResult;
  try {
    result = await dumpTo(r);
  } catch (e) {
    dumpFailed.abort();
    await finding;
    throw e;
  }
  const found = await finding;
  r.onUnkeptTimes?.(found);
  const unkeptTimes = unkeptTimesOf(found.paths);
  return unkeptTimes ? { ...result, unkeptTimes } : result;
}

function dumpTo(r: DumpRequest): Promise<DumpResult> {
  if (r.target.localWrite) return dumpToFile(r, r.target.localWrite.bind(r.target));
  if (r.target.writeFrom) return dumpThroughTarget(r, r.target.writeFrom.bind(r.target));
  return dumpToStream(r);
}

/** The target runs xfsdump's chain into its own native writer (the tape's dd): no copy through Node. */
async function dumpThroughTarget(r: DumpRequest, writeFrom: NonNullable<Target['writeFrom']>): Promise<DumpResult> {
  const startedAt = Date.now();
  const compression = r.compression ?? 'none';
  const chain: Command[] = [['xfsdump', xfsdumpArgs(r)], ...(compression === 'zstd' ? [ZSTD_COMPRESS] : [])];
  const { bytes, sha256 } = await writeFrom(r.id, chain, r.signal ? { signal: r.signal } : {});
  r.onProgress?.(bytes);
  return { bytes, sha256, compression, startedAt, finishedAt: Date.now() };
}

async function dumpToFile(r: DumpRequest, localWrite: NonNullable<Target['localWrite']>): Promise<DumpResult> {
  const startedAt = Date.now();
  const { file, fail } = await localWrite(r.id);
  const fd = openSync(file, 'w', 0o600);
  const compression = r.compression ?? 'none';
  const options = r.signal ? { signal: r.signal } : {};
  try {
    // Uncompressed, xfsdump writes the file itself (-f), as the bare run does: measured 4-14 % faster
    // than its stdout into the same file. The file exists already (made here, in the pending
    // directory that only root can write), so xfsdump opens what this process made.
    const dumping =
      compression === 'zstd'
        ? startChain([['xfsdump', xfsdumpArgs(r)], ZSTD_COMPRESS], { output: fd, ...options })
        : startChain([['xfsdump', xfsdumpArgs(r, file)]], { output: 'log', ...options });
    // The checksum of what was written, taken from the page cache behind the writer: the read-back must match it.
    const hashing = hashWhileWritten(file, dumping.done, { lagBytes: cachedLag(), ...(r.onProgress ? { onProgress: r.onProgress } : {}) });
    const dumped = await dumping.done.catch((e: unknown) => {
      void hashing.catch(() => undefined);
      throw e;
    });
    const dumpedAt = Date.now();
    const after = <T>(p: Promise<T>) => p.then((v) => ({ v, ms: Date.now() - dumpedAt }));
    // The writeback and the follower's last reads overlap: neither waits for the other.
    const [hashed, synced] = await Promise.allSettled([after(hashing), after(promisify(fsync)(fd))]);
    if (hashed.status === 'rejected') throw hashed.reason;
    if (synced.status === 'rejected') throw synced.reason;
    r.log?.(
      `dump: written in ${dumpedAt - startedAt} ms; its checksum (${formatBytes(hashed.value.v.hashedWhileWriting)} of it taken while written) done ${hashed.value.ms} ms and its fsync ${synced.value.ms} ms after that`,
    );
    const stderr = dumped.stderr[0] ?? '';
    const { sha256, bytes: hashedBytes } = hashed.value.v;
    const bytes = fstatSync(fd).size;
    if (hashedBytes !== bytes) {
      throw new UserError('verify', `the dump file holds ${bytes} bytes, but ${hashedBytes} were written before its writer ended`, {
        where: file,
        hint: 'Something else wrote to the backup disk during the dump; check it. The earlier backups were kept',
      });
    }
    const said = mediaFileSize(stderr);
    // Compressed, the file is shorter than what xfsdump wrote: the verify step's full read proves it.
    if (compression === 'none' && said !== undefined && said !== bytes) {
      throw new UserError('verify', `the dump file holds ${bytes} bytes, but xfsdump wrote ${said}`, {
        where: file,
        hint: 'Check the backup disk; the earlier backups were kept',
      });
    }
    r.onProgress?.(bytes);
    return { bytes, sha256, compression, startedAt, finishedAt: Date.now() };
  } catch (e) {
    // xfsdump names a full disk far above the last lines of its stderr: ask the file system.
    throw await fail(nearlyFull(file) ? Object.assign(new Error('No space left on device'), { code: 'ENOSPC', cause: e }) : e);
  } finally {
    closeSync(fd);
  }
}

async function dumpToStream(r: DumpRequest): Promise<DumpResult> {
  const startedAt = Date.now();
  const args = xfsdumpArgs(r);
  const child = start('xfsdump', args, { signal: r.signal });
  const measure = new Measure(r.onProgress);
  const compression = r.compression ?? 'none';
  const packed = compressing(child.stdout!, compression);
  const stored = r.target.write(r.id, packed.stream.pipe(measure));
  // If the target gives up (full, gone), xfsdump must not go on writing into a closed pipe.
  stored.catch(() => child.kill('SIGTERM'));
  const [dumped, written, compressed] = await Promise.allSettled([finish(child, 'xfsdump', args), stored, packed.done]);
  if (written.status === 'rejected') throw written.reason;
  if (dumped.status === 'rejected') throw dumped.reason;
  if (compressed.status === 'rejected') throw compressed.reason;
  return { bytes: measure.bytes, sha256: measure.digest(), compression, startedAt, finishedAt: Date.now() };
}

function nearlyFull(file: string): boolean {
  try {
    const fs = statfsSync(dirname(file));
    return fs.bavail * fs.bsize < 4 * 1024 * 1024;
  } catch {
    return false;
  }
}
