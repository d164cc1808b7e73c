/**
 * The tape target: a SCSI or USB tape drive, driven with mt-st's `mt` (always
 * the non-rewinding device, /dev/nst0). One backup per tape, as in the seed.
 * Each piece is a tape file ended by a file mark:
 *
 *   file 0  label   {"kind":"label", id, blockSize, written}  JSON padded with NULs to whole blocks
 *   file 1  dump    xfsdump's stream in blocks of exactly block_size; the last one padded with zeros
 *   file 2  end     {"kind":"end", id, length}: the dump is all on the tape (its true length)
 *   file 3  commit  {"kind":"commit", id, metadata}: the verified backup, the only thing `list` shows
 *
 * A tape can only be written at its end: writing anywhere makes that the end
 * of the data. So `commit` appends file 3 instead of rewriting the label (which
 * would wipe the dump), and `remove` / `cleanPending` write an "erased" label
 * at file 0, which ends the tape's data there.
 *
 * The program's rule "never overwrite the last good backup before a new one is
 * verified" cannot hold with a single tape: the first block written destroys
 * the backup that was on it. So a tape that holds a committed backup (or data
 * that is not a syn3-backup backup, or that cannot be read) is refused unless
 * target.overwrite is true: the administrator rotates tapes, and the last good
 * backup stays on the shelf until a new one is verified. A blank or erased
 * tape, or one holding an unfinished write, is written without asking.
 *
 * No tape drive runs in the tests. When target.device is a regular file, it
 * stands in for a tape: tape file 0 is that file and tape file n is
 * "<device>.n" (writing file n removes the later ones, as a tape would), while
 * status, rewind, asf and eject still go to `mt` on PATH, which the tests
 * replace with a stand-in that records its calls (test/support/tape-standin.ts).
 */
