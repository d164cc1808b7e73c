/**
 * Runs one backup like `syn3-backup backup`, but kills its own process group
 * with SIGKILL at a chosen point (see backup-crash-points.ts): at the start
 * of a step, once its state was saved, right after a step's side effect, or
 * inside the dump, the read-back, publish or retention. With `broken`, one
 * step is deliberately wrong, to show the property can fail.
 *
 *   node dist/test/support/crash-harness.js <config.yaml> '<BackupCrashRequest JSON>'
 */
import { join } from 'node:path';
import { runBackup } from '../../src/backup/run.js';
import { backupSteps, type BackupSteps } from '../../src/backup/wiring.js';
import type { Config } from '../../src/config/schema.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger, newRunId } from '../../src/log.js';
import { createTarget } from '../../src/targets/index.js';
import type { Target } from '../../src/targets/target.js';
import type { BackupCrashPoint, BackupCrashRequest, BrokenStep } from './backup-crash-points.js';
import { crashingSteps, die, dyingAfter, dyingWhenFileReaches } from './crash.js';

/**
 * The target's methods, delegated one by one: an Object.create() wrapper
 * would inherit localWrite, and a dump written directly to the file would
 * never pass the wrapped write.
 */
function delegating(t: Target): Target {
  return {
    description: t.description,
    check: () => t.check(),
    write: (id, source) => t.write(id, source),
    ...(t.localWrite ? { localWrite: (id: string) => t.localWrite!(id) } : {}),
    openPending: (id) => t.openPending(id),
    commit: (id, metadata) => t.commit(id, metadata),
    list: () => t.list(),
    open: (id) => t.open(id),
    ...(t.localPath ? { localPath: (id: string) => t.localPath!(id) } : {}),
    remove: (id) => t.remove(id),
    cleanPending: (keep) => t.cleanPending(keep),
  };
}

function crashingTarget(base: Target, point: BackupCrashPoint): Target {
  const t = delegating(base);
  switch (point.kind) {
    case 'inDumpStream': {
      // No localWrite: the dump goes through this process, as to every target but the file.
      const { localWrite: _direct, ...streaming } = t;
      return { ...streaming, write: (id, source) => base.write(id, dyingAfter(source, point.bytes, 'inDumpStream')) };
    }
    case 'inReadBack':
      return { ...t, openPending: async (id) => dyingAfter(await base.openPending(id), point.bytes, 'inReadBack') };
    case 'inPublishAfterCommit':
      return {
        ...t,
        commit: async (id, metadata) => {
          await base.commit(id, metadata);
          die({ at: 'inPublishAfterCommit' });
        },
      };
    case 'inRetention':
      if (point.at === 'afterFirstRemove') {
        return {
          ...t,
          remove: async (id) => {
            await base.remove(id);
            die({ at: 'inRetention afterFirstRemove' });
          },
        };
      }
      return {
        ...t,
        cleanPending: (keep) => {
          // Its removals are under way in the thread pool when the process goes.
          void base.cleanPending(keep);
          return new Promise(() => setImmediate(() => die({ at: 'inRetention inCleanPending' })));
        },
      };
    default:
      return t;
  }
}

/** The pending dump file of the file target (its documented layout: <path>/.incoming/<id>/home.xfsdump). */
function pendingDumpFile(config: Config, id: string): string {
  if (config.target.type !== 'file') throw new Error('inDumpFile needs the file target');
  return join(config.target.path, '.incoming', id, 'home.xfsdump');
}

/** The dump step, dying once its file reaches N bytes; if the dump ends first, it dies at the end, still inside the step. */
function dyingInDumpFile(steps: BackupSteps, config: Config, bytes: number): BackupSteps {
  return {
    ...steps,
    dumpHome: async (input) => {
      const watch = dyingWhenFileReaches(pendingDumpFile(config, input.runId), bytes, 'inDumpFile');
      await steps.dumpHome(input);
      die({ at: 'inDumpFile at the end', bytes: watch.stop() });
    },
  };
}

/**
 * retentionBeforePublish: the dump step first retires what retention would
 * once the new backup counts, before that backup exists. Every run that
 * completes ends as a correct one; a run killed before publish has lost a
 * good backup for nothing.
 */
function brokenSteps(steps: BackupSteps, broken: BrokenStep, config: Config, target: Target): BackupSteps {
  if (broken !== 'retentionBeforePublish') return steps;
  return {
    ...steps,
    dumpHome: async (input) => {
      const mine = (await target.list()).filter((b) => b.metadata.host === config.host);
      const retire = mine.slice(0, Math.max(0, mine.length + 1 - config.target.retention.keep));
      for (const b of retire) await target.remove(b.id);
      return steps.dumpHome(input);
    },
  };
}

async function main(): Promise<void> {
  const [configFile, requestJson] = process.argv.slice(2);
  const config = loadConfig(configFile);
  const { point, broken } = JSON.parse(requestJson ?? '{}') as BackupCrashRequest;
  const runId = newRunId();
  const log = createLogger({ stateDir: config.paths.state, format: 'json', quiet: true, runId, command: 'crash-harness' });
  const base = await createTarget(config.target);
  const target = crashingTarget(base, point);
  const outcome = await runBackup({
    config,
    log,
    kind: 'backup',
    runId,
    target,
    steps: (t) => {
      // The broken step talks to the plain target: its removals are not crash points.
      let steps = backupSteps({ config, target: t, log });
      if (broken) steps = brokenSteps(steps, broken, config, base);
      steps = crashingSteps(steps, point);
      return point.kind === 'inDumpFile' ? dyingInDumpFile(steps, config, point.bytes) : steps;
    },
  });
  process.stdout.write(`${JSON.stringify(outcome)}\n`);
}

await main();
