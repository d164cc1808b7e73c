/**
 * The write pump: a dump stream into a tape file, in blocks of exactly the
 * block size (the last one padded with zeros), closed by a file mark.
 */
import type { Readable } from 'node:stream';
import { MiB } from '../tape-config.js';
import { type BlockWriter, TapeIoError } from './media.js';

/** How much of the dump may wait in memory for the drive. */
const WRITE_AHEAD = 16 * MiB;
/** At most this many blocks in one write (IOV_MAX is 1024). */
const MAX_BATCH = 256;

/**
 * The dump in blocks of exactly block_size, the last one padded with zeros.
 * The blocks go to the drive in order, one write at a time, while the
 * stream fills more buffers behind them (up to WRITE_AHEAD): each write
 * takes all the blocks filled meanwhile, so the drive keeps streaming when
 * the dump stalls for a moment, and the dump when the drive does.
 */
export async function writeDump(
  writer: BlockWriter,
  size: number,
  source: Readable,
  progress: (bytes: number) => void,
): Promise<{ length: number }> {
  const depth = Math.max(2, Math.ceil(WRITE_AHEAD / size));
  const free: Buffer[] = [];
  let allocated = 0;
  const full: Buffer[] = [];
  let writing: Promise<void> | undefined;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  let length = 0;
  let written = 0;
  const changed = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const waitForChange = (): Promise<void> => new Promise<void>((resolve) => (wake = resolve));
  const pump = (): void => {
    if (writing || failure || full.length === 0) return;
    const batch = full.splice(0, MAX_BATCH);
    writing = writer.write(batch).then(
      () => {
        written += batch.length * size;
        progress(Math.min(written, length));
        free.push(...batch);
        writing = undefined;
        pump();
        changed();
      },
      (error: unknown) => {
        // How much of the failed write reached the tape, where the media can tell.
        const partial = error instanceof TapeIoError ? (error.failure as { bytesWritten?: unknown }).bytesWritten : undefined;
        if (typeof partial === 'number') progress(Math.min(written + partial, length));
        failure = { error };
        writing = undefined;
        changed();
      },
    );
  };
  const nextBuffer = async (): Promise<Buffer> => {
    for (;;) {
      if (failure) throw failure.error;
      const b = free.pop();
      if (b) return b;
      if (allocated < depth) {
        allocated += 1;
        return Buffer.allocUnsafe(size);
      }
      await waitForChange();
    }
  };
  try {
    let block = await nextBuffer();
    let fill = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      let offset = 0;
      while (offset < chunk.length) {
        const n = Math.min(size - fill, chunk.length - offset);
        chunk.copy(block, fill, offset, offset + n);
        fill += n;
        offset += n;
        length += n;
        if (fill === size) {
          full.push(block);
          pump();
          block = await nextBuffer();
          fill = 0;
        }
      }
    }
    if (fill > 0) {
      block.fill(0, fill);
      full.push(block);
      pump();
    }
    while ((full.length > 0 || writing) && !failure) await waitForChange();
    if (failure) throw failure.error;
    await writer.close();
  } catch (e) {
    await writing;
    await writer.abandon();
    throw e;
  }
  return { length };
}
