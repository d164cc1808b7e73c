/**
 * Runs one restore command (restore, resume, resume --initrd) like the CLI,
 * but kills its own process group with SIGKILL at a chosen point (see
 * restore-crash-points.ts): at the start of a phase, once its state was
 * saved, N ms into it, right after its side effect, or after N bytes of the
 * n-th read of the backup (1: the preflight's).
 *
 *   node dist/test/support/restore-crash-harness.js <config.yaml> <restore|resume|resume-initrd> '<crash JSON>'
 */
import { loadConfig } from '../../src/config/load.js';
import { createLogger, newRunId } from '../../src/log.js';
import { runRestore } from '../../src/restore/run.js';
import { restoreSteps } from '../../src/restore/wiring.js';
import type { Target } from '../../src/targets/target.js';
import { crashingSteps, dyingAfter } from './crash.js';
import type { RestoreCrashPoint } from './restore-crash-points.js';

function crashingReads(target: Target, open: number, bytes: number): Target {
  const openBackup = target.open.bind(target);
  let opened = 0;
  return Object.assign(Object.create(target) as Target, {
    open: async (id: string) => {
      const stream = await openBackup(id);
      return ++opened === open ? dyingAfter(stream, bytes, 'inRead') : stream;
    },
  });
}

async function main(): Promise<void> {
  const [configFile, command, crashJson] = process.argv.slice(2);
  const config = loadConfig(configFile);
  const crash = JSON.parse(crashJson ?? '{}') as RestoreCrashPoint;
  const runId = newRunId();
  const log = createLogger({ stateDir: config.paths.state, format: 'json', quiet: true, runId, command: `crash-harness ${command}` });
  const backupId =
    (await (await (await import('../../src/targets/index.js')).createTarget(config.target)).list())
      .filter((b) => b.metadata.host === config.host)
      .at(-1)?.id ?? '';
  const outcome = await runRestore(
    config,
    log,
    command ?? 'resume',
    (s) => {
      if (command === 'restore') return { type: 'CONFIRM_RESTORE', now: Date.now(), restoreId: runId, backupId };
      if (['idle', 'done'].includes(String(s.value))) return undefined;
      return { type: 'RESUME', now: Date.now(), inInitrd: command === 'resume-initrd' };
    },
    (deps) => {
      const target = crash.kind === 'inRead' ? crashingReads(deps.target, crash.open, crash.bytes) : deps.target;
      return crashingSteps(restoreSteps({ ...deps, target }), crash);
    },
  );
  process.stdout.write(`${JSON.stringify(outcome.result === 'rested' ? { state: outcome.state } : outcome)}\n`);
}

await main();
