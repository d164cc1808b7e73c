/**
 * A backup counts only once it has been read back from the target: the whole
 * stream must have the length and checksum recorded while it was written, and
 * xfsrestore must read its table of contents to the end without complaint.
 * Exit statuses alone are not trusted: xfsrestore says SUCCESS on a truncated
 * dump, and only the checksum catches a target that returns other bytes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { UserError } from '../src/errors.js';
import { Measure } from '../src/system/streams.js';
import { decompressingInto, type Compression } from '../src/system/compression.js';
import { finish, start } from '../src/system/run.js';
import { XfsrestoreReport } from '../src/system/xfsrestore-report.js';

export interface Expected {
  bytes: number;
  /** Taken while the dump was written. */
  sha256: string;
}

export interface Verified {
  bytes: number;
  sha256: string;
  entries: number;
}

export const XFSRESTORE_TOC_ARGS = ['-t', '-F', '-J', '-'];

export async function verifyStream(
  open: () => Promise<Readable>,
  expected: Expected,
  where: string,
  compression: Compression = 'none',
  signal?: AbortSignal,
): Promise<Verified> {
  // xfsrestore -t keeps its housekeeping folder in its working directory, and leaves it when killed.
  const scratch = await mkdtemp(join(tmpdir(), 'syn3-verify-'));
  try {
    return await readBack(await open(), expected, where, compression, scratch, signal);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function readBack(
  source: Readable,
  expected: Expected,
  where: string,
  compression: Compression,
  cwd: string,
  signal: AbortSignal | undefined,
): Promise<Verified> {
  const measure = new Measure();
  const report = new XfsrestoreReport();
  const toc = start('xfsrestore', XFSRESTORE_TOC_ARGS, { stdin: 'pipe', stdout: 'pipe', signal, cwd });
  // The checksum is over the bytes as stored; xfsrestore reads them as xfsdump wrote them.
  const unpacked = decompressingInto(toc.stdin!, compression);
  const [piped, listed, reported, unpackedDone] = await Promise.allSettled([
    pipeline(source, measure, unpacked.input),
    finish(toc, 'xfsrestore', XFSRESTORE_TOC_ARGS),
    pipeline(toc.stdout!, report),
    unpacked.done,
  ]);
  const actual = { bytes: measure.bytes, sha256: measure.digest() };
  if (piped.status === 'rejected') throw readFailure(piped.reason, where);
  if (actual.bytes !== expected.bytes || actual.sha256 !== expected.sha256) {
    throw new UserError(
      'verify',
      `the backup read back from the target differs from what was written (${actual.bytes} bytes, sha256 ${actual.sha256.slice(0, 12)}…; expected ${expected.bytes} bytes, sha256 ${expected.sha256.slice(0, 12)}…)`,
      { where, hint: 'The target corrupted or truncated the data: check the disk or share; the earlier backups were kept' },
    );
  }
  const trouble =
    listed.status === 'rejected'
      ? [(listed.reason as Error).message]
      : unpackedDone.status === 'rejected'
        ? [(unpackedDone.reason as Error).message]
        : report.trouble();
  if (trouble.length) {
    throw new UserError('verify', `xfsrestore cannot read the dump back cleanly: ${trouble.slice(0, 3).join(' / ')}`, {
      where,
      hint: 'The dump is not restorable; check the xfsdump messages in the log and the health of /home; the earlier backups were kept',
    });
  }
  if (reported.status === 'rejected') throw reported.reason;
  return { ...actual, entries: report.entries };
}

/**
 * The read of a backup from its target failed on the way (a connection
 * dropped mid-stream, the server gone): its own reason says what happened and
 * what to do, not the short or different bytes it left behind.
 */
export function readFailure(reason: unknown, where: string): UserError {
  if (reason instanceof UserError) return reason;
  return new UserError('target', `reading the backup from the target failed: ${(reason as Error)?.message ?? String(reason)}`, {
    where,
    hint: 'Check the target and the connection to it, then run again',
    cause: reason,
  });
}
