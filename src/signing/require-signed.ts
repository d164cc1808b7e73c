/**
 * The restore's rule on a backup's signature, checked before its dump is
 * read and long before anything is formatted: signed by a trusted key and
 * intact, or (only with --allow-unsigned, for that backup) not signed at all.
 */
import type { Config } from '../config/schema.js';
import { UserError } from '../errors.js';
import type { StoredBackup } from '../targets/target.js';
import { checkSignature, type SignatureVerdict } from './signature.js';
import { trustedKeys } from './trusted-keys.js';
import { unsignedApproved } from './unsigned-approval.js';

export function requireTrustedSignature(config: Config, backup: StoredBackup, where: string): SignatureVerdict {
  const trusted = trustedKeys(config);
  const verdict = checkSignature(backup.metadata, trusted.keys);
  const id = backup.id;
  const keysHint = trusted.keys.length
    ? `trusted here: ${trusted.keys.join(', ')}`
    : `no key is trusted here (trust.public_keys is empty${trusted.ownKeyProblem ? ` and ${trusted.ownKeyProblem}` : ''})`;
  switch (verdict.status) {
    case 'trusted':
      return verdict;
    case 'unsigned':
      if (unsignedApproved(config.paths.state, id)) return verdict;
      throw new UserError(
        'verify',
        `backup ${id} is not signed: nothing vouches that it is the backup this server made; nothing was touched`,
        {
          where,
          hint: `If it was made before syn3-backup signed its backups and you trust the target, run "syn3-backup restore --from ${id} --allow-unsigned"`,
        },
      );
    case 'untrusted':
      throw new UserError(
        'verify',
        `backup ${id} is signed by ${verdict.key}, a key this configuration does not trust; nothing was touched`,
        {
          where,
          hint: `Put the public key from the disaster-recovery papers in trust.public_keys (${keysHint}); a signature by any other key is refused`,
        },
      );
    case 'invalid':
      throw new UserError(
        'verify',
        `backup ${id}'s signature does not match its metadata: the metadata was changed after it was signed; nothing was touched`,
        { where, hint: 'Restore another backup; this one cannot be trusted, and no flag overrides a wrong signature' },
      );
  }
}
