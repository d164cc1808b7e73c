/**
 * Where the backup crash harness can be killed: the three step points of
 * every step of the backup machine, and points inside the long stretches.
 * Shared by the harness (which acts them out) and the property (which picks
 * them and says what must hold afterwards).
 */
import { BACKUP_STEPS, SNAPSHOT_MODE_STEPS, type BackupActorName, type BackupStep } from '../../machines/backup.js';

export const STEP_POINT_KINDS = ['start', 'entered', 'after'] as const;
export type StepPointKind = (typeof STEP_POINT_KINDS)[number];

export type BackupCrashPoint =
  /** start: as the step's body begins; entered: 20 ms in, its state saved; after: its side effect done, not yet recorded. */
  | { kind: StepPointKind; step: BackupActorName }
  /** Through a target without localWrite (as smb, ftp, s3, tape): once N bytes of the dump reached target.write. */
  | { kind: 'inDumpStream'; bytes: number }
  /** The file target's dump, which xfsdump writes itself: once the pending file holds N bytes. */
  | { kind: 'inDumpFile'; bytes: number }
  /** The verification's read-back of the pending dump (openPending), after N bytes. */
  | { kind: 'inReadBack'; bytes: number }
  /** Publish: target.commit has returned, the step has not. */
  | { kind: 'inPublishAfterCommit' }
  /** Retention: once the first old backup is removed, or while cleanPending removes leftovers. */
  | { kind: 'inRetention'; at: 'afterFirstRemove' | 'inCleanPending' };

export type BackupCrashKind = BackupCrashPoint['kind'];

/** A step made deliberately wrong, to show that the property catches it. */
export type BrokenStep = 'retentionBeforePublish';

export interface BackupCrashRequest {
  point: BackupCrashPoint;
  broken?: BrokenStep;
}

/**
 * Every step point of every step a spool-mode run has: the harness runs on this host, which has no
 * device-mapper, so the snapshot step's crashes are the lane's (test/lane: a kill while frozen).
 */
export function backupStepPoints(): BackupCrashPoint[] {
  return (Object.keys(BACKUP_STEPS) as BackupStep[])
    .filter((step) => !SNAPSHOT_MODE_STEPS.includes(step))
    .flatMap((step) => STEP_POINT_KINDS.map((kind): BackupCrashPoint => ({ kind, step: BACKUP_STEPS[step] })));
}
