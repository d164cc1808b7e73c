/**
 * The sentences every target says alike, so the administrator reads one
 * wording whichever target failed, and a change of wording is made once.
 */
export const EARLIER_KEPT = 'the earlier backups were kept';
export const PARTIAL_DISCARDED = 'the partial backup was discarded';
export const LIST_SHOWS = '"syn3-backup list" shows the backups that are there';
export const RUN_AGAIN = 'Run the backup again; the earlier backups were kept';
export const RUN_AGAIN_NEW_ID = 'Run the backup again: it gets a new id; the backup already there is kept';
