/** The real actors behind the restore machine's phases. Each can run again after a crash. */
import type { PhaseInput } from '../../machines/restore.js';
import { restoreActors } from '../../machines/restore.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { step } from '../steps.js';
import type { Target } from '../targets/target.js';

export interface RestoreDeps {
  config: Config;
  target: Target;
  log: Logger;
}

export function restoreImplementations(d: RestoreDeps): typeof restoreActors {
  const { config, target, log } = d;
  const say = (m: string) => log.info(m);
  return {
    checkBackupReadable: step('preflight', log, async ({ backupId }: { restoreId: string; backupId: string }) =>
      (await import('../../actors/restore-preflight.js')).planRestore(config, target, backupId),
    ),
    stopServices: step('stopServices', log, async () =>
      (await import('../../actors/services.js')).stopServicesUsing({ home: config.paths.home, timeoutMs: config.restore.stop_timeout, log: say }),
    ),
    formatHome: step('formatHome', log, async ({ plan }: PhaseInput) => (await import('../../actors/home-restore.js')).formatHome(config, plan, say)),
    restoreHome: step('restoreHome', log, async ({ plan }: PhaseInput) => (await import('../../actors/home-restore.js')).refillHome(config, target, plan, say)),
    writeMarkers: step('markers', log, async ({ plan }: PhaseInput) => (await import('../../actors/markers.js')).writeMarkers(config, plan, say)),
    restoreSystem: step('initrd', log, async ({ plan }: PhaseInput) => (await import('../../actors/system-restore.js')).restoreSystem(config, plan, say)),
    reinstallGrub: step('grub', log, async ({ plan }: PhaseInput) => (await import('../../actors/grub.js')).reinstallGrub(config, plan, say)),
    runModuleRestores: step('moduleRestores', log, async ({ backupId }: PhaseInput) =>
      (await import('../../actors/module-restores.js')).runModuleRestores(config, backupId, say),
    ),
    settleDrbd: step('drbd', log, async () => (await import('../../actors/drbd.js')).settleDrbd(config, say)),
    finishRestore: step('finish', log, async ({ backupId }: PhaseInput) => (await import('../../actors/finish-restore.js')).finishRestore(config, say, backupId)),
  };
}
