/**
 * Signing a backup's metadata, and the verdict on a signature a target gave
 * back. The metadata names the dump's length and sha256, so a trusted
 * signature over it vouches for the dump too, once the read-back matches.
 */
import { sign, verify, type KeyObject } from 'node:crypto';
import type { BackupMetadata } from '../targets/target.js';
import { signedBytes } from './canonical.js';
import { parsePublicKey, publicKeyText } from './keys.js';

export function signMetadata(metadata: BackupMetadata, key: KeyObject): BackupMetadata {
  const { signature: _old, ...unsigned } = metadata;
  const sig = sign(null, signedBytes(unsigned), key).toString('base64');
  return { ...unsigned, signature: { key: publicKeyText(key), sig } };
}

export type SignatureVerdict =
  /** Signed by one of the trusted keys, and the signature holds. */
  | { status: 'trusted'; key: string }
  /** No signature at all: a backup made before signing existed (or stripped of it). */
  | { status: 'unsigned' }
  /** Signed by a key that is not trusted here (the signature is not even looked at). */
  | { status: 'untrusted'; key: string }
  /** A trusted key, but the signature does not match the metadata: it was changed after signing. */
  | { status: 'invalid'; key: string };

export function checkSignature(metadata: BackupMetadata, trustedKeys: readonly string[]): SignatureVerdict {
  const s = metadata.signature;
  if (!s) return { status: 'unsigned' };
  if (!trustedKeys.includes(s.key)) return { status: 'untrusted', key: s.key };
  const key = parsePublicKey(s.key);
  const sig = Buffer.from(s.sig, 'base64');
  const holds = key !== undefined && sig.length === 64 && verify(null, signedBytes(metadata), key, sig);
  return holds ? { status: 'trusted', key: s.key } : { status: 'invalid', key: s.key };
}

/** For list and messages: one short phrase. */
export function describeVerdict(v: SignatureVerdict): string {
  switch (v.status) {
    case 'trusted':
      return 'signed, trusted key';
    case 'unsigned':
      return 'UNSIGNED';
    case 'untrusted':
      return 'signed by an UNKNOWN key';
    case 'invalid':
      return 'BAD SIGNATURE';
  }
}
