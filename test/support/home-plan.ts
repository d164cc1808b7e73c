/** A restore plan for the steps that act on /home alone: every role on the one test volume, /home's recorded identity as given. */
import type { RestorePlan } from '../../machines/restore-types.js';
import type { FsIdentity } from '../../machines/types.js';

export function homeOnlyPlan(home: string, device: string, uuidBefore: string, recordedHome: Partial<FsIdentity> = {}): RestorePlan {
  const ref = { mountPoint: home, device, fsType: 'xfs' };
  return {
    backupId: 'b1',
    host: 'h',
    created: '',
    size: 0,
    sha256: '',
    recorded: { root: ref, boot: ref, home: { ...ref, ...recordedHome } },
    devices: { root: { role: 'root', ...ref }, boot: { role: 'boot', ...ref }, home: { role: 'home', ...ref, uuidBefore } },
    grubDisks: [],
  } as RestorePlan;
}
