/**
 * The seed's restore works from its marker files alone. When the saved state
 * is gone (a lost /var, an older program), the markers and the plan on /home
 * say which phase is due, and the machine starts from there.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { AnyMachineSnapshot } from 'xstate';
import { restoreMachine, type RestoreRestingState } from '../../machines/restore.js';
import type { RestorePlan } from '../../machines/restore-types.js';
import { markerPaths } from '../../actors/markers.js';
import { trustProblem } from '../system/trust.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';

/** A marker counts only when root alone can have made it (the trust rule): anyone else's would start a restore. */
function trusted(file: string): boolean {
  return trustProblem(file, 'file') === undefined;
}

function executable(file: string): boolean {
  try {
    return (statSync(file).mode & 0o111) !== 0 && trusted(file);
  } catch {
    return false;
  }
}

export function recoverFromMarkers(config: Config, log: Logger): AnyMachineSnapshot | undefined {
  const m = markerPaths(config);
  const initrdDue = [m.pendingInitrd, m.system].some((f) => existsSync(f) && trusted(f));
  // The seed's trigger is post.restore's execute bit; the spool marker alone says nothing of a restore.
  const firstBootDue = executable(m.postRestore);
  if (!initrdDue && !firstBootDue) return undefined;
  let plan: RestorePlan | undefined;
  try {
    // The plan names the disks to format: one root did not write is not read.
    if (!trusted(m.plan)) throw new Error(trustProblem(m.plan, 'file'));
    plan = JSON.parse(readFileSync(m.plan, 'utf8')) as RestorePlan;
  } catch (e) {
    log.warn(`the restore's plan (${m.plan}) is missing or untrusted (${(e as Error).message}): only the phases that need no plan can run`);
  }
  const value: RestoreRestingState = initrdDue ? 'awaitingReboot' : 'awaitingFirstBoot';
  log.warn(`no saved restore state: the markers say the restore is ${value}`);
  const backupId = plan?.backupId ?? 'unknown';
  const fallbackPlan: RestorePlan = plan ?? {
    backupId,
    host: config.host,
    created: '',
    size: 0,
    sha256: '',
    recorded: {
      root: { mountPoint: config.paths.root, device: '', fsType: '' },
      boot: { mountPoint: config.paths.boot, device: '', fsType: '' },
      home: { mountPoint: config.paths.home, device: '', fsType: '' },
    },
    devices: {
      root: { role: 'root', mountPoint: config.paths.root, device: '', fsType: '' },
      boot: { role: 'boot', mountPoint: config.paths.boot, device: '', fsType: '' },
      home: { role: 'home', mountPoint: config.paths.home, device: '', fsType: '' },
    },
    grubDisks: config.restore.grub_devices ?? [],
  };
  return restoreMachine.resolveState({
    value,
    context: { current: { restoreId: `recovered-${backupId}`, backupId, startedAt: 0, plan: fallbackPlan }, history: [] },
  }) as AnyMachineSnapshot;
}
