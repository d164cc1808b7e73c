/**
 * `key init`: makes this server's Ed25519 signing key at trust.signing_key
 * (0600, never over an existing one) and prints its public key, the line a
 * restore onto a fresh installation needs. `key show`: prints that line again.
 */
import { EXIT } from '../errors.js';
import { createSigningKey, publicKeyText, readSigningKey } from '../signing/keys.js';
import { configOnly, printJson, type GlobalOptions } from './context.js';

/** What the administrator must do with the public key, in one sentence (also printed by install). */
export function papersSentence(publicKey: string): string {
  return [
    `Its public key, one line:`,
    publicKey,
    `Put this line in trust.public_keys and keep it with the disaster-recovery papers: a restore onto a fresh installation`,
    `accepts this server's backups only with it, and refuses any backup it does not vouch for.`,
    '',
  ].join('\n');
}

export async function keyInitCommand(options: GlobalOptions & { json?: boolean }): Promise<number> {
  const file = configOnly(options).trust.signing_key;
  const publicKey = createSigningKey(file);
  if (options.json) printJson({ file, publicKey });
  else process.stdout.write(`Made the signing key ${file} (mode 0600, readable by root only).\n${papersSentence(publicKey)}`);
  return EXIT.ok;
}

export async function keyShowCommand(options: GlobalOptions & { json?: boolean }): Promise<number> {
  const file = configOnly(options).trust.signing_key;
  const publicKey = publicKeyText(readSigningKey(file));
  if (options.json) printJson({ file, publicKey });
  else process.stdout.write(`${publicKey}\n`);
  return EXIT.ok;
}
