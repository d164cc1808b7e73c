/**
 * The backup machine's transitions, written from the seed's backup steps and
 * the README's "How a backup runs", not from machines/backup.ts.
 *
 * The seed: every hour a TICK, and the program decides whether a backup is due;
 * / and /boot are rsynced into the system copy; the spool modules run; /home is
 * xfsdumped; in snapshot mode (the seed's step 3) the databases are frozen briefly
 * and an LVM snapshot of /home is taken after the spool modules, and the dump is
 * of that snapshot; in spool mode there is no such step. The README adds a preflight before anything is written, the record
 * of the file systems' identity as its own step after the sync ("that is now its
 * own step"), and after the dump: read back and verified, published, and only
 * then retention. A failed step stops in `failed` with the step and reason; a
 * retention that fails comes after the backup was published and counted, so the
 * run still ends in `idle` (with a warning). `backup` (BACKUP_NOW) runs at once,
 * due or not; a run already going on is not started again. ABANDON ends a run
 * that can never finish (a restore replaced the system it copied): not a failed
 * backup, so back to `idle`; with no run it does nothing.
 */
import { Oracle, type Situation } from './oracle.js';

export const BACKUP_ORACLE = new Oracle(`
# state            | when    | event      | next
idle               | due     | TICK       | running.preflight
idle               | not due | TICK       | idle
idle               | -       | BACKUP_NOW | running.preflight
idle               | -       | ABANDON    | idle

# Nothing is written before the preflight passes.
running.preflight  | due     | TICK       | running.preflight
running.preflight  | not due | TICK       | running.preflight
running.preflight  | -       | BACKUP_NOW | running.preflight
running.preflight  | -       | ABANDON    | idle
running.preflight  | -       | done       | running.systemSync
running.preflight  | -       | error      | failed

# rsync of / and /boot into <home>/.syn3systembackup.
running.systemSync | due     | TICK       | running.systemSync
running.systemSync | not due | TICK       | running.systemSync
running.systemSync | -       | BACKUP_NOW | running.systemSync
running.systemSync | -       | ABANDON    | idle
running.systemSync | -       | done       | running.layout
running.systemSync | -       | error      | failed

# The identity of /, /boot and /home, for the restore.
running.layout     | due     | TICK       | running.layout
running.layout     | not due | TICK       | running.layout
running.layout     | -       | BACKUP_NOW | running.layout
running.layout     | -       | ABANDON    | idle
running.layout     | -       | done       | running.spool
running.layout     | -       | error      | failed

# modules/*.backup into /home/system/spool.
running.spool      | due     | TICK       | running.spool
running.spool      | not due | TICK       | running.spool
running.spool      | -       | BACKUP_NOW | running.spool
running.spool      | -       | ABANDON    | idle
running.spool      | spool mode    | done | running.dump
running.spool      | snapshot mode | done | running.snapshot
running.spool      | -       | error      | failed

# Snapshot mode only: modules/*.freeze hold the databases while lvcreate runs, then thaw.
running.snapshot   | due     | TICK       | running.snapshot
running.snapshot   | not due | TICK       | running.snapshot
running.snapshot   | -       | BACKUP_NOW | running.snapshot
running.snapshot   | -       | ABANDON    | idle
running.snapshot   | -       | done       | running.dump
running.snapshot   | -       | error      | failed

# xfsdump of /home to the target, under a temporary name.
running.dump       | due     | TICK       | running.dump
running.dump       | not due | TICK       | running.dump
running.dump       | -       | BACKUP_NOW | running.dump
running.dump       | -       | ABANDON    | idle
running.dump       | -       | done       | running.verify
running.dump       | -       | error      | failed

# The whole dump read back: length, sha256, xfsrestore -t.
running.verify     | due     | TICK       | running.verify
running.verify     | not due | TICK       | running.verify
running.verify     | -       | BACKUP_NOW | running.verify
running.verify     | -       | ABANDON    | idle
running.verify     | -       | done       | running.publish
running.verify     | -       | error      | failed

# Metadata beside the dump, one rename: from here the backup counts.
running.publish    | due     | TICK       | running.publish
running.publish    | not due | TICK       | running.publish
running.publish    | -       | BACKUP_NOW | running.publish
running.publish    | -       | ABANDON    | idle
running.publish    | -       | done       | running.retention
running.publish    | -       | error      | failed

# Only now are old backups removed; a failure here is a warning, the backup stands.
running.retention  | due     | TICK       | running.retention
running.retention  | not due | TICK       | running.retention
running.retention  | -       | BACKUP_NOW | running.retention
running.retention  | -       | ABANDON    | idle
running.retention  | -       | done       | idle
running.retention  | -       | error      | idle

# After a failure ticks wait (1 h, 2 h, 4 h … a day); backup retries at once.
failed             | due     | TICK       | running.preflight
failed             | not due | TICK       | failed
failed             | -       | BACKUP_NOW | running.preflight
failed             | -       | ABANDON    | failed
`);

const HOUR = 3_600_000;

/** What the oracle needs to know of a state's past: written by the machine, but only read here. */
export interface BackupFacts {
  lastSuccessAt?: number | undefined;
  lastFailureAt?: number | undefined;
  consecutiveFailures: number;
  /** The mode the running backup was started in. */
  mode?: 'spool' | 'snapshot' | undefined;
}

/**
 * The README's rule, for an `every` schedule: due when the first slot after the
 * last success has passed, and after n failures in a row not before
 * min(2^(n-1) h, 24 h) after the last one.
 */
export function tickIsDue(facts: BackupFacts, everyMs: number, now: number): boolean {
  const slot = facts.lastSuccessAt === undefined ? Number.NEGATIVE_INFINITY : facts.lastSuccessAt + everyMs;
  const wait = Math.min(2 ** (facts.consecutiveFailures - 1), 24) * HOUR;
  const retry = facts.consecutiveFailures > 0 && facts.lastFailureAt !== undefined ? facts.lastFailureAt + wait : Number.NEGATIVE_INFINITY;
  return now >= slot && now >= retry;
}

/** A walked transition in the oracle's words: done and error are the events of the step the state runs. */
export function backupSituation(
  state: string,
  facts: BackupFacts,
  event: { type: string; [k: string]: unknown },
  everyMs: number,
): Situation {
  if (event.type === 'TICK') return { state, when: tickIsDue(facts, everyMs, event.now as number) ? 'due' : 'not due', event: 'TICK' };
  const step = /^xstate\.(done|error)\.actor\./.exec(event.type);
  // Where the spool step leads is the one place the mode decides.
  if (state === 'running.spool' && step?.[1] === 'done') return { state, when: `${facts.mode ?? 'spool'} mode`, event: 'done' };
  return { state, when: '-', event: step ? step[1]! : event.type };
}
