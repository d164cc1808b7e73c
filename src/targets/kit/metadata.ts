/**
 * meta.json, the one record that makes a dump a backup: written by commit,
 * read back by list, open and restore. A target is not trusted: what comes
 * back is validated field by field, and anything that does not pass (cut
 * short, edited, written by another program or version, naming another id)
 * is a rejection the caller must not list or restore from.
 */
import { z } from 'zod';
import type { DrbdRoleAtBackup, FsIdentity, QuotaAccounting, SystemLayout, UnkeptTimes } from '../../../machines/types.js';
import { RESOURCE_NAME } from '../../system/drbd.js';
import { UNKEPT_TIMES_SHOWN } from '../../system/unkept-times.js';
import { PUBLIC_KEY_PATTERN } from '../../config/trust-config.js';
import { METADATA_FORMAT, type BackupMetadata, type MetadataSignature } from '../target.js';
import { ID_PATTERN } from './id.js';

const nonNegativeInteger = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/*
 * Every field of a layout reaches a root shell script (initrd.conf) or a mkfs
 * command line during a restore: each is held to the syntax it can have.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
const NO_CONTROL = /^[^\x00-\x1f\x7f]*$/;
const UUID_SYNTAX = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** One argument that cannot read as an option: no leading '-' or blank, no control characters, 16 at most (ext4's limit). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
const LABEL_SYNTAX = /^[^\s\x00-\x1f\x7f-][^\x00-\x1f\x7f]{0,15}$/;
/** What the restore can rebuild (src/system/mkfs.ts) and the initrd can mount: nothing else can come back. */
export const KNOWN_FS_TYPES = ['xfs', 'ext2', 'ext3', 'ext4'] as const;

const quotaState = z.enum(['enforced', 'accounted']).optional();
const quotaSchema = z.strictObject({ user: quotaState, group: quotaState, project: quotaState }) satisfies z.ZodType<QuotaAccounting>;

const fsIdentitySchema = z.strictObject({
  mountPoint: z.string().startsWith('/', 'must be an absolute path').max(4096).regex(NO_CONTROL, 'must hold no control characters'),
  device: z.string().max(4096).regex(NO_CONTROL, 'must hold no control characters'),
  fsType: z.enum(KNOWN_FS_TYPES, `must be one of ${KNOWN_FS_TYPES.join(', ')}`),
  uuid: z.string().regex(UUID_SYNTAX, 'must be a UUID (8-4-4-4-12 hex digits)').optional(),
  label: z
    .string()
    .regex(LABEL_SYNTAX, 'must be a plain label: at most 16 characters, no control characters, not starting with - or a blank')
    .optional(),
  sizeBytes: nonNegativeInteger.optional(),
  mode: z.number().int().min(0).max(0o7777).optional(),
  xfs: z.record(z.string().regex(/^[a-z0-9_.]{1,64}$/, 'must be an xfs_info field name'), nonNegativeInteger).optional(),
  quota: quotaSchema.optional(),
}) satisfies z.ZodType<FsIdentity>;

const drbdRoleSchema = z.strictObject({
  resource: z.string().regex(RESOURCE_NAME, 'must be a DRBD resource name (letters, digits, _ . -)'),
  role: z.enum(['Primary', 'Secondary']),
}) satisfies z.ZodType<DrbdRoleAtBackup>;

const layoutSchema = z.strictObject({
  root: fsIdentitySchema,
  boot: fsIdentitySchema,
  home: fsIdentitySchema,
  drbd: z.array(drbdRoleSchema).max(256).optional(),
}) satisfies z.ZodType<SystemLayout>;

/** A path below /home, control characters escaped (as find-unkept-times.ts leaves it): six characters at most for each of PATH_MAX's bytes. */
const shownPath = z
  .string()
  .min(1)
  .max(6 * 4096)
  .regex(NO_CONTROL, 'must hold no control characters');

const unkeptTimesSchema = z
  .strictObject({
    count: nonNegativeInteger.min(1),
    first: z.array(shownPath).min(1).max(UNKEPT_TIMES_SHOWN),
  })
  .refine((u) => u.first.length <= u.count, {
    message: 'names more files than it counts',
    path: ['first'],
  }) satisfies z.ZodType<UnkeptTimes>;

const signatureSchema = z.strictObject({
  key: z.string().regex(PUBLIC_KEY_PATTERN, 'must be a public key (ed25519:…)'),
  sig: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'must be a 64-byte Ed25519 signature in base64'),
}) satisfies z.ZodType<MetadataSignature>;

export const metadataSchema = z.strictObject({
  format: z.literal(METADATA_FORMAT),
  id: z.string().regex(ID_PATTERN, 'must be a backup id'),
  host: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.-]*$/, 'must be a host name'),
  created: z.iso.datetime(),
  startedAt: z.iso.datetime(),
  size: nonNegativeInteger,
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
  compression: z.enum(['none', 'zstd']),
  tool: z.literal('xfsdump'),
  program: z.string().max(200).regex(NO_CONTROL, 'must hold no control characters'),
  layout: layoutSchema,
  unkeptTimes: unkeptTimesSchema.optional(),
  signature: signatureSchema.optional(),
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
