/**
 * The dump onto the tape with no byte of it through this process. The dump
 * comes from the producers' chain (xfsdump [| zstd]), or, for a caller that
 * has a stream (Target.write), through one pipe this process fills; `tee`
 * hands it on to
 *
 *   dd of=<tape> bs=<block_size> iflag=fullblock conv=sync   the tape file: every write one whole block
 *                                                            (fullblock gathers them from the pipe, sync
 *                                                            pads the last one with zeros)
 *   openssl dgst -sha256 -r FIFO                             its checksum
 *   wc -c FIFO                                               its true length (the end record's)
 *
 * dd closing the non-rewinding device writes the file mark. A failure of dd
 * is the tape's (TapeIoError with the errno dd named), and it outranks the
 * producers' (which then die of SIGPIPE).
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SHA256_OF_STDIN, sha256FromDgst } from '../../system/hash-while-writing.js';
import { type Command, startTee } from '../../system/run.js';
import { type BlockSink, TapeIoError } from './media.js';

/** What went onto the tape: the true length and sha256 of the stream, before dd's padding. */
export interface Written {
  bytes: number;
  sha256: string;
}

/** dd's complaints, by the words of strerror, as the errno the catalogue (errors.ts) knows. */
const ERRNO_OF: [RegExp, string][] = [
  [/No space left on device/i, 'ENOSPC'],
  [/Read-only file system/i, 'EROFS'],
  [/Permission denied/i, 'EACCES'],
  [/No medium found/i, 'ENOMEDIUM'],
  [/Device or resource busy/i, 'EBUSY'],
  [/No such device or address/i, 'ENXIO'],
  [/No such device/i, 'ENODEV'],
  [/No such file or directory/i, 'ENOENT'],
  [/Cannot allocate memory/i, 'ENOMEM'],
  [/Invalid argument/i, 'EINVAL'],
  [/Input\/output error/i, 'EIO'],
];

export function ddCommand(sink: BlockSink, blockSize: number): Command {
  return ['dd', [`of=${sink.path}`, `bs=${blockSize}`, 'iflag=fullblock', `conv=${['sync', ...sink.conv].join(',')}`]];
}

/** "2883584 bytes (2.9 MB, 2.8 MiB) copied": what dd wrote, by its own count. */
export function ddBytes(stderr: string): number | undefined {
  const m = /(\d+) bytes? .*copied/.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

/** dd's failure as the tape's: the errno its message names, and how much reached the tape. */
export function ddFailure(stderr: string, fallback: Error): TapeIoError {
  const said = stderr
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l.startsWith('dd:'));
  const code = ERRNO_OF.find(([re]) => re.test(said ?? ''))?.[1];
  const error = Object.assign(new Error(said?.replace(/^dd:\s*/, '') ?? fallback.message), {
    ...(code ? { code } : {}),
    bytesWritten: ddBytes(stderr) ?? 0,
    cause: fallback,
  });
  return new TapeIoError(error);
}

/**
 * Writes one tape file from `producers`, or from `source` when there are none.
 * A source that fails ends the tape file where it stopped (dd still closes it)
 * and the write fails with the source's own error.
 */
export async function writeBlocks(
  sink: BlockSink,
  blockSize: number,
  from: { producers: readonly Command[] } | { source: Readable },
  signal?: AbortSignal,
): Promise<Written & { stderr: string[] }> {
  const producers = 'producers' in from ? from.producers : [];
  const teeing = await startTee(
    producers,
    [(fifo) => [SHA256_OF_STDIN[0], [...SHA256_OF_STDIN[1], fifo]], (fifo) => ['wc', ['-c', fifo]]],
    ddCommand(sink, blockSize),
    signal ? { signal } : {},
  );
  let sourceFailure: { error: unknown } | undefined;
  if ('source' in from) {
    const input = teeing.input!;
    // An EPIPE here means dd (and so tee) gave up: their exits tell why.
    input.on('error', () => undefined);
    await pipeline(from.source, input).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== 'EPIPE') sourceFailure = { error };
    });
  }
  const outcome = await teeing.done;
  const ddAt = outcome.exits.length - 1;
  const dd = outcome.exits[ddAt]!;
  const ddFailed = outcome.failure(ddAt);
  if (ddFailed) throw ddFailure(dd.stderr, ddFailed);
  // dd closed the tape file, whatever else happened.
  sink.written();
  if (sourceFailure) throw sourceFailure.error;
  for (let i = 0; i < ddAt; i++) {
    const failed = outcome.failure(i);
    if (failed) throw failed;
  }
  const bytes = Number(outcome.sides[1]!.trim().split(/\s+/)[0]);
  if (!Number.isSafeInteger(bytes)) throw new Error(`wc -c printed no byte count: ${JSON.stringify(outcome.sides[1]!.slice(0, 100))}`);
  const padded = Math.ceil(bytes / blockSize) * blockSize;
  const copied = ddBytes(dd.stderr);
  // What wc counted went to dd too, padded to whole blocks: anything else is a tool that misbehaved.
  if (copied !== padded) {
    throw new TapeIoError(
      new Error(`dd wrote ${copied ?? 'an unknown number of'} bytes to the tape, but the dump was ${bytes} (${padded} in whole blocks)`),
    );
  }
  return { bytes, sha256: sha256FromDgst(outcome.sides[0]!), stderr: outcome.exits.slice(0, producers.length).map((e) => e.stderr) };
}
