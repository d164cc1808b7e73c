/**
 * A machine's persisted snapshot on disk, versioned, written durably on every
 * transition so that the next process resumes where the last one stopped.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { writeJsonDurable } from './durable.js';

export const STATE_SCHEMA_VERSION = 1;

interface StateFile {
  schemaVersion: number;
  machine: string;
  savedAt: string;
  snapshot: unknown;
}

/** A further place the state is kept, used while `usable()` says so (a mirror on /home while it is mounted). */
export interface Mirror {
  dir: string;
  usable: () => boolean;
}

export class SnapshotStore {
  readonly file: string;
  private readonly mirrors: Array<{ file: string; usable: () => boolean }>;

  /**
   * The restore keeps a mirror on /home: the initrd formats /, and its copy
   * must survive. Loading takes the newest readable copy.
   */
  constructor(
    stateDir: string,
    private readonly machine: string,
    mirrors: Mirror[] = [],
  ) {
    this.file = join(stateDir, `${machine}-state.json`);
    this.mirrors = mirrors.map((m) => ({ file: join(m.dir, `${machine}-state.json`), usable: m.usable }));
  }

  load(): unknown {
    const copies = [this.file, ...this.mirrors.filter((m) => m.usable()).map((m) => m.file)].map((f) => this.read(f));
    const good = copies.filter((c): c is StateFile => !(c instanceof UserError) && c !== undefined);
    if (good.length) return good.sort((a, b) => b.savedAt.localeCompare(a.savedAt))[0]!.snapshot;
    const broken = copies.find((c): c is UserError => c instanceof UserError);
    if (broken) throw broken;
    return undefined;
  }

  save(snapshot: unknown, now = new Date()): void {
    const body: StateFile = { schemaVersion: STATE_SCHEMA_VERSION, machine: this.machine, savedAt: now.toISOString(), snapshot };
    writeJsonDurable(this.file, body);
    for (const m of this.mirrors) if (m.usable()) writeJsonDurable(m.file, body);
  }

  private read(file: string): StateFile | UserError | undefined {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      return this.corrupt(`cannot be read (${(e as NodeJS.ErrnoException).code})`, file);
    }
    let parsed: StateFile;
    try {
      parsed = JSON.parse(text) as StateFile;
    } catch {
      return this.corrupt('is not valid JSON (damaged, perhaps by a crash of the file system or a manual edit)', file);
    }
    if (parsed?.machine !== this.machine || typeof parsed.snapshot !== 'object' || parsed.snapshot === null) {
      return this.corrupt(`does not hold a saved state of the ${this.machine} machine`, file);
    }
    if (parsed.schemaVersion !== STATE_SCHEMA_VERSION) {
      return this.corrupt(`has schema version ${parsed.schemaVersion}, and this program reads version ${STATE_SCHEMA_VERSION}`, file);
    }
    return parsed;
  }

  corrupt(what: string, file = this.file): UserError {
    return new UserError('state', `the state file ${what}`, {
      where: file,
      hint: `Move it aside (mv ${file} ${file}.broken) and run again: the ${this.machine} history starts afresh, and the backups on the target are not touched`,
    });
  }
}
