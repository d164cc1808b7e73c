/**
 * What every target does alike, written once: the id rule, meta.json (its
 * codec and its validation), the "different backup" check, the listing order,
 * the secret files and the shared phrases. Redaction is src/system/run.ts's.
 */
export { checkId, ID_PATTERN, isBackupId } from './id.js';
export { decodeMetadata, encodeMetadata, metadataSchema, trustedMetadata, validateMetadata, type DecodedMetadata } from './metadata.js';
export { oldestFirst, storedBackup } from './order.js';
export { EARLIER_KEPT, LIST_SHOWS, PARTIAL_DISCARDED, RUN_AGAIN, RUN_AGAIN_NEW_ID } from './phrases.js';
export { assertSameBackup } from './same-backup.js';
export { readSecretFile, type SecretFile } from './secret-file.js';
