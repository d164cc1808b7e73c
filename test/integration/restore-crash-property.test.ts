/**
 * A property over crash points: a restore onto a new machine is killed
 * (SIGKILL to its process group, as a power cut) at one point; the machine
 * "reboots" (no process of the killed run, none of its mounts), and the
 * administrator and the boot hooks go on as status says. Every case ends
 * exactly as an uninterrupted restore (restore-outcome.ts: allWell).
 *
 * Every step point (start / entered / after of every phase the restore
 * machine names) runs on every run; then generated points: a random byte of
 * the preflight's read of the backup, and a random moment inside formatHome
 * (mkfs), restoreHome (xfsrestore), the initrd's restoreSystem (mkfs, rsync)
 * and reinstallGrub (grub-install).
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { processesUsing } from '../../actors/services.js';
import type { RestoreSteps } from '../../src/restore/wiring.js';
import { REPO_ROOT, runCli, SANDBOX_HOST } from '../support/cli.js';
import { readCrashNotes, type CrashNote } from '../support/crash.js';
import { CrashCounts } from '../support/crash-counts.js';
import { destroyAllDisks } from '../support/partitioned-disk.js';
import { RESTORE_STEP_POINT_KINDS, restoreStepPoints, type RestoreCrashPoint } from '../support/restore-crash-points.js';
import {
  buildOldMachine,
  emptyTmp,
  identities,
  installNewMachine,
  markers,
  mountsOf,
  removeWork,
  restoreStatus,
  trees,
  waitUntil,
  type NewMachine,
  type OldMachine,
} from '../support/restore-machines.js';
import { allWell, bootRestoredSystem, expectOk, whatIsWrong } from '../support/restore-outcome.js';
import { destroyAll } from '../support/sandbox.js';

const HARNESS = join(REPO_ROOT, 'dist/test/support/restore-crash-harness.js');
const STAGES = ['restore', 'resume-initrd', 'resume'] as const;
type Stage = (typeof STAGES)[number];
/** Which command runs which phase: what the administrator and the boot hooks do, written here, not taken from the code. */
const STAGE_OF: Record<keyof RestoreSteps, Stage> = {
  checkBackupReadable: 'restore',
  stopServices: 'restore',
  formatHome: 'restore',
  restoreHome: 'restore',
  writeMarkers: 'restore',
  restoreSystem: 'resume-initrd',
  reinstallGrub: 'resume',
  runModuleRestores: 'resume',
  settleDrbd: 'resume',
  finishRestore: 'resume',
};
/** The phases that run long programs, and how many random moments inside each per run. */
const DURING: Partial<Record<keyof RestoreSteps, number>> = { formatHome: 2, restoreHome: 2, restoreSystem: 2, reinstallGrub: 2 };
/** Random bytes of the preflight's read per run. */
const IN_READ = 2;

let oldPending: Promise<OldMachine> | undefined;
let cases = 0;
const started = Date.now();
const stepCounts = new CrashCounts(RESTORE_STEP_POINT_KINDS);
const generatedCounts = new CrashCounts(['inRead', ...Object.keys(DURING).map((s) => `during ${s}`)]);
/** Moments that came after their phase was over: the run went on and ended by itself. */
let duringTooLate = 0;
/** How long each phase's body took, from its "after" point: moments inside it are picked within that. */
const phaseMs = new Map<string, number>();

// Built on first use, not in beforeAll, so a missing tool fails every test instead of skipping them.
function oldMachine(): Promise<OldMachine> {
  oldPending ??= buildOldMachine();
  return oldPending;
}

afterAll(async () => {
  console.info(
    `restore crash points run: ${stepCounts.describe('step points')}, ${generatedCounts.describe('generated')}; ` +
      `${duringTooLate} of the moments inside a phase came after it was over; ${cases} restores in ${Math.round((Date.now() - started) / 1000)} s`,
  );
  await destroyAllDisks();
  await destroyAll();
  const old = await oldPending?.catch(() => undefined);
  if (old) await removeWork(old);
});

async function runStage(m: NewMachine, stage: Stage): Promise<void> {
  if (stage === 'restore') expectOk('restore', await runCli(m.config, ['restore', '--confirm', SANDBOX_HOST]));
  if (stage === 'resume-initrd') {
    expectOk('resume --initrd', await runCli(m.initrdConfig, ['resume', '--initrd'], { env: { TMPDIR: m.tmp } }));
    await bootRestoredSystem(m);
  }
  if (stage === 'resume') expectOk('resume', await runCli(m.config, ['resume']));
}

/**
 * What a reboot after a power cut leaves: no process of the killed run, none
 * of its mounts. Killed in the initrd, the next boot's premount hook runs
 * `resume --initrd` again before / and /boot are mounted (a half-made file
 * system there would not mount).
 */
async function reboot(m: NewMachine, killedIn: Stage): Promise<void> {
  await waitUntil('the killed run to leave the machine', async () => (await processesUsing(m.dir)).length === 0, 30_000, 50);
  const inInitrd = killedIn === 'resume-initrd';
  for (const v of [m.root, m.boot, m.home]) {
    for (const at of await mountsOf(v.device)) if (at !== v.mountPoint || (inInitrd && v !== m.home)) await execa('umount', [at]);
  }
  await emptyTmp(m.tmp);
  if (inInitrd) await runStage(m, 'resume-initrd');
  else await bootRestoredSystem(m);
}

