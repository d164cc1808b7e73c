/**
 * The tape target: a SCSI or USB tape drive, driven with mt-st's `mt` (always
 * the non-rewinding device, /dev/nst0). One backup per tape, as in the seed;
 * what goes on it is in records.ts.
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
 * No tape drive runs in the tests. When target.device is a regular file, a
 * STAND-IN medium takes the blocks (standin-media.ts), while status, rewind,
 * asf and eject still go to `mt` on PATH, which the tests replace with a
 * stand-in that records its calls (test/support/standins/tape.ts).
 */
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { UserError } from '../../errors.js';
import type { Command } from '../../system/run.js';
import { assertSameBackup, checkId, storedBackup } from '../kit/index.js';
import type { BackupMetadata, StoredBackup, Target } from '../target.js';
import type { TapeTargetConfig } from '../tape-config.js';
import { type DriveStatus, TapeDrive } from './drive.js';
import {
  deviceError,
  missingDevice,
  noTape,
  notATape,
  notOnTape,
  notReady,
  overwriteRefusal,
  unreadable,
  writeProtected,
} from './errors.js';
import { type TapeMedia, TapeDeviceMedia, TapeIoError } from './media.js';
import {
  FILE,
  isRecord,
  type LabelRecord,
  parseRecord,
  problem,
  RECORD_MAX,
  stamp,
  type TapeContents,
  type TapeRecord,
} from './records.js';
import { FileStandInMedia } from './standin-media.js';
import { writeBlocks, type Written } from './native-write.js';

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
    await this.writeTape(id, { source });
  }

  /** The dump straight from its programs onto the tape: no byte of it through this process (native-write.ts). */
  async writeFrom(id: string, producers: readonly Command[], options: { signal?: AbortSignal } = {}): Promise<Written> {
    return this.writeTape(id, { producers }, options.signal);
  }

  private async writeTape(
    id: string,
    from: { source: Readable } | { producers: readonly Command[] },
    signal?: AbortSignal,
  ): Promise<Written> {
    const source = 'source' in from ? from.source : undefined;
    checkId(id);
    let drive: TapeDrive;
    try {
      drive = await this.ready('write');
      this.assertMayOverwrite(await this.inspect(drive));
    } catch (e) {
      source?.destroy();
      throw e;
    }
    try {
      const label: LabelRecord = { ...stamp('label'), id, blockSize: this.config.block_size, written: new Date().toISOString() };
      // Each tape file ends with a file mark that leaves the tape at the start of the next one.
      await drive.seekFile(FILE.label);
      await this.writeRecord(drive, label);
      const written = await writeBlocks(await drive.sink(), this.config.block_size, from, signal);
      await this.writeRecord(drive, { ...stamp('end'), id, length: written.bytes });
      // No rewind: every operation puts the tape where it needs it, and the
      // verification that reads the dump back comes next.
      return { bytes: written.bytes, sha256: written.sha256 };
    } catch (e) {
      source?.destroy();
      await drive.rewind().catch(() => undefined);
      const at = e instanceof TapeIoError ? (e.failure as { bytesWritten?: number }).bytesWritten : undefined;
      throw deviceError(e, this.config.device, this.config.block_size, 'writing the dump', at ?? 0);
    }
  }

  async openPending(id: string): Promise<Readable> {
    checkId(id);
    const drive = await this.ready('read');
    const contents = await this.inspect(drive);
    if ((contents.kind === 'unfinished' || contents.kind === 'committed') && contents.label.id === id && contents.end) {
      return this.readDump(drive, contents.end.length, contents.label.blockSize);
    }
    throw notOnTape(this.config.device, id, contents, 'Run the backup again; the dump was not written to its end on this tape');
  }

  async commit(id: string, metadata: BackupMetadata): Promise<StoredBackup> {
    checkId(id);
    const { drive, status } = await this.readyWithStatus('read');
    const contents = await this.inspect(drive);
    if (contents.kind === 'committed' && contents.label.id === id) {
      assertSameBackup(id, contents.commit.metadata, metadata, this.config.device);
      return this.finish(drive, this.describe(contents.commit.metadata));
    }
    if (contents.kind !== 'unfinished' || contents.label.id !== id || !contents.end) {
      throw notOnTape(this.config.device, id, contents, 'Load the tape it was written to, or run the backup again');
    }
    if (contents.end.length !== metadata.size) {
      throw new UserError('verify', `the dump on the tape holds ${contents.end.length} bytes, but the backup recorded ${metadata.size}`, {
        where: this.config.device,
        hint: 'Run the backup again',
      });
    }
    if (status.writeProtected) throw writeProtected(this.config.device);
    try {
      await drive.seekFile(FILE.commit);
      await this.writeRecord(drive, { ...stamp('commit'), id, metadata });
    } catch (e) {
      await drive.rewind().catch(() => undefined);
      throw deviceError(e, this.config.device, this.config.block_size, 'committing the backup', 0);
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
    if (contents.kind === 'unreadable') throw unreadable(this.config.device, contents.reason, 'read');
    return contents.kind === 'committed' ? [this.describe(contents.commit.metadata)] : [];
  }

  async open(id: string): Promise<Readable> {
    checkId(id);
    const drive = await this.ready('read');
    const contents = await this.inspect(drive);
    if (contents.kind === 'committed' && contents.label.id === id) {
      return this.readDump(drive, contents.end.length, contents.label.blockSize);
    }
    throw notOnTape(
      this.config.device,
      id,
      contents,
      'Load the tape that holds it and run again; "syn3-backup list" shows what the loaded tape holds',
    );
  }

  async remove(id: string): Promise<void> {
    checkId(id);
    const { drive, status } = await this.readyWithStatus('read');
    const contents = await this.inspect(drive);
    if ((contents.kind === 'committed' || contents.kind === 'unfinished') && contents.label.id === id) {
      if (status.writeProtected) throw writeProtected(this.config.device);
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

  /** What the loaded tape holds, for the tape library (library.ts); the tape is rewound after. */
  async contents(): Promise<TapeContents> {
    const drive = await this.ready('read');
    const contents = await this.inspect(drive);
    await drive.rewind();
    return contents;
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
    const record = total > RECORD_MAX ? 'foreign' : parseRecord(Buffer.concat(chunks));
    if (typeof record === 'object' && !('unreadable' in record)) return record;
    // A read at the end of the data fails on most drives, but some (tgt's emulated
    // ones) answer it with a junk block: what is no record of ours, read where the
    // drive then says EOD, is the end of the data, not someone else's.
    if ((await drive.status()).endOfData) return 'absent';
    return record;
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

  /** The dump in tape file 1, cut at its true length; the tape is rewound when it has been read. */
  private async readDump(drive: TapeDrive, length: number, blockSize: number): Promise<Readable> {
    await drive.seekFile(FILE.dump);
    const reader = await drive.openRead(blockSize).catch((e: unknown) => {
      throw deviceError(e, this.config.device, this.config.block_size, 'reading the dump', 0);
    });
    const device = this.config.device;
    const failed = (e: unknown, at: number) => deviceError(e, device, this.config.block_size, 'reading the dump', at);
    async function* blocks(): AsyncGenerator<Buffer> {
      let left = length;
      try {
        while (left > 0) {
          let block: Buffer | undefined;
          try {
            block = await reader.read();
          } catch (e) {
            throw failed(e, length - left);
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
      throw deviceError(e, this.config.device, this.config.block_size, 'erasing the tape', 0);
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
    return storedBackup(metadata, `${this.config.device} (tape file ${FILE.dump})`);
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
    if (purpose === 'write' && status.writeProtected) throw writeProtected(this.config.device);
    this.ejected = undefined;
    return { drive, status };
  }

  private requireOnline(status: DriveStatus, purpose: 'read' | 'write'): void {
    if (status.online) return;
    if (status.doorOpen) throw noTape(this.config.device, purpose);
    throw notReady(this.config.device);
  }

  private assertMayOverwrite(contents: TapeContents): void {
    if (this.config.overwrite) return;
    const refusal = overwriteRefusal(this.config.device, contents);
    if (refusal) throw refusal;
  }
}
