/**
 * The tape target with a tape library (autoloader): target.changer names the
 * changer (mtx, changer.ts), target.slots the slots holding this server's
 * tapes. One backup per tape still (target.ts, records.ts); the library only
 * chooses and loads the tape, and a TapeTarget does the rest on the loaded one.
 *
 * - Before a backup (check, or write when check did not run in this process)
 *   the tape chosen by the rotation (rotation.ts) is loaded: the next one that
 *   holds no backup inside retention, or the oldest; never the only tape
 *   holding this host's newest good backup. The chosen tape's label is read
 *   after loading, and when it holds something else than the catalogue said,
 *   the rotation is asked again with what it holds.
 * - list: what each slot's tape holds comes from the catalogue in paths.state
 *   (catalogue.ts); a slot the catalogue does not know, or whose barcode
 *   changed, is loaded and its labels read, and the catalogue is written back.
 *   So a fresh installation lists (and restores) by reading the tapes.
 * - open / remove: load the tape holding that backup.
 * - After every load the tape is rewound: the position is unknown after a
 *   changer load (tgt says so, and a real drive may still be threading).
 *
 * retention.keep counts backups, one per tape: up to the number of slots. With
 * keep below it a tape is always free, so a backup never writes over one
 * inside retention; with keep equal to it, the next backup writes over the
 * oldest, and the newest stays on its tape until the new one is verified.
 * target.overwrite lets the rotation take a tape holding something else than
 * this host's backups; target.eject puts the tape back into its slot after
 * the commit.
 */
import { statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../../errors.js';
import { type Command, run } from '../../system/run.js';
import { checkId, oldestFirst, storedBackup } from '../kit/index.js';
import type { BackupMetadata, StoredBackup, Target } from '../target.js';
import type { TapeTargetConfig } from '../tape-config.js';
import { type Catalogue, cataloguePath, readCatalogue, writeCatalogue } from './catalogue.js';
import { Changer, type ChangerStatus } from './changer.js';
import { FILE, type TapeContents } from './records.js';
import { chooseTape, protectedSlot, type SlotHolds } from './rotation.js';
import { TapeTarget } from './target.js';

export interface LibraryOptions {
  /** paths.state: where the catalogue lives. Without it the catalogue is kept in memory only. */
  stateDir?: string;
  /** This server's host name: the rotation's "this host's backups". */
  host: string;
  /** How long a drive may take to be ready after a load. */
  readyTimeoutMs?: number;
}

type LibraryConfig = TapeTargetConfig & { changer: string; slots: number[] };

export class TapeLibraryTarget implements Target {
  readonly description: string;
  private readonly tape: TapeTarget;
  private readonly changer: Changer;
  private readonly file: string | undefined;
  private catalogue: Catalogue | undefined;
  /** The slot this process loaded for the backup it is writing. */
  private writing: { slot: number; id?: string } | undefined;

  constructor(
    private readonly config: LibraryConfig,
    private readonly options: LibraryOptions,
  ) {
    this.description = `tape library ${config.changer} (drive ${config.device}, slots ${config.slots.join(', ')})`;
    // The library decides which tape may be written (and guards the newest backup's); the tape target writes it.
    this.tape = new TapeTarget({ ...config, overwrite: true, eject: false });
    this.changer = new Changer(config.changer);
    this.file = options.stateDir ? cataloguePath(options.stateDir) : undefined;
  }

  async check(): Promise<void> {
    await this.loadForWriting();
    await this.tape.check();
  }

  async write(id: string, source: Readable): Promise<void> {
    checkId(id);
    try {
      await this.startWriting(id);
    } catch (e) {
      source.destroy();
      throw e;
    }
    await this.tape.write(id, source);
  }

  /** The dump straight from its programs onto the chosen tape, as TapeTarget.writeFrom: no byte of it through this process. */
  async writeFrom(
    id: string,
    producers: readonly Command[],
    options: { signal?: AbortSignal } = {},
  ): Promise<{ bytes: number; sha256: string }> {
    checkId(id);
    await this.startWriting(id);
    return this.tape.writeFrom(id, producers, options);
  }

  /** The tape check() loaded (or the rotation's, when check did not run in this process), now holding an unfinished write. */
  private async startWriting(id: string): Promise<void> {
    const slot = this.writing && (await this.loadedSlot()) === this.writing.slot ? this.writing.slot : await this.loadForWriting();
    this.writing = { slot, id };
    // Whatever the tape held is gone from the first block: the catalogue says so first.
    this.record(slot, { kind: 'unfinished', id });
  }

  async openPending(id: string): Promise<Readable> {
    checkId(id);
    await this.loadPending(id);
    return this.tape.openPending(id);
  }

  async commit(id: string, metadata: BackupMetadata): Promise<StoredBackup> {
    checkId(id);
    const slot = await this.loadPending(id);
    const stored = await this.tape.commit(id, metadata);
    const catalogue = this.read();
    catalogue.lastWritten = slot;
    this.record(slot, { kind: 'committed', id, host: metadata.host, created: metadata.created }, stored.metadata);
    this.writing = undefined;
    if (this.config.eject) await this.changer.unload();
    return this.describe(slot, stored.metadata);
  }

  async list(): Promise<StoredBackup[]> {
    const holds = await this.survey();
    const catalogue = this.read();
    const listed: StoredBackup[] = [];
    for (const slot of this.config.slots) {
      const entry = catalogue.slots.get(slot);
      if (holds.get(slot)?.kind === 'committed' && entry?.metadata) listed.push(this.describe(slot, entry.metadata));
    }
    return oldestFirst(listed);
  }

  async open(id: string): Promise<Readable> {
    checkId(id);
    const slot = await this.slotHolding(id, 'committed');
    if (slot === undefined) {
      throw new UserError('target', `no tape in the library's slots ${this.config.slots.join(', ')} holds backup ${id}`, {
        where: this.config.changer,
        hint: 'Put the tape that holds it into one of target.slots and run again; "syn3-backup list" shows what the tapes hold',
      });
    }
    await this.load(slot);
    return this.tape.open(id);
  }

  async remove(id: string): Promise<void> {
    checkId(id);
    const slot = await this.slotHolding(id, 'committed', 'unfinished');
    if (slot === undefined) return;
    await this.load(slot);
    await this.tape.remove(id);
    await this.readLoaded(slot);
  }

  async cleanPending(keep?: string): Promise<string[]> {
    // Only the tape in the drive: an unfinished write on a tape in its slot is free for the rotation anyway.
    const slot = await this.loadedSlot();
    if (slot === undefined) return [];
    const removed = await this.tape.cleanPending(keep);
    if (removed.length) await this.readLoaded(slot);
    return removed;
  }

  // ---- choosing and loading tapes ----

  /** Loads the tape the rotation chooses, reading its label to be sure; returns its slot. */
  private async loadForWriting(): Promise<number> {
    const holds = await this.survey();
    for (let attempt = 0; attempt <= this.config.slots.length; attempt++) {
      const choice = chooseTape({
        slots: this.config.slots,
        holds,
        host: this.options.host,
        keep: this.config.retention.keep,
        overwrite: this.config.overwrite,
        ...(this.read().lastWritten === undefined ? {} : { lastWritten: this.read().lastWritten! }),
      });
      if ('refused' in choice) {
        throw new UserError('target', choice.refused, {
          where: this.config.changer,
          hint: 'Put a blank tape into one of target.slots, or add a slot to target.slots; the tape holding the newest backup is never written over',
        });
      }
      const before = holds.get(choice.slot);
      await this.load(choice.slot);
      const now = await this.readLoaded(choice.slot);
      holds.set(choice.slot, now);
      // What the tape holds is what the catalogue said: the choice stands. Else choose again with the truth.
      if (
        JSON.stringify(before) === JSON.stringify(now) &&
        protectedSlot({ slots: this.config.slots, holds, host: this.options.host }) !== choice.slot
      ) {
        this.writing = { slot: choice.slot };
        return choice.slot;
      }
    }
    throw new UserError('target', 'the tapes in the library hold something else each time they are read', {
      where: this.config.changer,
      hint: 'Check the library ("mtx -f <changer> status") and the tapes in target.slots, and run again',
    });
  }

  /** The slot of the tape holding the pending write of `id`, loaded. */
  private async loadPending(id: string): Promise<number> {
    if (this.writing?.id === id) {
      await this.load(this.writing.slot);
      return this.writing.slot;
    }
    const slot = await this.slotHolding(id, 'unfinished', 'committed');
    if (slot === undefined) {
      throw new UserError('target', `no tape in the library holds the write of backup ${id}`, {
        where: this.config.changer,
        hint: 'Run the backup again',
      });
    }
    await this.load(slot);
    return slot;
  }

  /** The slot whose tape holds `id` as one of `kinds`: by the catalogue, else by reading every tape's labels. */
  private async slotHolding(id: string, ...kinds: SlotHolds['kind'][]): Promise<number | undefined> {
    const find = (holds: Map<number, SlotHolds>) =>
      this.config.slots.find((slot) => {
        const h = holds.get(slot);
        return h && kinds.includes(h.kind) && 'id' in h && h.id === id;
      });
    const found = find(await this.survey());
    if (found !== undefined) return found;
    // The catalogue may be stale (tapes moved in a library without barcodes): read them all once.
    return find(await this.survey(true));
  }

  /** What each configured slot's tape holds: the catalogue's entry while its barcode matches, else read from the tape. */
  private async survey(readAll = false): Promise<Map<number, SlotHolds>> {
    const status = await this.status();
    const catalogue = this.read();
    const holds = new Map<number, SlotHolds>();
    // The tape in the drive first: reading it costs no move.
    const inDrive = status.drives.find((d) => d.drive === this.changer.drive)?.from;
    const order = [...this.config.slots].sort((a, b) => Number(b === inDrive) - Number(a === inDrive));
    for (const slot of order) {
      const present = this.present(status, slot);
      if (!present.full) {
        holds.set(slot, { kind: 'empty' });
        continue;
      }
      const entry = catalogue.slots.get(slot);
      if (!readAll && entry && entry.holds.kind !== 'empty' && entry.barcode === present.barcode) {
        holds.set(slot, entry.holds);
        continue;
      }
      await this.load(slot);
      holds.set(slot, await this.readLoaded(slot, present.barcode));
    }
    return holds;
  }

  /** Reads the loaded tape's labels into the catalogue; returns what it holds. */
  private async readLoaded(slot: number, barcode?: string): Promise<SlotHolds> {
    const contents = await this.tape.contents();
    const { holds, metadata } = summarize(contents);
    this.record(slot, holds, metadata, barcode);
    return holds;
  }

  private record(slot: number, holds: SlotHolds, metadata?: BackupMetadata, barcode?: string): void {
    const catalogue = this.read();
    const old = catalogue.slots.get(slot);
    const tag = barcode ?? old?.barcode;
    catalogue.slots.set(slot, {
      holds,
      seen: new Date().toISOString(),
      ...(tag === undefined ? {} : { barcode: tag }),
      ...(metadata ? { metadata } : {}),
    });
    writeCatalogue(this.file, catalogue);
  }

  private read(): Catalogue {
    this.catalogue ??= readCatalogue(this.file, this.config.changer);
    return this.catalogue;
  }

  private async status(): Promise<ChangerStatus> {
    try {
      statSync(this.config.changer);
    } catch {
      throw new UserError('target', "the tape library's changer device does not exist", {
        where: this.config.changer,
        hint: 'Check target.changer (e.g. /dev/sch0: lsscsi -g lists the library as "mediumx"), that the library is connected and powered on, and that the ch driver is loaded (modprobe ch)',
      });
    }
    const status = await this.changer.status();
    if (!status.drives.some((d) => d.drive === this.changer.drive)) {
      throw new UserError('target', `the changer reports no drive ${this.changer.drive}`, {
        where: this.config.changer,
        hint: 'target.device must be the library\'s first drive (mtx\'s "Data Transfer Element 0")',
      });
    }
    const missing = this.config.slots.filter((slot) => !status.slots.some((s) => s.slot === slot && !s.importExport));
    if (missing.length) {
      const has = status.slots.filter((s) => !s.importExport).map((s) => s.slot);
      throw new UserError(
        'target',
        `target.slots names slot(s) ${missing.join(', ')}, which the changer does not have (it has ${describeSlots(has)})`,
        {
          where: this.config.changer,
          hint: 'List in target.slots the storage slots "mtx -f <changer> status" shows for this server\'s tapes',
        },
      );
    }
    return status;
  }

  /** Whether a slot's tape is in the library (in its slot or in the drive), and its barcode. */
  private present(status: ChangerStatus, slot: number): { full: boolean; barcode?: string } {
    const drive = status.drives.find((d) => d.drive === this.changer.drive)!;
    if (drive.full && drive.from === slot) return { full: true, ...(drive.barcode ? { barcode: drive.barcode } : {}) };
    const s = status.slots.find((e) => e.slot === slot)!;
    return { full: s.full, ...(s.barcode ? { barcode: s.barcode } : {}) };
  }

  /** The slot whose tape is in the drive, if it is one of target.slots. */
  private async loadedSlot(): Promise<number | undefined> {
    const status = await this.status();
    const drive = status.drives.find((d) => d.drive === this.changer.drive)!;
    return drive.full && drive.from !== undefined && this.config.slots.includes(drive.from) ? drive.from : undefined;
  }

  /** Puts the slot's tape in the drive (the drive's tape back into its own slot first), then rewinds. */
  private async load(slot: number): Promise<void> {
    const status = await this.status();
    const drive = status.drives.find((d) => d.drive === this.changer.drive)!;
    if (drive.full && drive.from === slot) return;
    if (drive.full) {
      if (drive.from === undefined) {
        throw new UserError('target', 'the drive holds a tape the changer cannot put back: it does not know which slot it came from', {
          where: this.config.changer,
          hint: `Unload it into a free slot by hand ("mtx -f ${this.config.changer} unload <slot>") and run again`,
        });
      }
      await this.changer.unload();
    }
    if (!status.slots.find((s) => s.slot === slot)?.full) {
      throw new UserError('target', `slot ${slot} of the tape library is empty`, {
        where: this.config.changer,
        hint: 'Put the tape back into its slot ("mtx -f <changer> status" shows the slots) and run again',
      });
    }
    await this.changer.load(slot);
    await this.rewindWhenReady();
  }

  /** After a load the position is unknown: rewind, waiting while the drive makes the tape ready. */
  private async rewindWhenReady(): Promise<void> {
    const until = Date.now() + (this.options.readyTimeoutMs ?? 120_000);
    for (;;) {
      try {
        await run('mt', ['-f', this.config.device, 'rewind'], { timeoutMs: 20 * 60_000 });
        return;
      } catch (e) {
        if (Date.now() >= until) {
          throw new UserError('target', 'the tape drive did not become ready after the changer loaded a tape', {
            where: this.config.device,
            hint: "Check that target.device is the library's drive (the one mtx calls Data Transfer Element 0) and run again",
            cause: e,
          });
        }
        await sleep(1000);
      }
    }
  }

  private describe(slot: number, metadata: BackupMetadata): StoredBackup {
    const entry = this.read().slots.get(slot);
    const tag = entry?.barcode ? ` ${entry.barcode}` : '';
    return storedBackup(metadata, `${this.config.changer} slot ${slot}${tag} (${this.config.device}, tape file ${FILE.dump})`);
  }
}

function summarize(contents: TapeContents): { holds: SlotHolds; metadata?: BackupMetadata } {
  switch (contents.kind) {
    case 'blank':
    case 'erased':
    case 'foreign':
    case 'unreadable':
      return { holds: { kind: contents.kind } };
    case 'unfinished':
      return { holds: { kind: 'unfinished', id: contents.label.id } };
    case 'committed': {
      const m = contents.commit.metadata;
      return { holds: { kind: 'committed', id: m.id, host: m.host, created: m.created }, metadata: m };
    }
  }
}

function describeSlots(slots: number[]): string {
  return slots.length ? `slots ${slots.join(', ')}` : 'no storage slots';
}
