/**
 * A tape library's changer, driven with mtx (`mtx -f <changer> status|load|unload`)
 * through run.ts: execa, no shell.
 *
 * What the changer says is not trusted: `mtx status` is parsed line by line,
 * every line must be one mtx prints, numbers must be numbers, a slot appears
 * once, and a reply that does not pass is refused with what it said. Slots use
 * mtx's numbering (storage elements from 1, whatever the SCSI element
 * addresses are: tgt's library puts its slots at address 100 and up, and mtx
 * still shows them as 1, 2, …).
 */
import { UserError } from '../../errors.js';
import { run } from '../../system/run.js';

export interface ChangerSlot {
  slot: number;
  full: boolean;
  /** The barcode label, when the library reads them. */
  barcode?: string;
  importExport: boolean;
}

export interface ChangerDrive {
  drive: number;
  full: boolean;
  /** The slot the loaded tape came from (its home), when the changer knows it. */
  from?: number;
  barcode?: string;
}

export interface ChangerStatus {
  drives: ChangerDrive[];
  slots: ChangerSlot[];
}

const HEADER = /^Storage Changer (\S+?):(\d+) Drives?, (\d+) Slots? \( (\d+) Import\/Export \)$/;
const DRIVE = /^Data Transfer Element (\d+):(Empty|Full \((?:Storage Element (\d+)|Unknown Storage Element) Loaded\)(.*))$/;
const SLOT = /^Storage Element (\d+)( IMPORT\/EXPORT)?:(Empty|Full)(.*)$/;
/** What may follow a drive's or slot's state: ":VolumeTag = X" (drives), ":VolumeTag=X" (slots), an alternate tag. */
const TAGS = /^\s*(?::VolumeTag\s*=\s*(\S*?)\s*)?(?::AlternateVolumeTag\s*=\s*(\S*?)\s*)?$/;
/** Barcodes as libraries print them: letters, digits and a few marks, at most 32 characters (SCSI's volume tag). */
const BARCODE = /^[A-Za-z0-9._\-+/]{1,32}$/;

/** `mtx status`, checked; throws a plain Error saying which line does not pass. */
export function parseMtxStatus(text: string): ChangerStatus {
  const lines = text.split('\n').map((l) => l.trim());
  const drives: ChangerDrive[] = [];
  const slots: ChangerSlot[] = [];
  let header: { drives: number; slots: number; importExport: number } | undefined;
  for (const [n, line] of lines.entries()) {
    if (!line) continue;
    const at = `line ${n + 1} ("${line.length > 80 ? `${line.slice(0, 80)}…` : line}")`;
    let m = HEADER.exec(line);
    if (m) {
      if (header) throw new Error(`${at}: a second header`);
      // mtx counts the import/export slots among the slots; accept a count without them too.
      header = { drives: Number(m[2]), slots: Number(m[3]), importExport: Number(m[4]) };
      continue;
    }
    m = DRIVE.exec(line);
    if (m) {
      const drive = Number(m[1]);
      if (drives.some((d) => d.drive === drive)) throw new Error(`${at}: drive ${drive} twice`);
      if (m[2] === 'Empty') {
        drives.push({ drive, full: false });
        continue;
      }
      const tags = TAGS.exec(m[4] ?? '');
      if (!tags) throw new Error(`${at}: not a volume tag after the drive's state`);
      const barcode = checkedBarcode(tags[1], at);
      drives.push({ drive, full: true, ...(m[3] ? { from: Number(m[3]) } : {}), ...(barcode ? { barcode } : {}) });
      continue;
    }
    m = SLOT.exec(line);
    if (m) {
      const slot = Number(m[1]);
      if (slot < 1) throw new Error(`${at}: slot numbers start at 1`);
      if (slots.some((s) => s.slot === slot)) throw new Error(`${at}: slot ${slot} twice`);
      const tags = TAGS.exec(m[4] ?? '');
      if (!tags) throw new Error(`${at}: not a volume tag after the slot's state`);
      const full = m[3] === 'Full';
      const barcode = full ? checkedBarcode(tags[1], at) : undefined;
      slots.push({ slot, full, importExport: Boolean(m[2]), ...(barcode ? { barcode } : {}) });
      continue;
    }
    throw new Error(`${at} is not what mtx status prints`);
  }
  if (!header) throw new Error('no "Storage Changer …: N Drives, M Slots" header');
  if (drives.length !== header.drives) throw new Error(`the header says ${header.drives} drive(s), ${drives.length} are listed`);
  if (slots.length !== header.slots && slots.length !== header.slots + header.importExport)
    throw new Error(`the header says ${header.slots} slot(s), ${slots.length} are listed`);
  for (const d of drives) {
    if (d.from !== undefined && !slots.some((s) => s.slot === d.from))
      throw new Error(`drive ${d.drive}'s tape came from slot ${d.from}, which is not listed`);
    if (d.from !== undefined && slots.find((s) => s.slot === d.from)?.full) {
      throw new Error(`drive ${d.drive}'s tape came from slot ${d.from}, which is listed as full`);
    }
  }
  return { drives, slots };
}

