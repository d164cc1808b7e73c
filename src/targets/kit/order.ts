/** list() returns backups oldest first (retention removes from the front); ties go by id, so the order is stable. */
import type { BackupMetadata, StoredBackup } from '../target.js';

export function oldestFirst(backups: StoredBackup[]): StoredBackup[] {
  return [...backups].sort((a, b) => a.created.localeCompare(b.created) || a.id.localeCompare(b.id));
}

/** What a target lists for a backup it found: the dump's location and the metadata it was committed with. */
export function storedBackup(metadata: BackupMetadata, location: string): StoredBackup {
  return { id: metadata.id, created: metadata.created, size: metadata.size, location, metadata };
}
