/**
 * Runs one backup like `syn3-backup backup`, but kills its own process with
 * SIGKILL at a chosen point: at the start of a step, once its state was saved,
 * right after a step's side effect (before the machine records it), or after
 * N bytes of the dump have reached the target.
 *
 *   node dist/test/support/crash-harness.js <config.yaml> '<crash point JSON>'
 */
import type { Readable } from 'node:stream';
import { backupSteps, type BackupSteps } from '../../src/backup/wiring.js';
import { runBackup } from '../../src/backup/run.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger, newRunId } from '../../src/log.js';
import { createTarget } from '../../src/targets/index.js';
import type { Target } from '../../src/targets/target.js';
import { crashingSteps, dyingAfter, type StepCrash } from './crash.js';

export type CrashPoint = StepCrash<keyof BackupSteps> | { kind: 'inDump'; bytes: number };

function crashingTarget(target: Target, bytes: number): Target {
  const write = target.write.bind(target);
  return Object.assign(Object.create(target) as Target, { write: (id: string, source: Readable) => write(id, dyingAfter(source, bytes)) });
}

async function main(): Promise<void> {
  const [configFile, crashJson] = process.argv.slice(2);
  const config = loadConfig(configFile);
  const crash = JSON.parse(crashJson ?? '{}') as CrashPoint;
  const runId = newRunId();
  const log = createLogger({ stateDir: config.paths.state, format: 'json', quiet: true, runId, command: 'crash-harness' });
  const base = await createTarget(config.target);
  const target = crash.kind === 'inDump' ? crashingTarget(base, crash.bytes) : base;
  const outcome = await runBackup({
    config,
    log,
    kind: 'backup',
    runId,
    target,
    steps: (t) => crashingSteps(backupSteps({ config, target: t, log }), crash),
  });
  process.stdout.write(`${JSON.stringify(outcome)}\n`);
}

await main();
