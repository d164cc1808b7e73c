/**
 * The medium for a target.device that is a regular file: see the class below.
 */
import type { FileHandle } from 'node:fs/promises';
import { open, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type BlockReader, type BlockSink, type BlockWriter, checkBlocks, type TapeMedia } from './media.js';

/**
 * A STAND-IN for a tape, for tests and benchmarks (no drive runs there): tape
 * file 0 is the regular file target.device names, tape file n is "<device>.n".
 * Writing tape file n removes the later ones, as writing a tape ends its data
 * there, and a block that is not exactly the block size is refused, as a
 * fixed-block tape would.
 */
export class FileStandInMedia implements TapeMedia {
  private file = 0;

  constructor(private readonly device: string) {}

  at(file: number): void {
    this.file = file;
  }

  path(file: number): string {
    return file === 0 ? this.device : `${this.device}.${file}`;
  }

  async openWrite(size: number): Promise<BlockWriter> {
    const file = this.file;
    await this.removeAfter(file);
    const fh = await open(this.path(file), 'w', 0o600);
    return {
      write: async (blocks) => {
        checkBlocks(blocks, size);
        await writeAll(fh, blocks, size);
      },
      close: async () => {
        await fh.sync();
        await fh.close();
        this.file = file + 1;
      },
      abandon: () => fh.close().catch(() => undefined),
    };
  }

  /** dd writes the tape file to its own regular file, fsynced as openWrite's close does. */
  async sink(): Promise<BlockSink> {
    const file = this.file;
    await this.removeAfter(file);
    return { path: this.path(file), conv: ['fsync'], written: () => (this.file = file + 1) };
  }

  async openRead(size: number): Promise<BlockReader> {
    let fh: FileHandle | undefined;
    try {
      fh = await open(this.path(this.file), 'r');
    } catch (e) {
      // Past the last tape file: the end of the data reads as a file mark.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const file = this.file;
    let atMark = false;
    return {
      read: async () => {
        const buffer = Buffer.allocUnsafe(size);
        const bytesRead = fh && !atMark ? (await fh.read(buffer, 0, size, null)).bytesRead : 0;
        if (bytesRead) return buffer.subarray(0, bytesRead);
        // Reading the file mark leaves the tape at the start of the next tape file.
        if (fh && !atMark) this.file = file + 1;
        atMark = true;
        return undefined;
      },
      close: async () => {
        await fh?.close();
      },
    };
  }

  private async removeAfter(file: number): Promise<void> {
    const prefix = `${basename(this.device)}.`;
    for (const name of await readdir(dirname(this.device))) {
      if (!name.startsWith(prefix)) continue;
      const n = Number(name.slice(prefix.length));
      if (Number.isInteger(n) && n > file) await rm(join(dirname(this.device), name), { force: true });
    }
  }
}

/**
 * A regular file may take less than all of it; the rest goes again (a full
 * disk then says ENOSPC). A failure tells how much of it was written.
 */
async function writeAll(fh: FileHandle, blocks: Buffer[], size: number): Promise<void> {
  const total = blocks.length * size;
  let done = 0;
  try {
    done = (await fh.writev(blocks)).bytesWritten;
    while (done < total) {
      const rest = Buffer.concat(blocks).subarray(done);
      const { bytesWritten } = await fh.write(rest, 0, rest.length, null);
      if (bytesWritten === 0) throw Object.assign(new Error('no space left'), { code: 'ENOSPC' });
      done += bytesWritten;
    }
  } catch (e) {
    throw Object.assign(e as Error, { bytesWritten: done });
  }
}
