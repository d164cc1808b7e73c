/**
 * Optional zstd in the backup stream: what a backup was written with is in
 * its metadata, and the restore undoes it. zstd runs as its own process, so
 * it uses a core of its own and the data need not pass through Node.
 */
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ResultPromise } from 'execa';
import { forwardTolerantly } from './streams.js';
import { finish, start, type Command } from './run.js';

export type Compression = 'none' | 'zstd';

export const ZSTD_COMPRESS: Command = ['zstd', ['-q', '-c', '-T0', '-3']];
export const ZSTD_DECOMPRESS: Command = ['zstd', ['-q', '-d', '-c']];

/** The stream as the target stores it: compressed when asked, else as is. */
export function compressing(source: Readable, compression: Compression): { stream: Readable; done: Promise<unknown> } {
  if (compression === 'none') return { stream: source, done: Promise.resolve() };
  const [cmd, args] = ZSTD_COMPRESS;
  const z = start(cmd, args, { stdin: 'pipe', stdout: 'pipe' });
  return { stream: z.stdout!, done: Promise.all([pipeline(source, z.stdin!), finish(z, cmd, args)]) };
}

/**
 * Feeds `consumer` with the uncompressed stream: `feed` receives the bytes
 * as stored (so they can be counted and hashed first) and hands them on.
 */
export function decompressingInto(consumer: Writable, compression: Compression): { input: Writable; done: Promise<unknown> } {
  if (compression === 'none') return { input: forwardTolerantly(consumer), done: Promise.resolve() };
  const [cmd, args] = ZSTD_DECOMPRESS;
  const z: ResultPromise = start(cmd, args, { stdin: 'pipe', stdout: 'pipe' });
  return {
    input: forwardTolerantly(z.stdin!),
    done: Promise.all([finish(z, cmd, args), pipeline(z.stdout!, forwardTolerantly(consumer))]),
  };
}
