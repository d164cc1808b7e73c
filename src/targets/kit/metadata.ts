/**
 * meta.json, the one record that makes a dump a backup: written by commit,
 * read back by list, open and restore. A target is not trusted: what comes
 * back is validated field by field, and anything that does not pass (cut
 * short, edited, written by another program or version, naming another id)
 * is a rejection the caller must not list or restore from.
 */
import { z } from 'zod';
import type { FsIdentity, SystemLayout } from '../../../machines/types.js';
import { METADATA_FORMAT, type BackupMetadata } from '../target.js';
import { ID_PATTERN } from './id.js';

const nonNegativeInteger = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

const fsIdentitySchema = z.strictObject({
  mountPoint: z.string().min(1),
  device: z.string(),
  fsType: z.string().min(1),
  uuid: z.string().optional(),
  label: z.string().optional(),
  sizeBytes: nonNegativeInteger.optional(),
  xfs: z.record(z.string(), z.number()).optional(),
}) satisfies z.ZodType<FsIdentity>;

const layoutSchema = z.strictObject({
  root: fsIdentitySchema,
  boot: fsIdentitySchema,
  home: fsIdentitySchema,
}) satisfies z.ZodType<SystemLayout>;

export const metadataSchema = z.strictObject({
  format: z.literal(METADATA_FORMAT),
  id: z.string().regex(ID_PATTERN, 'must be a backup id'),
  host: z.string().min(1),
  created: z.iso.datetime(),
  startedAt: z.iso.datetime(),
  size: nonNegativeInteger,
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
  compression: z.enum(['none', 'zstd']),
  tool: z.literal('xfsdump'),
  program: z.string(),
  layout: layoutSchema,
}) satisfies z.ZodType<BackupMetadata>;

export type DecodedMetadata = { ok: true; metadata: BackupMetadata } | { ok: false; reason: string };

/** What commit stores: indented JSON with a final newline, readable with cat. */
export function encodeMetadata(metadata: BackupMetadata): string {
  return `${JSON.stringify(metadata, null, 2)}\n`;
}

/** meta.json's text, validated; `id` is the backup it was found under, which it must name. */
export function decodeMetadata(text: string, id?: string): DecodedMetadata {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'it is not JSON (cut short, or not a meta.json)' };
  }
  return validateMetadata(value, id);
}

/** Metadata that came as part of a larger record (the tape's commit record), validated alike. */
export function validateMetadata(value: unknown, id?: string): DecodedMetadata {
  const parsed = metadataSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const at = issue?.path.length ? issue.path.join('.') : 'the record';
    return { ok: false, reason: `${at}: ${issue?.message ?? 'invalid'}` };
  }
  if (id !== undefined && parsed.data.id !== id) return { ok: false, reason: `it names backup ${parsed.data.id}, not ${id}` };
  return { ok: true, metadata: parsed.data };
}

/** The metadata, or undefined when it cannot be trusted: for list, which shows only backups it can vouch for. */
export function trustedMetadata(text: string, id?: string): BackupMetadata | undefined {
  const decoded = decodeMetadata(text, id);
  return decoded.ok ? decoded.metadata : undefined;
}
