/**
 * Runs one backup like `syn3-backup backup`, but kills its own process with
 * SIGKILL at a chosen point: at the start of a step, right after a step's side
 * effect (before the machine records it), or after N bytes of the dump have
 * reached the target. Nothing is cleaned up, as after a real power cut.
 *
 *   node dist/test/support/crash-harness.js <config.yaml> '<crash point JSON>'
 */
import { PassThrough, Transform, type Readable } from 'node:stream';
import { backupSteps, type BackupSteps } from '../../src/backup/wiring.js';
import { runBackup } from '../../src/backup/run.js';
import { loadConfig } from '../../src/config/load.js';
import { createLogger, newRunId } from '../../src/log.js';
import { createTarget } from '../../src/targets/index.js';
import type { Target } from '../../src/targets/target.js';

export type CrashPoint =
  | { kind: 'start'; step: keyof BackupSteps }
  | { kind: 'entered'; step: keyof BackupSteps }
  | { kind: 'after'; step: keyof BackupSteps }
  | { kind: 'inDump'; bytes: number };

function die(): never {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
}

function crashingSteps(steps: BackupSteps, crash: CrashPoint): BackupSteps {
  const wrapped = { ...steps } as Record<keyof BackupSteps, (input: never) => Promise<unknown>>;
  for (const name of Object.keys(steps) as Array<keyof BackupSteps>) {
    const body = steps[name] as (input: never) => Promise<unknown>;
    wrapped[name] = async (input: never) => {
      if (crash.kind !== 'inDump' && crash.step === name) {
        if (crash.kind === 'start') die();
        if (crash.kind === 'entered') {
          await new Promise((r) => setTimeout(r, 20));
          die();
        }
      }
      const out = await body(input);
      if (crash.kind === 'after' && crash.step === name) die();
      return out;
    };
  }
  return wrapped as unknown as BackupSteps;
}

/** A target whose writes die after `bytes` bytes, as if the machine lost power mid-dump. */
function crashingTarget(target: Target, bytes: number): Target {
  const write = target.write.bind(target);
  return Object.assign(Object.create(target) as Target, {
    write: (id: string, source: Readable) => {
      let seen = 0;
      const cut = new Transform({
        transform(chunk: Buffer, _enc, done) {
          seen += chunk.length;
          if (seen >= bytes) {
            // Let what came before reach the file, then die.
            this.push(chunk.subarray(0, chunk.length - (seen - bytes)));
            setTimeout(die, 20);
            return;
          }
          done(null, chunk);
        },
      });
      return write(id, source.pipe(cut).pipe(new PassThrough()));
    },
  });
}

async function main(): Promise<void> {
  const [configFile, crashJson] = process.argv.slice(2);
  const config = loadConfig(configFile);
  const crash = JSON.parse(crashJson ?? '{}') as CrashPoint;
  const runId = newRunId();
  const log = createLogger({ stateDir: config.paths.state, format: 'json', quiet: true, runId, command: 'crash-harness' });
  const base = createTarget(config.target);
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
