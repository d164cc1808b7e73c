/**
 * A backup read from its target into the program that consumes it (xfsrestore
 * restoring /home, or listing the dump's contents to verify it), counted and
 * hashed on the way, with the consumer's stdout fed to `report`.
 *
 * A target whose read is a program's stdout (Target.readProgram: smbclient
 * get NAME -) is read with no byte through this process, the same machinery
 * as the tape's native write (run.ts startTee):
 *
 *   smbclient get NAME -  |  tee -p  |  [zstd -d |] xfsrestore ...
 *                                ├── openssl dgst -sha256 -r FIFO   the checksum
 *                                ├── wc -c FIFO                     the length
 *                                └── head -c 4096 FIFO              the first bytes: where smbclient
 *                                                                   says it cannot open the file
 *
 * tee -p goes on feeding the checksum when the consumer gives up early, as the
 * stream path's forwardTolerantly does, and when head has what it wants: a
 * message instead of data is the program's whole output, and a failure on the
 * way is said on stderr (smbclient: "parallel_read returned NT_STATUS_..."), so
 * the rest of the stream need not be kept (tail -c cost 0.2 s per 250 MB here).
 * Any other target's stream passes through a Measure here. Either way the caller judges the outcome in the same
 * order: the read's own failure, the length and checksum, then the consumer.
 */
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ProgramRead, Target } from '../targets/target.js';
import { decompressingInto, ZSTD_DECOMPRESS, type Compression } from './compression.js';
import { SHA256_OF_STDIN, sha256FromDgst } from './hash-while-writing.js';
import { type Command, finish, start, startTee } from './run.js';
import { Measure } from './streams.js';

/** A backup to read: a stream through this process, or a program's stdout. */
export type BackupSource = Readable | ProgramRead;

/** More than smbclient's message about a file it cannot open. */
const HEAD_BYTES = 4096;

/** The programs the native read runs besides the target's own and the consumer (requireTools). */
export const NATIVE_READ_TOOLS = ['tee', 'mkfifo', 'openssl', 'wc', 'head'];

/** The backup `id` from `target`: natively where the target offers it (readProgram), else its stream. */
export async function backupSource(target: Target, id: string, options: { pending?: boolean } = {}): Promise<BackupSource> {
  if (target.readProgram) return target.readProgram(id, options);
  return options.pending ? target.openPending(id) : target.open(id);
}

export function isProgramRead(source: BackupSource): source is ProgramRead {
  return (source as Partial<ProgramRead>).kind === 'program';
}

export interface Fed {
  /** Only meaningful without a readFailure. */
  bytes: number;
  sha256: string;
  /** The read itself failed (the target's error, or a tool of the native read): it outranks the rest. */
  readFailure?: unknown;
  /** The consumer's exit (run.ts's tool error). */
  consumerFailure?: unknown;
  /** zstd's, when the backup is compressed. */
  unpackFailure?: unknown;
  /** Reading the consumer's stdout into `report`. */
  reportFailure?: unknown;
}

export async function readInto(
  source: BackupSource,
  consumer: Command,
  report: Writable,
  options: { compression?: Compression; cwd?: string; signal?: AbortSignal | undefined } = {},
): Promise<Fed> {
  return isProgramRead(source) ? readNatively(source, consumer, report, options) : readStream(source, consumer, report, options);
}

async function readStream(
  source: Readable,
  [cmd, args]: Command,
  report: Writable,
  options: { compression?: Compression; cwd?: string; signal?: AbortSignal | undefined },
): Promise<Fed> {
  const measure = new Measure();
  const child = start(cmd, args, {
    stdin: 'pipe',
    stdout: 'pipe',
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  // The checksum is over the bytes as stored; the consumer reads them as xfsdump wrote them.
  const unpacked = decompressingInto(child.stdin!, options.compression ?? 'none');
  const [piped, ended, reported, unpackedDone] = await Promise.allSettled([
    pipeline(source, measure, unpacked.input),
    finish(child, cmd, args),
    pipeline(child.stdout!, report),
    unpacked.done,
  ]);
  return {
    bytes: measure.bytes,
    sha256: measure.digest(),
    ...(piped.status === 'rejected' ? { readFailure: piped.reason } : {}),
    ...(ended.status === 'rejected' ? { consumerFailure: ended.reason } : {}),
    ...(unpackedDone.status === 'rejected' ? { unpackFailure: unpackedDone.reason } : {}),
    ...(reported.status === 'rejected' ? { reportFailure: reported.reason } : {}),
  };
}

async function readNatively(
  source: ProgramRead,
  consumer: Command,
  report: Writable,
  options: { compression?: Compression; cwd?: string; signal?: AbortSignal | undefined },
): Promise<Fed> {
  const unpack = (options.compression ?? 'none') === 'zstd' ? [ZSTD_DECOMPRESS] : [];
  const teeing = await startTee(
    [source.command],
    [
      (fifo) => [SHA256_OF_STDIN[0], [...SHA256_OF_STDIN[1], fifo]],
      (fifo) => ['wc', ['-c', fifo]],
      (fifo) => ['head', ['-c', String(HEAD_BYTES), fifo]],
    ],
    [...unpack, consumer],
    {
      secrets: source.secrets,
      keepFeeding: true,
      sinkOutput: 'pipe',
      ...(options.cwd ? { sinkCwd: options.cwd } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    },
  );
  const reported = pipeline(teeing.output!, report).then(
    () => undefined,
    (e: unknown) => ({ e }),
  );
  const outcome = await teeing.done;
  const reportFailed = await reported;
  const [hashed = '', counted = '', head = ''] = outcome.sides;
  const consumerAt = outcome.exits.length - 1;
  const programFailed = outcome.failure(0);
  // The program's failure is the target's (its error classified); then tee's and the sides'.
  let readFailure: unknown = programFailed ? source.failed(programFailed, head) : [1, 2, 3, 4].map((i) => outcome.failure(i)).find(Boolean);
  let bytes = Number.NaN;
  let sha256 = '';
  if (!readFailure) {
    try {
      bytes = Number(counted.trim().split(/\s+/)[0]);
      if (!Number.isSafeInteger(bytes)) throw new Error(`wc -c printed no byte count: ${JSON.stringify(counted.slice(0, 100))}`);
      sha256 = sha256FromDgst(hashed);
    } catch (e) {
      readFailure = e;
    }
  }
  const unpackFailure = unpack.length ? outcome.failure(consumerAt - 1) : undefined;
  const consumerFailure = outcome.failure(consumerAt);
  return {
    bytes,
    sha256,
    ...(readFailure ? { readFailure } : {}),
    ...(consumerFailure ? { consumerFailure } : {}),
    ...(unpackFailure ? { unpackFailure } : {}),
    ...(reportFailed ? { reportFailure: reportFailed.e } : {}),
  };
}
