/**
 * Commit is idempotent for the backup it committed, and refuses any other
 * backup under the same id: the one already there is never replaced.
 */
import { UserError } from '../../errors.js';
import type { BackupMetadata } from '../target.js';
import { RUN_AGAIN_NEW_ID } from './phrases.js';

/** Throws when `already` (what the target holds under `id`) is not the backup `metadata` describes. */
export function assertSameBackup(id: string, already: BackupMetadata, metadata: BackupMetadata, where: string): void {
  if (already.sha256 === metadata.sha256 && already.size === metadata.size) return;
  throw new UserError('target', `a different backup with id ${id} is already on the target`, { where, hint: RUN_AGAIN_NEW_ID });
}
