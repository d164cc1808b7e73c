/** The real actors behind the restore machine's phases. Each can run again after a crash. */
import type { InputFrom, OutputFrom } from 'xstate';
import { PHASE_OF_RESTORE_ACTOR, type PhaseInput, type restoreActors } from '../../machines/restore.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { step } from '../steps.js';
import type { Target } from '../targets/target.js';

export interface RestoreDeps {
  config: Config;
  target: Target;
  log: Logger;
}

type Src = keyof typeof restoreActors;

/** The phases as plain async functions: the crash harness wraps them. */
export type RestoreSteps = { [K in Src]: (input: InputFrom<(typeof restoreActors)[K]>) => Promise<OutputFrom<(typeof restoreActors)[K]>> };

export function restoreSteps(d: RestoreDeps): RestoreSteps {
  const { config, target, log } = d;
  const say = (m: string, fields?: Record<string, unknown>) => log.info(fields ?? {}, m);
  return {
    checkBackupReadable: async ({ backupId }) =>
      (await import('../../actors/restore-preflight.js')).planRestore(config, target, backupId, say),
    stopServices: async () =>
      (await import('../../actors/services.js')).stopServicesUsing({
        home: config.paths.home,
        timeoutMs: config.restore.stop_timeout,
        log: say,
      }),
    formatHome: async ({ plan }: PhaseInput) => (await import('../../actors/home-restore.js')).formatHome(config, target, plan, say),
    restoreHome: async ({ plan }: PhaseInput) => (await import('../../actors/home-restore.js')).refillHome(config, target, plan, say),
    writeMarkers: async ({ plan }: PhaseInput) => (await import('../../actors/markers.js')).writeMarkers(config, plan, say),
    restoreSystem: async ({ plan }: PhaseInput) => (await import('../../actors/system-restore.js')).restoreSystem(config, plan, say),
    reinstallGrub: async ({ plan }: PhaseInput) => (await import('../../actors/grub.js')).reinstallGrub(config, plan, say),
    runModuleRestores: async ({ backupId }: PhaseInput) =>
      (await import('../../actors/module-restores.js')).runModuleRestores(config, backupId, say),
    settleDrbd: async () => (await import('../../actors/drbd.js')).settleDrbd(config, say, (m) => log.warn(m)),
    finishRestore: async ({ plan }: PhaseInput) =>
      (await import('../../actors/finish-restore.js')).finishRestore(config, plan, say, (m) => log.warn(m)),
  };
}

export function restoreImplementations(d: RestoreDeps, steps: RestoreSteps = restoreSteps(d)): typeof restoreActors {
  const wrap = <K extends Src>(src: K) => step(PHASE_OF_RESTORE_ACTOR[src], d.log, steps[src]);
  return {
    checkBackupReadable: wrap('checkBackupReadable'),
    stopServices: wrap('stopServices'),
    formatHome: wrap('formatHome'),
    restoreHome: wrap('restoreHome'),
    writeMarkers: wrap('writeMarkers'),
    restoreSystem: wrap('restoreSystem'),
    reinstallGrub: wrap('reinstallGrub'),
    runModuleRestores: wrap('runModuleRestores'),
    settleDrbd: wrap('settleDrbd'),
    finishRestore: wrap('finishRestore'),
  };
}
