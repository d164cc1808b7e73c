/**
 * What this program writes on a tape besides the dump: small JSON records,
 * each its own tape file, padded with NULs to whole blocks.
 *
 *   file 0  label   {"kind":"label", id, blockSize, written}   (or "erased", after remove / cleanPending)
 *   file 1  dump    xfsdump's stream in blocks of exactly block_size; the last one padded with zeros
 *   file 2  end     {"kind":"end", id, length}: the dump is all on the tape (its true length)
 *   file 3  commit  {"kind":"commit", id, metadata}: the verified backup, the only thing `list` shows
 *
 * A record read back is checked as strictly as any target's meta.json: the
 * commit record's metadata must pass the kit's validation, or the tape holds
 * nothing this program trusts.
 */
import { validateMetadata } from '../kit/index.js';
import type { BackupMetadata } from '../target.js';
import { MiB } from '../tape-config.js';

export const MAGIC = 'syn3-backup tape';
export const TAPE_FORMAT = 1;
/** Labels and records are small; anything bigger than this is not one of ours. */
export const RECORD_MAX = MiB;

export const FILE = { label: 0, dump: 1, end: 2, commit: 3 } as const;

export interface LabelRecord {
  magic: typeof MAGIC;
  format: typeof TAPE_FORMAT;
  kind: 'label';
  id: string;
  blockSize: number;
  written: string;
}
export interface ErasedRecord {
  magic: typeof MAGIC;
  format: typeof TAPE_FORMAT;
  kind: 'erased';
  id: string;
  erased: string;
}
export interface EndRecord {
  magic: typeof MAGIC;
  format: typeof TAPE_FORMAT;
  kind: 'end';
  id: string;
  length: number;
}
export interface CommitRecord {
  magic: typeof MAGIC;
  format: typeof TAPE_FORMAT;
  kind: 'commit';
  id: string;
  metadata: BackupMetadata;
}
export type TapeRecord = LabelRecord | ErasedRecord | EndRecord | CommitRecord;

/** What the loaded tape holds, as far as this program is concerned. */
export type TapeContents =
  | { kind: 'blank' }
  | { kind: 'foreign' }
  | { kind: 'unreadable'; reason: string }
  | { kind: 'erased'; label: ErasedRecord }
  | { kind: 'unfinished'; label: LabelRecord; end?: EndRecord }
  | { kind: 'committed'; label: LabelRecord; end: EndRecord; commit: CommitRecord };

export function stamp<K extends TapeRecord['kind']>(kind: K): { magic: typeof MAGIC; format: typeof TAPE_FORMAT; kind: K } {
  return { magic: MAGIC, format: TAPE_FORMAT, kind };
}

/** A record read back; a commit record whose metadata does not pass validation is not trusted, and says why. */
export function parseRecord(bytes: Buffer): ReadOutcome {
  const end = bytes.indexOf(0);
  try {
    const r = JSON.parse(bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8')) as Partial<TapeRecord> | null;
    if (!r || r.magic !== MAGIC || r.format !== TAPE_FORMAT || typeof r.id !== 'string') return 'foreign';
    if (r.kind === 'label' && typeof r.blockSize === 'number' && r.blockSize > 0) return r as LabelRecord;
    if (r.kind === 'end' && typeof r.length === 'number' && r.length >= 0) return r as EndRecord;
    if (r.kind === 'commit') {
      const checked = validateMetadata(r.metadata, r.id);
      return checked.ok
        ? { ...(r as CommitRecord), metadata: checked.metadata }
        : { unreadable: `the commit record's metadata cannot be trusted (${checked.reason})` };
    }
    if (r.kind === 'erased') return r as ErasedRecord;
    return 'foreign';
  } catch {
    return 'foreign';
  }
}

export type ReadOutcome = TapeRecord | 'foreign' | { unreadable: string };

export function isRecord<K extends 'end' | 'commit'>(r: ReadOutcome, kind: K, id: string): r is Extract<TapeRecord, { kind: K }> {
  return typeof r === 'object' && !('unreadable' in r) && r.kind === kind && r.id === id;
}

export function problem(r: ReadOutcome, file: number, id: string): string {
  if (typeof r === 'object' && 'unreadable' in r) return r.unreadable;
  return `tape file ${file} is not the ${file === FILE.end ? 'end' : 'commit'} record of backup ${id}`;
}
