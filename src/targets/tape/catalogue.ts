/**
 * The tape library's catalogue: what each slot's tape held when this program
 * last read or wrote it, so `list` and the rotation need not load every tape.
 * A small JSON file in paths.state, written the one way state is written
 * (src/state/durable.ts). It is a cache: the tapes' own records are the truth.
 * A catalogue that is missing (a fresh installation restoring), unreadable,
 * of another changer, or whose entry names another barcode than the slot's
 * tape has now, is rebuilt by reading the tapes' labels.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeJsonDurable } from '../../state/durable.js';
import { validateMetadata } from '../kit/index.js';
import type { BackupMetadata } from '../target.js';
import type { SlotHolds } from './rotation.js';

export const CATALOGUE_FILE = 'tape-catalogue.json';
const FORMAT = 1;

export interface CatalogueEntry {
  barcode?: string;
  holds: SlotHolds;
  /** A committed backup's metadata, as its commit record has it. */
  metadata?: BackupMetadata;
  /** When the tape was last read or written. */
  seen: string;
}

export interface Catalogue {
  changer: string;
  lastWritten?: number;
  slots: Map<number, CatalogueEntry>;
}

const holdsSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('empty') }),
  z.strictObject({ kind: z.enum(['blank', 'erased', 'foreign', 'unreadable']) }),
  z.strictObject({ kind: z.literal('unfinished'), id: z.string().min(1) }),
  z.strictObject({ kind: z.literal('committed'), id: z.string().min(1), host: z.string().min(1), created: z.iso.datetime() }),
]);

const fileSchema = z.strictObject({
  format: z.literal(FORMAT),
  changer: z.string(),
  lastWritten: z.number().int().min(1).optional(),
  slots: z.record(
    z.string().regex(/^[1-9]\d*$/),
    z.strictObject({ barcode: z.string().optional(), holds: holdsSchema, metadata: z.unknown().optional(), seen: z.string() }),
  ),
});

export function cataloguePath(stateDir: string): string {
  return join(stateDir, CATALOGUE_FILE);
}

/** The catalogue for this changer, or an empty one when there is none that can be trusted. */
export function readCatalogue(file: string | undefined, changer: string): Catalogue {
  const empty: Catalogue = { changer, slots: new Map() };
  if (!file) return empty;
  let parsed: z.infer<typeof fileSchema>;
  try {
    parsed = fileSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch {
    return empty;
  }
  if (parsed.changer !== changer) return empty;
  const slots = new Map<number, CatalogueEntry>();
  for (const [key, entry] of Object.entries(parsed.slots)) {
    const holds = entry.holds as SlotHolds;
    let metadata: BackupMetadata | undefined;
    if (holds.kind === 'committed') {
      // The same check as the commit record read from the tape; an entry that fails it is read again from the tape.
      const checked = validateMetadata(entry.metadata, holds.id);
      if (!checked.ok || checked.metadata.host !== holds.host || checked.metadata.created !== holds.created) continue;
      metadata = checked.metadata;
    }
    slots.set(Number(key), {
      holds,
      seen: entry.seen,
      ...(entry.barcode === undefined ? {} : { barcode: entry.barcode }),
      ...(metadata ? { metadata } : {}),
    });
  }
  return { changer, slots, ...(parsed.lastWritten === undefined ? {} : { lastWritten: parsed.lastWritten }) };
}

export function writeCatalogue(file: string | undefined, catalogue: Catalogue): void {
  if (!file) return;
  const slots: Record<string, CatalogueEntry> = {};
  for (const [slot, entry] of [...catalogue.slots].sort((a, b) => a[0] - b[0])) slots[String(slot)] = entry;
  writeJsonDurable(file, {
    format: FORMAT,
    changer: catalogue.changer,
    ...(catalogue.lastWritten === undefined ? {} : { lastWritten: catalogue.lastWritten }),
    slots,
  });
}
