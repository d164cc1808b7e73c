/**
 * The `trust` section: the key this server signs its backups with, and the
 * public keys a restore accepts. A restore onto a fresh installation needs
 * only the public key, kept with the disaster-recovery papers.
 */
import { z } from 'zod';
import { absolutePath } from './fields.js';

/** "ed25519:<base64 of the 32-byte raw public key>", as `syn3-backup key init` prints it. */
export const PUBLIC_KEY_PATTERN = /^ed25519:[A-Za-z0-9+/]{43}=$/;

export const trustSchema = z.strictObject({
  signing_key: absolutePath.default('/etc/syn3-backup/signing.key'),
  public_keys: z
    .array(z.string().regex(PUBLIC_KEY_PATTERN, 'must be a public key as "syn3-backup key init" prints it (ed25519:…)'))
    .default([]),
});

export type TrustConfig = z.infer<typeof trustSchema>;