/** Kills one restore at the point, reboots, goes on as status says, and checks the end. Returns where it died, if it did. */
async function crashThenFinish(crash: RestoreCrashPoint): Promise<CrashNote | undefined> {
  const where = JSON.stringify(crash);
  const old = await oldMachine();
  const machine = await installNewMachine(old, `crash-${++cases}`);
  try {
    const crashStage: Stage = crash.kind === 'inRead' ? 'restore' : STAGE_OF[crash.step];
    for (const stage of STAGES.slice(0, STAGES.indexOf(crashStage))) await runStage(machine, stage);
    const config = crashStage === 'resume-initrd' ? machine.initrdConfig : machine.config;
    const crashLog = join(machine.dir, 'crash-notes.jsonl');
    const killed = await execa(process.execPath, [HARNESS, config, crashStage, where], {
      reject: false,
      stdin: 'ignore',
      // Its own process group: the harness kills itself with mkfs, xfsrestore, rsync or grub-install.
      detached: true,
      env: { TMPDIR: machine.tmp, SYN3_CRASH_LOG: crashLog },
    });
    const notes = readCrashNotes(await readFile(crashLog, 'utf8').catch(() => ''));
    await rm(crashLog, { force: true });
    // A moment inside a phase may come after the phase is over: then the run simply went on.
    if (crash.kind !== 'during' || killed.signal) {
      expect(killed.signal, `the harness died at ${where}: ${killed.stdout} ${killed.stderr}`).toBe('SIGKILL');
      expect(
        notes.map((n) => n.at),
        where,
      ).toEqual([crash.kind]);
    } else {
      expect(killed.exitCode, `${where} ran on: ${killed.stderr}`).toBe(0);
    }
    await reboot(machine, crashStage);
    // Go on as status tells: start again, resume, or let the initrd run.
    for (let i = 0; i < 8; i++) {
      const s = await restoreStatus(machine.config);
      if (s?.state === 'done') break;
      if (!s || s.state === 'idle') await runStage(machine, 'restore');
      else if (s.state === 'awaitingReboot' || s.state === 'initrd' || s.failedPhase === 'initrd') await runStage(machine, 'resume-initrd');
      else await runStage(machine, 'resume');
    }
    const r = {
      machine,
      trees: await trees(machine),
      ids: await identities(machine),
      after: await markers(machine),
      mbr: await machine.bootDisk.readMbr(),
    };
    expect(await whatIsWrong(old, r), where).toEqual(allWell(old));
    return notes[0];
  } finally {
    await machine.destroy();
  }
}

describe('a restore killed at any point', () => {
  it('every step point: ends exactly as an uninterrupted restore', async () => {
    const points = restoreStepPoints();
    for (const point of points) {
      const note = await crashThenFinish(point);
      stepCounts.add(note?.at ?? 'none');
      if (note?.at === 'after' && note.ms !== undefined && 'step' in point) phaseMs.set(point.step, note.ms);
    }
    console.info(`restore crash points run: ${stepCounts.describe('step points')}`);
    expect(stepCounts.total).toBe(points.length);
    for (const kind of RESTORE_STEP_POINT_KINDS) expect(stepCounts.of(kind)).toBe(points.length / RESTORE_STEP_POINT_KINDS.length);
  }, 1_200_000);

  it('generated points inside the preflight read and the long phases: the same', async () => {
    // The preflight's read of the backup, cut at a random byte.
    const readPoint = fc.integer({ min: 1, max: 2_000_000 }).map((bytes): RestoreCrashPoint => ({ kind: 'inRead', open: 1, bytes }));
    await fc.assert(
      fc.asyncProperty(readPoint, async (point) => {
        await crashThenFinish(point);
        generatedCounts.add('inRead');
      }),
      { numRuns: IN_READ, endOnFailure: true },
    );
    for (const [step, numRuns] of Object.entries(DURING) as Array<[keyof RestoreSteps, number]>) {
      // A random moment within the phase's measured length (1.5 s if it was not measured).
      const length = phaseMs.get(step) ?? 1500;
      const duringPoint = fc
        .double({ min: 0.05, max: 0.9, noNaN: true })
        .map((f): RestoreCrashPoint => ({ kind: 'during', step, ms: Math.max(1, Math.round(f * length)) }));
      await fc.assert(
        fc.asyncProperty(duringPoint, async (point) => {
          if (!(await crashThenFinish(point))) duringTooLate++;
          generatedCounts.add(`during ${step}`);
        }),
        { numRuns, endOnFailure: true },
      );
    }
    const lengths = [...phaseMs].filter(([s]) => s in DURING).map(([s, ms]) => `${s} ${ms} ms`);
    console.info(
      `restore crash points run: ${generatedCounts.describe('generated')}; ${duringTooLate} came after their phase was over (phases: ${lengths.join(', ')})`,
    );
    expect(generatedCounts.total).toBeGreaterThanOrEqual(8);
  }, 900_000);
});
