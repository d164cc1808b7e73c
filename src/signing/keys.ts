/**
 * Ed25519 keys: the private key in a PEM file (PKCS#8, as openssl writes it)
 * that only root can read, and the public key as one line,
 * "ed25519:<base64 of the 32 raw bytes>", short enough to print on the
 * disaster-recovery papers and to paste into trust.public_keys.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { closeSync, constants, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { PUBLIC_KEY_PATTERN } from '../config/trust-config.js';
import { UserError } from '../errors.js';
import { syncDirectory } from '../state/durable.js';
import { requireTrusted, trustProblem } from '../system/trust.js';

/** The DER header of an Ed25519 SubjectPublicKeyInfo: the 32 raw key bytes follow it. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export const KEY_INIT_COMMAND = 'syn3-backup key init';

export function publicKeyText(key: KeyObject): string {
  const der = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return `ed25519:${der.subarray(SPKI_PREFIX.length).toString('base64')}`;
}

/** The key object of a public key line, or undefined when it is not one. */
export function parsePublicKey(text: string): KeyObject | undefined {
  if (!PUBLIC_KEY_PATTERN.test(text)) return undefined;
  const raw = Buffer.from(text.slice('ed25519:'.length), 'base64');
  if (raw.length !== 32) return undefined;
  try {
    return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

function missingKey(file: string): UserError {
  return new UserError('config', 'there is no signing key: every backup is signed, so that a restore can tell it from a forgery', {
    where: file,
    hint: `Run "${KEY_INIT_COMMAND}" (it makes the key and prints the public key for trust.public_keys and the disaster-recovery papers)`,
  });
}

/** What is wrong with the key file beyond the trust rule: anyone but root reading it could sign backups. */
function secrecyProblem(file: string): string | undefined {
  const mode = lstatSync(file).mode & 0o777;
  return mode & 0o077 ? `mode 0${mode.toString(8).padStart(3, '0')} (group or others can read it)` : undefined;
}

/**
 * The signing key, read only when the file passes the trust rule (a real
 * file, root's, in root's directories) and is readable by root alone.
 */
export function readSigningKey(file: string): KeyObject {
  if (!existsAsEntry(file)) throw missingKey(file);
  requireTrusted(file, 'file', 'the signing key (trust.signing_key)');
  const secrecy = secrecyProblem(file);
  if (secrecy) {
    throw new UserError('trust', `the signing key is ${secrecy}; whoever reads it can sign backups a restore would accept`, {
      where: file,
      hint: `Fix it with: chmod 600 ${file} (and make a new key with "${KEY_INIT_COMMAND}" if others may have read it)`,
    });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError('config', 'the signing key file is not a private key (PEM)', {
      where: file,
      hint: `Move it aside and run "${KEY_INIT_COMMAND}", then put the new public key in trust.public_keys`,
      cause: e,
    });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new UserError('config', `the signing key is an ${key.asymmetricKeyType} key, not Ed25519`, {
      where: file,
      hint: `Move it aside and run "${KEY_INIT_COMMAND}"`,
    });
  }
  return key;
}

/** The public key of the signing key file when it is there and passes the rules; otherwise why not. */
export function ownPublicKey(file: string): { key: string } | { problem: string } {
  if (!existsAsEntry(file)) return { problem: `${file} does not exist` };
  const problem = trustProblem(file, 'file') ?? (secrecyProblem(file) ? `${file} is ${secrecyProblem(file)}` : undefined);
  if (problem) return { problem };
  try {
    return { key: publicKeyText(readSigningKey(file)) };
  } catch (e) {
    return { problem: e instanceof Error ? e.message : String(e) };
  }
}

function existsAsEntry(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/**
 * Makes a new key at `file`, mode 0600 from the start and created exclusively
 * (O_EXCL, which also refuses a symbolic link there): an existing key is never
 * replaced, because backups signed with it would no longer verify against the
 * public key on the papers. Returns the public key line.
 */
export function createSigningKey(file: string): string {
  const dir = dirname(file);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  requireTrusted(dir, 'directory', 'the directory of the signing key');
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UserError('usage', 'a signing key is already there; it is not replaced (backups signed with it would no longer verify)', {
        where: file,
        hint: `Print its public key with "syn3-backup key show"; to start over with a new key, move the file aside first`,
      });
    }
    throw e;
  }
  try {
    writeSync(fd, pem);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  syncDirectory(dir);
  return publicKeyText(privateKey);
}
