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

export class SnapshotStore {
  readonly file: string;

  constructor(stateDir: string, private readonly machine: string) {
    this.file = join(stateDir, `${machine}-state.json`);
  }

  load(): unknown {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw this.corrupt(`cannot be read (${(e as NodeJS.ErrnoException).code})`);
    }
    let parsed: StateFile;
    try {
      parsed = JSON.parse(text) as StateFile;
    } catch {
      throw this.corrupt('is not valid JSON (damaged, perhaps by a crash of the file system or a manual edit)');
    }
    if (parsed?.machine !== this.machine || typeof parsed.snapshot !== 'object' || parsed.snapshot === null) {
      throw this.corrupt('does not hold a saved state of the ' + this.machine + ' machine');
    }
    if (parsed.schemaVersion !== STATE_SCHEMA_VERSION) {
      throw this.corrupt(`has schema version ${parsed.schemaVersion}, and this program reads version ${STATE_SCHEMA_VERSION}`);
    }
    return parsed.snapshot;
  }

  save(snapshot: unknown, now = new Date()): void {
    const body: StateFile = { schemaVersion: STATE_SCHEMA_VERSION, machine: this.machine, savedAt: now.toISOString(), snapshot };
    writeJsonDurable(this.file, body);
  }

  corrupt(what: string): UserError {
    return new UserError('state', `the state file ${what}`, {
      where: this.file,
      hint: `Move it aside (mv ${this.file} ${this.file}.broken) and run again: the ${this.machine} history starts afresh, and the backups on the target are not touched`,
    });
  }
}
