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
import { UserError } from '../src/errors.js';
import type { Compression } from '../src/system/compression.js';
import { type BackupSource, readInto } from '../src/system/read-into.js';
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
  open: () => Promise<BackupSource>,
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
  source: BackupSource,
  expected: Expected,
  where: string,
  compression: Compression,
  cwd: string,
  signal: AbortSignal | undefined,
): Promise<Verified> {
  const report = new XfsrestoreReport();
  const fed = await readInto(source, ['xfsrestore', XFSRESTORE_TOC_ARGS], report, { compression, cwd, signal });
  const actual = { bytes: fed.bytes, sha256: fed.sha256 };
  if (fed.readFailure) throw readFailure(fed.readFailure, where);
  if (actual.bytes !== expected.bytes || actual.sha256 !== expected.sha256) {
    throw new UserError(
      'verify',
      `the backup read back from the target differs from what was written (${actual.bytes} bytes, sha256 ${actual.sha256.slice(0, 12)}…; expected ${expected.bytes} bytes, sha256 ${expected.sha256.slice(0, 12)}…)`,
      { where, hint: 'The target corrupted or truncated the data: check the disk or share; the earlier backups were kept' },
    );
  }
  const trouble = fed.consumerFailure
    ? [(fed.consumerFailure as Error).message]
    : fed.unpackFailure
      ? [(fed.unpackFailure as Error).message]
      : report.trouble();
  if (trouble.length) {
    throw new UserError('verify', `xfsrestore cannot read the dump back cleanly: ${trouble.slice(0, 3).join(' / ')}`, {
      where,
      hint: 'The dump is not restorable; check the xfsdump messages in the log and the health of /home; the earlier backups were kept',
    });
  }
  if (fed.reportFailure) throw fed.reportFailure;
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
