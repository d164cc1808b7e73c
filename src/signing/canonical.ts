/**
 * The bytes a backup's signature covers: its metadata without the signature,
 * as JSON with every object's keys sorted and no white space, after a line
 * that names what they are. The same metadata always gives the same bytes,
 * whatever order a target or an editor left its keys in, and a signature made
 * for metadata can never be replayed as a signature of anything else.
 */
import type { BackupMetadata } from '../targets/target.js';

export const SIGNED_CONTEXT = 'syn3-backup backup metadata, signed\n';

/** JSON with sorted keys at every level; arrays keep their order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** What is signed: everything but the signature itself (which names its key). */
export function signedBytes(metadata: BackupMetadata): Buffer {
  const { signature: _signature, ...rest } = metadata;
  return Buffer.from(`${SIGNED_CONTEXT}${canonicalJson(rest)}`, 'utf8');
}
