/**
 * What the rest of the program asks of a machine's state, as tags on its
 * nodes, so that no caller keeps a list of state names of its own.
 */
export const TAGS = {
  /** The process may exit here: nothing is running, the next event comes from outside. */
  resting: 'resting',
  /** A run (backup) or a restore has begun and not ended. */
  inProgress: 'inProgress',
  /** The last run or phase failed; the state says where and why. */
  failed: 'failed',
  /** Its actor destroys data: old backups, or the file systems being restored. */
  destructive: 'destructive',
} as const;

export type Tag = (typeof TAGS)[keyof typeof TAGS];
