/**
 * Where the restore crash harness can be killed: the three step points of
 * every phase the restore machine names, the preflight's read of the backup
 * at a byte, and a moment inside the phases that run long programs. Shared by
 * the harness (which acts them out) and the property (which picks them).
 */
import { RESTORE_PHASE_ACTORS } from '../../machines/restore.js';
import type { RestoreSteps } from '../../src/restore/wiring.js';
import type { StepCrash } from './crash.js';

export const RESTORE_STEP_POINT_KINDS = ['start', 'entered', 'after'] as const;

export type RestoreCrashPoint =
  | StepCrash<keyof RestoreSteps>
  /** After N bytes of the n-th read of the backup (1: the preflight's, 2: xfsrestore's). */
  | { kind: 'inRead'; open: number; bytes: number };

/** Every step point of every phase the restore machine names. */
export function restoreStepPoints(): RestoreCrashPoint[] {
  return Object.values(RESTORE_PHASE_ACTORS).flatMap((step) => RESTORE_STEP_POINT_KINDS.map((kind): RestoreCrashPoint => ({ kind, step })));
}