function checkedBarcode(tag: string | undefined, at: string): string | undefined {
  if (tag === undefined || tag === '') return undefined;
  if (!BARCODE.test(tag)) throw new Error(`${at}: the volume tag ${JSON.stringify(tag)} is not a barcode`);
  return tag;
}

/** Loading or unloading moves a cartridge with a robot: allow minutes. */
const MOVE_TIMEOUT_MS = 10 * 60_000;
const STATUS_TIMEOUT_MS = 5 * 60_000;

export class Changer {
  constructor(
    readonly device: string,
    /** The drive (data transfer element) that is target.device. */
    readonly drive = 0,
  ) {}

  async status(): Promise<ChangerStatus> {
    const { stdout } = await this.mtx(['status'], STATUS_TIMEOUT_MS);
    try {
      return parseMtxStatus(stdout);
    } catch (e) {
      throw new UserError('target', `the changer's status cannot be read: ${(e as Error).message}`, {
        where: this.device,
        hint: 'Check that target.changer is the library\'s changer device (mtx -f <changer> inquiry says "Medium Changer"); "mtx -f <changer> status" shows what it reports',
      });
    }
  }

  async load(slot: number): Promise<void> {
    await this.mtx(['load', String(slot), String(this.drive)], MOVE_TIMEOUT_MS);
  }

  /** Puts the drive's tape back into a slot (its home when `slot` is not given). */
  async unload(slot?: number): Promise<void> {
    await this.mtx(['unload', ...(slot === undefined ? [] : [String(slot), String(this.drive)])], MOVE_TIMEOUT_MS);
  }

  private async mtx(args: string[], timeoutMs: number): Promise<{ stdout: string }> {
    try {
      return await run('mtx', ['-f', this.device, ...args], { timeoutMs });
    } catch (e) {
      throw changerError(e, this.device, args);
    }
  }
}

/** mtx's complaints in the administrator's words. */
function changerError(e: unknown, device: string, args: string[]): unknown {
  if (!(e instanceof UserError) || e.kind !== 'tool') return e;
  if (/was not found on PATH/.test(e.message)) {
    return new UserError('tool', e.message, { hint: 'Install it (apt-get install mtx): the tape library is driven with mtx', cause: e });
  }
  const said = e.message;
  if (/No such file or directory|No such device|cannot open SCSI device/i.test(said)) {
    return new UserError('target', "the tape library's changer device cannot be opened", {
      where: device,
      hint: 'Check target.changer (the changer device, e.g. /dev/sch0 or its /dev/sg node: lsscsi -g lists "mediumx"), that the library is connected and powered on, and that the ch or sg driver is loaded',
      cause: e,
    });
  }
  if (/Empty|source Element Address \d+ is Empty|is Empty/i.test(said)) {
    return new UserError('target', `the changer found no tape where it was to take one (mtx ${args.join(' ')})`, {
      where: device,
      hint: 'Put this server\'s tapes into the slots target.slots lists ("mtx -f <changer> status" shows them) and run again',
      cause: e,
    });
  }
  return new UserError('target', `the changer failed to move a tape (mtx ${args.join(' ')}): ${said}`, {
    where: device,
    hint: 'Check the library (its door, its display, "mtx -f <changer> status") and run again',
    cause: e,
  });
}
