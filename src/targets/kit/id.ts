/**
 * A backup id: what every target uses as a file or key name, so nothing in it
 * may climb out of the target's directory or prefix (no "/", no leading ".").
 */
import { UserError } from '../../errors.js';

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function isBackupId(name: string): boolean {
  return ID_PATTERN.test(name);
}

/** The id itself, once it is known to be one; a usage error otherwise (ids come from the command line too). */
export function checkId(id: string): string {
  if (!isBackupId(id)) throw new UserError('usage', `"${id}" is not a backup id`, { hint: 'Use an id that "syn3-backup list" shows' });
  return id;
}