import { constants as fsc, type Stats } from 'node:fs';
import { open, readdir, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { run } from '../system/run.js';
import { UserError } from '../errors.js';
import { formatBytes } from '../format.js';
import { METADATA_FORMAT, type BackupMetadata, type StoredBackup, type Target } from './target.js';
import { MiB, type TapeTargetConfig } from './tape-config.js';

const MAGIC = 'syn3-backup tape';
const TAPE_FORMAT = 1;
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Labels and records are small; anything bigger than this is not one of ours. */
const RECORD_MAX = MiB;
/** How much of the dump may wait in memory for the drive. */
const WRITE_AHEAD = 16 * MiB;
/** At most this many blocks in one write (IOV_MAX is 1024). */
const MAX_BATCH = 256;
const STATUS_TIMEOUT_MS = 2 * 60_000;
/** Rewinding or spacing over a whole LTO tape takes minutes. */
const MOTION_TIMEOUT_MS = 20 * 60_000;

const FILE = { label: 0, dump: 1, end: 2, commit: 3 } as const;

interface LabelRecord {
  magic: typeof MAGIC;
  format: typeof TAPE_FORMAT;
  kind: 'label';
  id: string;
  blockSize: number;
  written: string;
}
interface ErasedRecord {
  magic: typeof MAGIC;
  format: typeof TAPE_FORMAT;
  kind: 'erased';
  id: string;
  erased: string;
}
interface EndRecord {
  magic: typeof MAGIC;
  format: typeof TAPE_FORMAT;
  kind: 'end';
  id: string;
  length: number;
}
interface CommitRecord {
  magic: typeof MAGIC;
  format: typeof TAPE_FORMAT;
  kind: 'commit';
  id: string;
  metadata: BackupMetadata;
}
type TapeRecord = LabelRecord | ErasedRecord | EndRecord | CommitRecord;

/** What the loaded tape holds, as far as this program is concerned. */
export type TapeContents =
  | { kind: 'blank' }
  | { kind: 'foreign' }
  | { kind: 'unreadable'; reason: string }
  | { kind: 'erased'; label: ErasedRecord }
  | { kind: 'unfinished'; label: LabelRecord; end?: EndRecord }
  | { kind: 'committed'; label: LabelRecord; end: EndRecord; commit: CommitRecord };

export interface DriveStatus {
  online: boolean;
  writeProtected: boolean;
  doorOpen: boolean;
  endOfData: boolean;
}

/** mt-st's `status`: the words after "General status bits on (…):". */
export function parseMtStatus(text: string): DriveStatus {
  const at = text.search(/General status bits on/i);
  const words = new Set((at >= 0 ? text.slice(at).split('\n').slice(1).join(' ') : text).split(/\s+/).filter(Boolean));
  return { online: words.has('ONLINE'), writeProtected: words.has('WR_PROT'), doorOpen: words.has('DR_OPEN'), endOfData: words.has('EOD') };
}

// ---- the drive: mt for motion and status, the media for blocks ----

interface BlockWriter {
  /** Tape blocks, in order, each exactly the block size: one system call for them all. */
  write(blocks: Buffer[]): Promise<void>;
  /** Ends the tape file with a file mark. */
  close(): Promise<void>;
  /** Closes after a failure, ignoring further errors. */
  abandon(): Promise<void>;
}

interface BlockReader {
  /** The next block of this tape file (at most `size` bytes), or undefined at its file mark. */
  read(): Promise<Buffer | undefined>;
  close(): Promise<void>;
}

/** Where the blocks go: the tape drive itself, or the file standing in for a tape. */
interface TapeMedia {
  /** mt has just put the tape at the start of tape file n. */
  at(file: number): void;
  openWrite(size: number): Promise<BlockWriter>;
  openRead(size: number): Promise<BlockReader>;
}

/**
 * The character device: sequential reads and writes, one system call per
 * block. Closing the non-rewinding device after writing writes the file mark
 * and leaves the tape at the start of the next tape file; so does reading up
 * to a file mark.
 */
class TapeDeviceMedia implements TapeMedia {
  constructor(private readonly device: string) {}

  at(): void {}

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

/**
 * A STAND-IN for a tape, for tests and benchmarks (no drive runs there): tape
 * file 0 is the regular file target.device names, tape file n is "<device>.n".
 * Writing tape file n removes the later ones, as writing a tape ends its data
 * there, and a block that is not exactly the block size is refused, as a
 * fixed-block tape would.
 */
class FileStandInMedia implements TapeMedia {
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

function checkBlocks(blocks: Buffer[], size: number): void {
  const odd = blocks.find((b) => b.length !== size);
  if (odd) throw new Error(`internal: a tape block of ${odd.length} bytes, not ${size}`);
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

/** A failure of the tape itself (not of the stream being written to it). */
class TapeIoError extends Error {
  readonly code: string | undefined;
  constructor(readonly failure: unknown) {
    super(failure instanceof Error ? failure.message : String(failure));
    this.code = (failure as NodeJS.ErrnoException | undefined)?.code;
  }
}

function io<T>(p: Promise<T>): Promise<T> {
  return p.catch((e: unknown) => {
    throw new TapeIoError(e);
  });
}

class TapeDrive {
  constructor(
    readonly device: string,
    private readonly media: TapeMedia,
  ) {}

  async status(): Promise<DriveStatus> {
    const { stdout } = await this.mt(['status'], STATUS_TIMEOUT_MS);
    return parseMtStatus(stdout);
  }

  async rewind(): Promise<void> {
    await this.mt(['rewind']);
    this.media.at(0);
  }

  /** Puts the tape at the start of tape file n (mt-st's asf: rewind, then space over n file marks). */
  async seekFile(file: number): Promise<void> {
    await this.mt(file === 0 ? ['rewind'] : ['asf', String(file)]);
    this.media.at(file);
  }

  async eject(): Promise<void> {
    await this.mt(['eject']);
    this.media.at(0);
  }

  /** Writes at the current position, which ends the tape's data there. Failures come as TapeIoError. */
  async openWrite(size: number): Promise<BlockWriter> {
    const w = await io(this.media.openWrite(size));
    return { write: (blocks) => io(w.write(blocks)), close: () => io(w.close()), abandon: () => w.abandon() };
  }

  /** Reads the tape file at the current position. Failures come as TapeIoError. */
  async openRead(size: number): Promise<BlockReader> {
    const r = await io(this.media.openRead(size));
    return { read: () => io(r.read()), close: () => io(r.close()) };
  }

  private async mt(args: string[], timeoutMs = MOTION_TIMEOUT_MS): Promise<{ stdout: string }> {
    try {
      return await run('mt', ['-f', this.device, ...args], { timeoutMs });
    } catch (e) {
      throw mtError(e, this.device);
    }
  }
}

// ---- the target ----

export class TapeTarget implements Target {
  readonly description: string;
  private media: { kind: 'device' | 'file'; media: TapeMedia } | undefined;
  /** The backup on the tape this target ejected: list() still reports it while the drive is empty. */
  private ejected: StoredBackup | undefined;

  constructor(private readonly config: TapeTargetConfig) {
    this.description = `tape target ${config.device}`;
  }

  async check(): Promise<void> {
    const drive = await this.ready('write');
    this.assertMayOverwrite(await this.inspect(drive));
    await drive.rewind();
  }

  async write(id: string, source: Readable): Promise<void> {
    checkId(id);
    let drive: TapeDrive;
    try {
      drive = await this.ready('write');
      this.assertMayOverwrite(await this.inspect(drive));
    } catch (e) {
      source.destroy();
      throw e;
    }
    let written = 0;
    try {
      const label: LabelRecord = { ...stamp('label'), id, blockSize: this.config.block_size, written: new Date().toISOString() };
      // Each tape file ends with a file mark that leaves the tape at the start of the next one.
      await drive.seekFile(FILE.label);
      await this.writeRecord(drive, label);
      const { length } = await this.writeDump(drive, source, (n) => (written = n));
      await this.writeRecord(drive, { ...stamp('end'), id, length });
      // No rewind: every operation puts the tape where it needs it, and the
      // verification that reads the dump back comes next.
    } catch (e) {
      source.destroy();
      await drive.rewind().catch(() => undefined);
      throw this.deviceError(e, 'writing the dump', written);
    }
  }

  async openPending(id: string): Promise<Readable> {
    checkId(id);
    const drive = await this.ready('read');
    const contents = await this.inspect(drive);
    if ((contents.kind === 'unfinished' || contents.kind === 'committed') && contents.label.id === id && contents.end) {
      return this.readDump(drive, contents.end.length, contents.label.blockSize);
    }
    throw this.notOnTape(id, contents, 'Run the backup again; the dump was not written to its end on this tape');
  }

  async commit(id: string, metadata: BackupMetadata): Promise<StoredBackup> {
    checkId(id);
    const { drive, status } = await this.readyWithStatus('read');
    const contents = await this.inspect(drive);
    if (contents.kind === 'committed' && contents.label.id === id) {
      if (contents.commit.metadata.sha256 !== metadata.sha256) {
        throw new UserError('target', `a different backup with id ${id} is already committed on the loaded tape`, {
          where: this.config.device,
          hint: 'Run the backup again: it gets a new id',
        });
      }
      return this.finish(drive, this.describe(contents.commit.metadata));
    }
    if (contents.kind !== 'unfinished' || contents.label.id !== id || !contents.end) {
      throw this.notOnTape(id, contents, 'Load the tape it was written to, or run the backup again');
    }
    if (contents.end.length !== metadata.size) {
      throw new UserError('verify', `the dump on the tape holds ${contents.end.length} bytes, but the backup recorded ${metadata.size}`, {
        where: this.config.device,
        hint: 'Run the backup again',
      });
    }
    if (status.writeProtected) throw this.writeProtected();
    try {
      await drive.seekFile(FILE.commit);
      await this.writeRecord(drive, { ...stamp('commit'), id, metadata });
    } catch (e) {
      await drive.rewind().catch(() => undefined);
      throw this.deviceError(e, 'committing the backup', 0);
    }
    return this.finish(drive, this.describe(metadata));
  }

  async list(): Promise<StoredBackup[]> {
    const drive = await this.drive();
    const status = await drive.status();
    if (!status.online && this.ejected) return [this.ejected];
    this.requireOnline(status, 'read');
    this.ejected = undefined;
    const contents = await this.inspect(drive);
    await drive.rewind();
    if (contents.kind === 'unreadable') throw this.unreadable(contents.reason, 'read');
    return contents.kind === 'committed' ? [this.describe(contents.commit.metadata)] : [];
  }

  async open(id: string): Promise<Readable> {
    checkId(id);
    const drive = await this.ready('read');
    const contents = await this.inspect(drive);
    if (contents.kind === 'committed' && contents.label.id === id) {
      return this.readDump(drive, contents.end.length, contents.label.blockSize);
    }
    throw this.notOnTape(id, contents, 'Load the tape that holds it and run again; "syn3-backup list" shows what the loaded tape holds');
  }

  async remove(id: string): Promise<void> {
    checkId(id);
    const { drive, status } = await this.readyWithStatus('read');
    const contents = await this.inspect(drive);
    if ((contents.kind === 'committed' || contents.kind === 'unfinished') && contents.label.id === id) {
      if (status.writeProtected) throw this.writeProtected();
      await this.erase(drive, id);
    } else {
      await drive.rewind();
    }
    if (this.ejected?.id === id) this.ejected = undefined;
  }

  async cleanPending(keep?: string): Promise<string[]> {
    const drive = await this.drive();
    const status = await drive.status();
    // Nothing to clean on an empty drive, and nothing can be cleaned on a protected tape.
    if (!status.online || status.writeProtected) return [];
    const contents = await this.inspect(drive);
    if (contents.kind === 'unfinished' && contents.label.id !== keep) {
      await this.erase(drive, contents.label.id);
      return [contents.label.id];
    }
    await drive.rewind();
    return [];
  }

  /** What the loaded tape holds (the drive must be online). */
  private async inspect(drive: TapeDrive): Promise<TapeContents> {
    const label = await this.readRecord(drive, FILE.label);
    if (label === 'absent') return { kind: 'blank' };
    if (label === 'foreign') return { kind: 'foreign' };
    if ('unreadable' in label) return { kind: 'unreadable', reason: label.unreadable };
    if (label.kind === 'erased') return { kind: 'erased', label };
    if (label.kind !== 'label') return { kind: 'foreign' };
    const end = await this.readRecord(drive, FILE.end);
    if (end === 'absent') return { kind: 'unfinished', label };
    if (!isRecord(end, 'end', label.id)) return { kind: 'unreadable', reason: problem(end, FILE.end, label.id) };
    // The end record was read up to its file mark: the tape is at tape file 3 already.
    const commit = await this.readRecord(drive, FILE.commit, true);
    if (commit === 'absent') return { kind: 'unfinished', label, end };
    if (!isRecord(commit, 'commit', label.id)) return { kind: 'unreadable', reason: problem(commit, FILE.commit, label.id) };
    return { kind: 'committed', label, end, commit };
  }

  // ---- the tape's pieces ----

  /** The record in tape file `file`, or in the tape file the tape is at (`here`, the file after the one just read). */
  private async readRecord(
    drive: TapeDrive,
    file: number,
    here = false,
  ): Promise<TapeRecord | 'absent' | 'foreign' | { unreadable: string }> {
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      if (!here) await drive.seekFile(file);
      const reader = await drive.openRead(Math.max(this.config.block_size, RECORD_MAX));
      try {
        for (let block = await reader.read(); block && total <= RECORD_MAX; block = await reader.read()) {
          chunks.push(block);
          total += block.length;
        }
      } finally {
        await reader.close().catch(() => undefined);
      }
    } catch (e) {
      // Spacing or reading past the end of the data fails (a blank tape may, too);
      // the drive then says it is at EOD.
      const status = await drive.status();
      this.requireOnline(status, 'read');
      if (status.endOfData) return 'absent';
      const code = e instanceof TapeIoError && e.code ? ` (${e.code})` : '';
      return { unreadable: `tape file ${file}: ${e instanceof Error ? e.message : String(e)}${code}` };
    }
    if (total === 0) return 'absent';
    if (total > RECORD_MAX) return 'foreign';
    return parseRecord(Buffer.concat(chunks));
  }

  private async writeRecord(drive: TapeDrive, record: TapeRecord): Promise<void> {
    const size = this.config.block_size;
    const json = Buffer.from(`${JSON.stringify(record)}\n`);
    const padded = Buffer.alloc(Math.ceil(json.length / size) * size);
    json.copy(padded);
    const writer = await drive.openWrite(size);
    try {
      const blocks: Buffer[] = [];
      for (let at = 0; at < padded.length; at += size) blocks.push(padded.subarray(at, at + size));
      await writer.write(blocks);
      await writer.close();
    } catch (e) {
      await writer.abandon();
      throw e;
    }
  }

  /**
   * The dump in blocks of exactly block_size, the last one padded with zeros.
   * The blocks go to the drive in order, one write at a time, while the
   * stream fills more buffers behind them (up to WRITE_AHEAD): each write
   * takes all the blocks filled meanwhile, so the drive keeps streaming when
   * the dump stalls for a moment, and the dump when the drive does.
   */
  private async writeDump(drive: TapeDrive, source: Readable, progress: (bytes: number) => void): Promise<{ length: number }> {
    const size = this.config.block_size;
    const depth = Math.max(2, Math.ceil(WRITE_AHEAD / size));
    const writer = await drive.openWrite(size);
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

  /** The dump in tape file 1, cut at its true length; the tape is rewound when it has been read. */
  private async readDump(drive: TapeDrive, length: number, blockSize: number): Promise<Readable> {
    await drive.seekFile(FILE.dump);
    const reader = await drive.openRead(blockSize).catch((e: unknown) => {
      throw this.deviceError(e, 'reading the dump', 0);
    });
    const device = this.config.device;
    const deviceError = (e: unknown, at: number) => this.deviceError(e, 'reading the dump', at);
    async function* blocks(): AsyncGenerator<Buffer> {
      let left = length;
      try {
        while (left > 0) {
          let block: Buffer | undefined;
          try {
            block = await reader.read();
          } catch (e) {
            throw deviceError(e, length - left);
          }
          if (!block) {
            throw new UserError('target', `the dump on the tape ends after ${length - left} of its ${length} bytes`, {
              where: device,
              hint: 'The tape or the drive lost data: clean the drive and try again, or use a backup on another tape',
            });
          }
          const part = block.length > left ? block.subarray(0, left) : block;
          left -= part.length;
          yield part;
        }
      } finally {
        await reader.close().catch(() => undefined);
        await drive.rewind().catch(() => undefined);
      }
    }
    return Readable.from(blocks(), { objectMode: false });
  }

  private async erase(drive: TapeDrive, id: string): Promise<void> {
    try {
      await drive.seekFile(FILE.label);
      await this.writeRecord(drive, { ...stamp('erased'), id, erased: new Date().toISOString() });
      await drive.rewind();
    } catch (e) {
      await drive.rewind().catch(() => undefined);
      throw this.deviceError(e, 'erasing the tape', 0);
    }
  }

  /** After a commit: rewind, or unload the tape when target.eject is on. */
  private async finish(drive: TapeDrive, stored: StoredBackup): Promise<StoredBackup> {
    if (this.config.eject) {
      await drive.eject();
      this.ejected = stored;
    } else {
      await drive.rewind();
    }
    return stored;
  }

  private describe(metadata: BackupMetadata): StoredBackup {
    return {
      id: metadata.id,
      created: metadata.created,
      size: metadata.size,
      location: `${this.config.device} (tape file ${FILE.dump})`,
      metadata,
    };
  }

  // ---- the drive's state ----

  private async drive(): Promise<TapeDrive> {
    const device = this.config.device;
    let stats: Stats;
    try {
      stats = await stat(device);
    } catch {
      throw missingDevice(device);
    }
    const kind = stats.isCharacterDevice() ? 'device' : stats.isFile() ? 'file' : undefined;
    if (!kind) throw notATape(device);
    if (this.media?.kind !== kind) {
      this.media = { kind, media: kind === 'device' ? new TapeDeviceMedia(device) : new FileStandInMedia(device) };
    }
    return new TapeDrive(device, this.media.media);
  }

  /** The drive, with a tape loaded (and writable, for 'write'). */
  private async ready(purpose: 'read' | 'write'): Promise<TapeDrive> {
    return (await this.readyWithStatus(purpose)).drive;
  }

  private async readyWithStatus(purpose: 'read' | 'write'): Promise<{ drive: TapeDrive; status: DriveStatus }> {
    const drive = await this.drive();
    const status = await drive.status();
    this.requireOnline(status, purpose);
    if (purpose === 'write' && status.writeProtected) throw this.writeProtected();
    this.ejected = undefined;
    return { drive, status };
  }

  private requireOnline(status: DriveStatus, purpose: 'read' | 'write'): void {
    if (status.online) return;
    if (status.doorOpen) throw this.noTape(purpose);
    throw new UserError('target', 'the tape drive is not ready (the tape is still loading, or the drive is offline)', {
      where: this.config.device,
      hint: `Wait until the drive has loaded the tape ("mt -f ${this.config.device} status" shows ONLINE) and run again`,
    });
  }

  private assertMayOverwrite(contents: TapeContents): void {
    if (this.config.overwrite) return;
    const device = this.config.device;
    const erase = `erase it first (mt -f ${device} rewind; mt -f ${device} weof)`;
    if (contents.kind === 'committed') {
      const m = contents.commit.metadata;
      throw new UserError(
        'target',
        `the loaded tape holds backup ${m.id} of ${m.host} (made ${m.created}), and target.overwrite is false: writing would destroy it before a new backup is verified`,
        {
          where: device,
          hint: `Load another tape (rotate tapes, so the last good backup stays on the shelf); to reuse this tape, ${erase} or set target.overwrite: true (then a failed run leaves no good backup on it)`,
        },
      );
    }
    if (contents.kind === 'foreign') {
      throw new UserError('target', 'the loaded tape holds data that syn3-backup did not write, and target.overwrite is false', {
        where: device,
        hint: `Load another tape; if its data is not needed, ${erase} or set target.overwrite: true`,
      });
    }
    if (contents.kind === 'unreadable') throw this.unreadable(contents.reason, 'write');
  }

  // ---- errors ----

  private noTape(purpose: 'read' | 'write'): UserError {
    return new UserError('target', 'no tape is loaded in the tape drive', {
      where: this.config.device,
      hint:
        purpose === 'write'
          ? 'Load a tape (a blank one, or one whose backup may be overwritten) and run again; nothing was written'
          : 'Load the tape that holds the backup and run again',
    });
  }

  private writeProtected(): UserError {
    return new UserError('target', 'the loaded tape is write-protected', {
      where: this.config.device,
      hint: 'Move the write-protect switch on the cartridge to "write", or load another tape, and run again; nothing was written',
    });
  }

  private unreadable(reason: string, purpose: 'read' | 'write'): UserError {
    return new UserError('target', `what is on the loaded tape cannot be read (${reason})`, {
      where: this.config.device,
      hint:
        purpose === 'write'
          ? 'Clean the drive and run again, or load another tape; set target.overwrite: true to write over this one anyway'
          : 'Clean the drive and run again, or load another tape',
    });
  }

  private notOnTape(id: string, contents: TapeContents, hint: string): UserError {
    const holds =
      contents.kind === 'committed'
        ? `it holds backup ${contents.label.id}`
        : contents.kind === 'unfinished'
          ? `it holds an unfinished write of ${contents.label.id}`
          : contents.kind === 'erased'
            ? 'it was erased'
            : contents.kind === 'blank'
              ? 'it is blank'
              : contents.kind === 'foreign'
                ? 'it holds data syn3-backup did not write'
                : `it cannot be read: ${contents.reason}`;
    return new UserError('target', `backup ${id} is not on the loaded tape (${holds})`, { where: this.config.device, hint });
  }

  /** A failure of the tape drive as the administrator's error; anything else (the dump stream's own failure) as it is. */
  private deviceError(e: unknown, doing: string, written: number): unknown {
    if (!(e instanceof TapeIoError)) return e;
    const device = this.config.device;
    const cause = e.failure;
    switch (e.code) {
      case 'ENOSPC':
        return new UserError(
          'target',
          `the tape is full: the dump did not fit on it (${formatBytes(written)} written); what is on the tape is not a backup`,
          {
            where: device,
            hint: 'Use a tape with more capacity (a dump must fit on one tape); the backups on your other tapes are untouched, and the next run may reuse this tape',
            cause,
          },
        );
      case 'EROFS':
      case 'EACCES':
        return this.writeProtected();
      case 'ENOMEDIUM':
        return this.noTape('write');
      case 'EBUSY':
        return busy(device);
      case 'ENXIO':
      case 'ENODEV':
      case 'ENOENT':
        return new UserError('target', `the tape drive went away while ${doing}`, {
          where: device,
          hint: 'Check the drive\'s cable and power ("dmesg" shows what the kernel saw) and run again',
          cause,
        });
      case 'ENOMEM':
      case 'EINVAL':
        return new UserError('target', `the tape drive refused a ${formatBytes(this.config.block_size)} block while ${doing} (${e.code})`, {
          where: device,
          hint: `Lower target.block_size, or put the drive in variable-block mode (mt -f ${device} setblk 0), and run again`,
          cause,
        });
      default:
        return new UserError('target', `the tape drive failed while ${doing}: ${e.message}`, {
          where: device,
          hint: 'Clean the drive, try another tape, and look at "dmesg" for the drive\'s sense data; then run again',
          cause,
        });
    }
  }
}

function stamp<K extends TapeRecord['kind']>(kind: K): { magic: typeof MAGIC; format: typeof TAPE_FORMAT; kind: K } {
  return { magic: MAGIC, format: TAPE_FORMAT, kind };
}

function parseRecord(bytes: Buffer): TapeRecord | 'foreign' {
  const end = bytes.indexOf(0);
  try {
    const r = JSON.parse(bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8')) as Partial<TapeRecord> | null;
    if (!r || r.magic !== MAGIC || r.format !== TAPE_FORMAT || typeof r.id !== 'string') return 'foreign';
    if (r.kind === 'label' && typeof r.blockSize === 'number' && r.blockSize > 0) return r as LabelRecord;
    if (r.kind === 'end' && typeof r.length === 'number' && r.length >= 0) return r as EndRecord;
    if (r.kind === 'commit' && r.metadata?.format === METADATA_FORMAT) return r as CommitRecord;
    if (r.kind === 'erased') return r as ErasedRecord;
    return 'foreign';
  } catch {
    return 'foreign';
  }
}

type ReadOutcome = TapeRecord | 'foreign' | { unreadable: string };

function isRecord<K extends 'end' | 'commit'>(r: ReadOutcome, kind: K, id: string): r is Extract<TapeRecord, { kind: K }> {
  return typeof r === 'object' && !('unreadable' in r) && r.kind === kind && r.id === id;
}

function problem(r: ReadOutcome, file: number, id: string): string {
  if (typeof r === 'object' && 'unreadable' in r) return r.unreadable;
  return `tape file ${file} is not the ${file === FILE.end ? 'end' : 'commit'} record of backup ${id}`;
}

function checkId(id: string): void {
  if (!ID_PATTERN.test(id)) throw new UserError('usage', `"${id}" is not a backup id`, { hint: 'Use an id that "syn3-backup list" shows' });
}

function missingDevice(device: string): UserError {
  return new UserError('target', 'the tape device does not exist', {
    where: device,
    hint: 'Check target.device (the non-rewinding device, e.g. /dev/nst0: ls -l /dev/nst*), that the drive is connected and powered on, and that the st driver is loaded (modprobe st)',
  });
}

function notATape(device: string): UserError {
  return new UserError('target', 'target.device is not a tape device', {
    where: device,
    hint: 'Point target.device at the non-rewinding tape device, e.g. /dev/nst0',
  });
}

function busy(device: string): UserError {
  return new UserError('target', 'the tape drive is in use by another program', {
    where: device,
    hint: 'Wait until the other program (another backup, tar, an mt command) has finished and run again',
  });
}

/** mt's complaints (perror on the device, as mt-st prints them) as the administrator's errors. */
function mtError(e: unknown, device: string): unknown {
  if (!(e instanceof UserError) || e.kind !== 'tool' || /was not found on PATH/.test(e.message)) return e;
  const said = e.message;
  if (/No medium found|offline \(not powered on, no tape/i.test(said)) {
    return new UserError('target', 'no tape is loaded in the tape drive', {
      where: device,
      hint: 'Load a tape and run again',
      cause: e,
    });
  }
  if (/No such file or directory|No such device/i.test(said)) return missingDevice(device);
  if (/Device or resource busy/i.test(said)) return busy(device);
  if (/Inappropriate ioctl/i.test(said)) return notATape(device);
  if (/Read-only file system|write-protected/i.test(said)) {
    return new UserError('target', 'the loaded tape is write-protected', {
      where: device,
      hint: 'Move the write-protect switch on the cartridge to "write", or load another tape, and run again',
      cause: e,
    });
  }
  return e;
}
