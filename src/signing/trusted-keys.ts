/**
 * The keys a restore or list accepts: trust.public_keys, and the public key
 * of this server's own signing key when the file is there and passes the
 * rules (a server reading its own backups needs nothing in public_keys).
 */
import type { Config } from '../config/schema.js';
import { ownPublicKey } from './keys.js';

export interface TrustedKeys {
  keys: string[];
  /** Why the own signing key does not count, when a file is configured but unusable or absent. */
  ownKeyProblem?: string;
}

export function trustedKeys(config: Config): TrustedKeys {
  const own = ownPublicKey(config.trust.signing_key);
  const keys = [...config.trust.public_keys];
  if ('key' in own) {
    if (!keys.includes(own.key)) keys.push(own.key);
    return { keys };
  }
  return { keys, ownKeyProblem: own.problem };
}
