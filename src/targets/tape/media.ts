/**
 * Where a tape's blocks go: the interfaces a medium offers, and the real one,
 * the character device. (The file standing in for a tape in the tests is
 * standin-media.ts.) Failures of the medium itself come as TapeIoError, so
 * they are never mistaken for a failure of the stream being written.
 */
import { constants as fsc } from 'node:fs';
import { open } from 'node:fs/promises';

/** Where dd writes one tape file (native-write.ts): the device itself, or the stand-in's file. */
export interface BlockSink {
  path: string;
  /** More of dd's conv= flags (the stand-in's fsync: a tape device has none). */
  conv: string[];
  /** dd closed the tape file: the tape is at the start of the next one. */
  written(): void;
}

export interface BlockWriter {
  /** Tape blocks, in order, each exactly the block size: one system call for them all. */
  write(blocks: Buffer[]): Promise<void>;
  /** Ends the tape file with a file mark. */
  close(): Promise<void>;
  /** Closes after a failure, ignoring further errors. */
  abandon(): Promise<void>;
}

export interface BlockReader {
  /** The next block of this tape file (at most `size` bytes), or undefined at its file mark. */
  read(): Promise<Buffer | undefined>;
  close(): Promise<void>;
}

/** Where the blocks go: the tape drive itself, or the file standing in for a tape. */
export interface TapeMedia {
  /** mt has just put the tape at the start of tape file n. */
  at(file: number): void;
  openWrite(size: number): Promise<BlockWriter>;
  openRead(size: number): Promise<BlockReader>;
  /** Where dd writes the tape file at the current position (native-write.ts: the dump's blocks). */
  sink(): Promise<BlockSink>;
}

/**
 * The character device: sequential reads and writes, one system call per
 * block (the records; the dump's blocks are dd's, see native-write.ts). Closing the non-rewinding device after writing writes the file mark
 * and leaves the tape at the start of the next tape file; so does reading up
 * to a file mark.
 */
export class TapeDeviceMedia implements TapeMedia {
  constructor(private readonly device: string) {}

  at(): void {}

  async sink(): Promise<BlockSink> {
    // st has no fsync: closing the device is what writes the file mark.
    return { path: this.device, conv: [], written: () => undefined };
  }

  async openWrite(size: number): Promise<BlockWriter> {
    const fh = await open(this.device, fsc.O_WRONLY);
    return {
      write: async (blocks) => {
        checkBlocks(blocks, size);
        // writev: the st driver has no vectored write, so the kernel hands it
        // each buffer as a write of its own, and each buffer is one tape block.
        const { bytesWritten } = await fh.writev(blocks);
        // A short write is the drive's early warning that the tape ends here.
        if (bytesWritten !== blocks.length * size) throw Object.assign(new Error('end of tape'), { code: 'ENOSPC', bytesWritten });
      },
      close: () => fh.close(),
      abandon: () => fh.close().catch(() => undefined),
    };
  }

  async openRead(size: number): Promise<BlockReader> {
    const fh = await open(this.device, fsc.O_RDONLY);
    return {
      read: async () => {
        const buffer = Buffer.allocUnsafe(size);
        const { bytesRead } = await fh.read(buffer, 0, size, null);
        return bytesRead ? buffer.subarray(0, bytesRead) : undefined;
      },
      close: () => fh.close(),
    };
  }
}

export function checkBlocks(blocks: Buffer[], size: number): void {
  const odd = blocks.find((b) => b.length !== size);
  if (odd) throw new Error(`internal: a tape block of ${odd.length} bytes, not ${size}`);
}

/** A failure of the tape itself (not of the stream being written to it). */
export class TapeIoError extends Error {
  readonly code: string | undefined;
  constructor(readonly failure: unknown) {
    super(failure instanceof Error ? failure.message : String(failure));
    this.code = (failure as NodeJS.ErrnoException | undefined)?.code;
  }
}

export function io<T>(p: Promise<T>): Promise<T> {
  return p.catch((e: unknown) => {
    throw new TapeIoError(e);
  });
}
