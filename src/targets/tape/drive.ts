/**
 * The tape drive: mt-st's `mt` for status and motion (rewind, asf, eject),
 * the medium for the blocks. Always the non-rewinding device: closing it
 * after a write writes the file mark and leaves the tape after it.
 */
import { run } from '../../system/run.js';
import { mtError } from './errors.js';
import { type BlockReader, type BlockSink, type BlockWriter, io, type TapeMedia } from './media.js';

const STATUS_TIMEOUT_MS = 2 * 60_000;
/** Rewinding or spacing over a whole LTO tape takes minutes. */
const MOTION_TIMEOUT_MS = 20 * 60_000;

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

export class TapeDrive {
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

  /** Where dd writes the tape file at the current position (the dump: native-write.ts). */
  sink(): Promise<BlockSink> {
    return io(this.media.sink());
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
