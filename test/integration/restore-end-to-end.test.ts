// The whole disaster recovery on real XFS and a real boot disk. An "old
// machine" (a sandbox with a rich /home, a database module and paths.state on
// its root) is backed up with `tick` and then lost. A "new machine" (fresh
// loop volumes with other labels and UUIDs; /boot on the first partition of a
// partitioned loop disk) is restored from the target with the commands the
// administrator and the boot hooks run:
//   restore --confirm HOST   (then the administrator reboots)
//   resume --initrd          (the initrd: / and /boot come back)
//   resume                   (the first boot: GRUB, module restores, DRBD)
// and must then hold what the old machine held, with its labels and UUIDs.
import { access, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { processesUsing } from '../../actors/services.js';
import type { RestoreSteps } from '../../src/restore/wiring.js';
import { REPO_ROOT, runCli, SANDBOX_HOST, type CliResult } from '../support/cli.js';
import type { RestoreCrashPoint } from '../support/restore-crash-harness.js';
import { destroyAllDisks, probeFs } from '../support/partitioned-disk.js';
import {
  buildOldMachine,
  emptyTmp,
  identities,
  installNewMachine,
  markers,
  mountsOf,
  powerCut,
  PROOF,
  removeWork,
  restoreStatus,
  savedRestoreState,
  startInitrd,
  STATE_IN_ROOT,
  SYSTEM_COPY,
  trees,
  waitUntil,
  type Identities,
  type NewMachine,
  type OldMachine,
  type RestoreStatus,
  type Trees,
} from '../support/restore-machines.js';
import { destroyAll } from '../support/sandbox.js';
import { diffTrees, XFSRESTORE_LOSSES } from '../support/tree-compare.js';

const TIMEOUT = 180_000;
/** What grub-install adds to /boot next to the restored files. */
const GRUB_ADDED = ['grub/i386-pc', 'grub/fonts', 'grub/locale'];
/**
 * Directories whose mtime tells that the restore wrote there: a marker written
 * and removed again (the spool marker; drbd.primary in the system copy and in
 * /boot), grub/ in /boot, which grub-install adds to, and the root's boot/,
 * which shares one directory with /boot's top in the system copy.
 */
const TOUCHED_DIRS = { home: ['system/spool', `${SYSTEM_COPY}/boot`], root: ['boot'], boot: ['.', 'grub'] };
/**
 * The initrd phase runs with the system copy's paths.state (see
 * NewMachine.initrdConfig): its log, lock and restore state are written there,
 * as on a real server.
 */
const INITRD_STATE = `${SYSTEM_COPY}/${STATE_IN_ROOT}`;
/** The system copy came through xfsdump, which keeps no symlink mtimes: neither do / and /boot made from it. */
const FROM_THE_COPY = { ignoreSymlinkMtime: true };

let oldPending: Promise<OldMachine> | undefined;

// Built on first use, not in beforeAll, so a missing tool fails every test instead of skipping them.
function oldMachine(): Promise<OldMachine> {
  oldPending ??= buildOldMachine();
  return oldPending;
}

afterAll(async () => {
  await destroyAllDisks();
  await destroyAll();
  const old = await oldPending?.catch(() => undefined);
  if (old) await removeWork(old);
});

/** diffTrees, minus the mtime of directories the restore legitimately wrote to. */
function differences(a: Trees[keyof Trees], b: Trees[keyof Trees], touched: string[], opts = XFSRESTORE_LOSSES): string[] {
  const ignored = touched.map((d) => `${JSON.stringify(d)}: mtime `);
  return diffTrees(a, b, opts).filter((line) => !ignored.some((prefix) => line.startsWith(prefix)));
}

interface Restored {
  machine: NewMachine;
  restore: CliResult;
  afterRestore: Awaited<ReturnType<typeof markers>>;
  stateAfterRestore: string | undefined;
  resumeTooEarly: CliResult;
  restoreAgain: CliResult;
  initrd: CliResult;
  /** GRUB in the MBR and /boot right after the initrd phase, before post.restore. */
  bootCodeAfterInitrd: { grubInMbr: boolean; grubCore: boolean };
  stateAfterInitrd: string | undefined;
  firstBoot: CliResult;
  again: CliResult;
  trees: Trees;
  ids: Identities;
  after: Awaited<ReturnType<typeof markers>>;
  mbr: Buffer;
}

/** What a variant does differently: how the initrd phase runs, and what happens before each boot phase. */
interface Variant {
  beforeInitrd?: (m: NewMachine) => Promise<void>;
  initrd?: (m: NewMachine) => Promise<CliResult>;
  beforeFirstBoot?: (m: NewMachine) => Promise<void>;
}

function expectOk(step: string, r: CliResult): void {
  if (r.exitCode !== 0) throw new Error(`${step} failed (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
}

/**
 * The restored system boots: / and /boot are mounted where they belong. The
 * initrd phase leaves them so when it found them so (the sandbox); after a
 * power cut the test finds them unmounted, as a real initrd would.
 */
async function bootRestoredSystem(m: NewMachine): Promise<void> {
  for (const v of [m.root, m.boot]) {
    if (!(await mountsOf(v.device)).includes(v.mountPoint)) await execa('mount', ['-t', 'xfs', v.device, v.mountPoint]);
  }
}

/** The whole restore onto a fresh new machine, recording what each command said and left. */
async function restoreOnto(name: string, variant: Variant = {}): Promise<Restored> {
  const old = await oldMachine();
  const machine = await installNewMachine(old, name);
  try {
    return await runRestore(machine, variant);
  } catch (error) {
    // Its volumes carry the old machine's UUIDs now: they must go before the next new machine mounts its own.
    await machine.destroy();
    throw error;
  }
}

async function runRestore(machine: NewMachine, variant: Variant): Promise<Restored> {
  const restore = await runCli(machine.config, ['restore', '--confirm', SANDBOX_HOST]);
  expectOk('restore', restore);
  const afterRestore = await markers(machine);
  const stateAfterRestore = (await restoreStatus(machine.config))?.state;
  const resumeTooEarly = await runCli(machine.config, ['resume']);
  const restoreAgain = await runCli(machine.config, ['restore', '--confirm', SANDBOX_HOST]);
  await variant.beforeInitrd?.(machine);
  const initrd = await (variant.initrd ?? ((m) => runCli(m.initrdConfig, ['resume', '--initrd'])))(machine);
  expectOk('resume --initrd', initrd);
  const bootCodeAfterInitrd = {
    grubInMbr: (await machine.bootDisk.readMbr()).includes('GRUB'),
    grubCore: await access(join(machine.boot.mountPoint, 'grub/i386-pc/core.img')).then(
      () => true,
      () => false,
    ),
  };
  await bootRestoredSystem(machine);
  const stateAfterInitrd = (await restoreStatus(machine.config))?.state;
  await variant.beforeFirstBoot?.(machine);
  const firstBoot = await runCli(machine.config, ['resume']);
  expectOk('resume', firstBoot);
  const again = await runCli(machine.config, ['resume']);
  return {
    machine,
    restore,
    afterRestore,
    stateAfterRestore,
    resumeTooEarly,
    restoreAgain,
    initrd,
    bootCodeAfterInitrd,
    stateAfterInitrd,
    firstBoot,
    again,
    trees: await trees(machine),
    ids: await identities(machine),
    after: await markers(machine),
    mbr: await machine.bootDisk.readMbr(),
  };
}

function withoutPaths(tree: Trees[keyof Trees], drop: (path: string) => boolean): Trees[keyof Trees] {
  return new Map([...tree].filter(([p]) => !drop(p)));
}

const inInitrdState = (p: string) => p === INITRD_STATE || p.startsWith(`${INITRD_STATE}/`);
const addedByGrub = (p: string) => GRUB_ADDED.some((g) => p === g || p.startsWith(`${g}/`));

/** Differences of the restored /home from the old one, beyond what the restore writes there by design. */
function homeDifferences(old: OldMachine, r: Restored): string[] {
  const home = withoutPaths(r.trees.home, (p) => p === PROOF || inInitrdState(p));
  return differences(withoutPaths(old.trees.home, inInitrdState), home, TOUCHED_DIRS.home);
}

function rootDifferences(old: OldMachine, r: Restored): string[] {
  return differences(old.trees.root, r.trees.root, TOUCHED_DIRS.root, FROM_THE_COPY);
}

function bootDifferences(old: OldMachine, r: Restored): string[] {
  return differences(old.trees.boot, withoutPaths(r.trees.boot, addedByGrub), TOUCHED_DIRS.boot, FROM_THE_COPY);
}

const NO_MARKERS = {
  spool: false,
  system: false,
  drbdInCopy: false,
  drbdInBoot: false,
  postRestoreExecutable: false,
  copyPostRestoreExecutable: false,
  restoreDir: false,
  plan: false,
  pendingInitrd: false,
};

/** Everything a finished restore must show, in one record to compare with allWell(). */
async function whatIsWrong(old: OldMachine, r: Restored): Promise<Record<string, unknown>> {
  const proof = await readFile(join(r.machine.home.mountPoint, PROOF), 'utf8').catch(() => '(missing)');
  const status = await restoreStatus(r.machine.config);
  return {
    home: homeDifferences(old, r),
    root: rootDifferences(old, r),
    boot: bootDifferences(old, r),
    ids: r.ids,
    grubInMbr: r.mbr.includes('GRUB') && r.mbr.readUInt16BE(510) === 0x55aa,
    grubCore: await access(join(r.machine.boot.mountPoint, 'grub/i386-pc/core.img')).then(
      () => true,
      () => false,
    ),
    proof,
    markers: r.after,
    restore: { state: status?.state, result: status?.last?.result, backupId: status?.last?.backupId },
  };
}

function allWell(old: OldMachine): Record<string, unknown> {
  return {
    home: [],
    root: [],
    boot: [],
    ids: old.ids,
    grubInMbr: true,
    grubCore: true,
    proof: old.dump,
    markers: NO_MARKERS,
    restore: { state: 'done', result: 'restored', backupId: old.backup.id },
  };
}

describe('restore onto a new machine: restore --confirm, resume --initrd, resume', () => {
  let pending: Promise<Restored> | undefined;
  const restored = () => (pending ??= restoreOnto('new-machine'));
  afterAll(async () => (await pending?.catch(() => undefined))?.machine.destroy());

  it(
    'restore --confirm HOST exits 0 and tells the administrator to reboot',
    async () => {
      const { restore } = await restored();
      expect(restore.exitCode).toBe(0);
      expect(restore.stdout).toMatch(/reboot/i);
      expect(restore.stderr).toBe('');
    },
    TIMEOUT,
  );

  it(
    'restore leaves the seed markers and the plan, and the machine waiting for a reboot',
    async () => {
      const { afterRestore, stateAfterRestore } = await restored();
      expect(afterRestore).toEqual({
        spool: true,
        system: true,
        drbdInCopy: true,
        drbdInBoot: false,
        postRestoreExecutable: true,
        copyPostRestoreExecutable: true,
        restoreDir: true,
        plan: true,
        pendingInitrd: true,
      });
      expect(stateAfterRestore).toBe('awaitingReboot');
    },
    TIMEOUT,
  );

  it(
    'resume without --initrd before the reboot does nothing and exits 0',
    async () => {
      const { resumeTooEarly } = await restored();
      expect(resumeTooEarly.exitCode).toBe(0);
      expect(resumeTooEarly.stdout).toMatch(/nothing to resume/i);
    },
    TIMEOUT,
  );

  it(
    'a second restore while the first waits for the reboot is refused with exit 2, naming it',
    async () => {
      const old = await oldMachine();
      const { restoreAgain, afterRestore } = await restored();
      expect(restoreAgain.exitCode).toBe(2);
      expect(restoreAgain.stderr).toMatch(/already in progress \(awaitingReboot\)/);
      expect(restoreAgain.stderr).toContain(old.backup.id);
      expect(afterRestore.pendingInitrd).toBe(true);
    },
    TIMEOUT,
  );

  it(
    'resume --initrd puts / and /boot back and leaves the machine waiting for its first boot',
    async () => {
      const { initrd, stateAfterInitrd } = await restored();
      expect(initrd.exitCode).toBe(0);
      expect(stateAfterInitrd).toBe('awaitingFirstBoot');
    },
    TIMEOUT,
  );

  it(
    'resume at the first boot finishes the restore, and says from which backup',
    async () => {
      const old = await oldMachine();
      const { firstBoot } = await restored();
      expect(firstBoot.exitCode).toBe(0);
      expect(firstBoot.stdout).toContain(`restored from backup ${old.backup.id}`);
    },
    TIMEOUT,
  );

  it(
    'resume once more finds nothing to do and exits 0',
    async () => {
      const { again } = await restored();
      expect(again.exitCode).toBe(0);
      expect(again.stdout).toMatch(/nothing to resume/i);
    },
    TIMEOUT,
  );

  it(
    'brings /home back as it was at the backup: content, modes, owners, ACLs, xattrs, hard links, sparseness, mtimes, the system copy',
    async () => {
      const old = await oldMachine();
      const r = await restored();
      expect(homeDifferences(old, r)).toEqual([]);
      const home = r.trees.home;
      expect(home.has('installer/notes.txt')).toBe(false);
      // The comparison is only as good as what it saw: the rich tree and the system copy.
      expect(home.get('acl/inherit')?.defaultAcl.length).toBeGreaterThan(0);
      expect(home.get('sparse/holes.img')?.sparse).toBe(true);
      expect(home.get(`${SYSTEM_COPY}/usr/bin/syn3-ping`)?.xattrs['security.capability']).toBeDefined();
    },
    TIMEOUT,
  );

  it(
    'brings / back as it was at the backup, without the runtime junk of /tmp and /run',
    async () => {
      const old = await oldMachine();
      const r = await restored();
      expect(rootDifferences(old, r)).toEqual([]);
      expect(r.trees.root.get('usr/bin/syn3-ping')?.xattrs['security.capability']).toBeDefined();
      expect(await readFile(join(r.machine.root.mountPoint, 'etc/hostname'), 'utf8')).toBe('sandbox-host\n');
    },
    TIMEOUT,
  );

  it(
    'brings /boot back as it was at the backup, next to the GRUB files grub-install adds',
    async () => {
      const old = await oldMachine();
      const r = await restored();
      expect(bootDifferences(old, r)).toEqual([]);
      expect(r.trees.boot.get('vmlinuz')?.type).toBe('symlink');
      expect(r.trees.boot.has('vmlinuz-fresh')).toBe(false);
    },
    TIMEOUT,
  );

  it(
    'gives /, /boot and /home the labels and UUIDs they had at the backup',
    async () => {
      const old = await oldMachine();
      const { ids } = await restored();
      expect(ids).toEqual(old.ids);
      expect(old.ids.root.uuid).toBeDefined();
      expect(new Set([old.ids.root.label, old.ids.boot.label, old.ids.home.label])).toEqual(new Set(['sbroot', 'sbboot', 'sbhome']));
    },
    TIMEOUT,
  );

  it(
    'installs GRUB into the MBR of the boot disk and its modules into /boot/grub',
    async () => {
      const { mbr, machine } = await restored();
      expect(mbr.includes('GRUB')).toBe(true);
      expect(mbr.subarray(510, 512)).toEqual(Buffer.from([0x55, 0xaa]));
      await access(join(machine.boot.mountPoint, 'grub/i386-pc/core.img'));
      await access(join(machine.boot.mountPoint, 'grub/i386-pc/normal.mod'));
    },
    TIMEOUT,
  );

  it(
    "puts GRUB's boot code back in the initrd phase, so a power cut before post.restore still boots",
    async () => {
      const { bootCodeAfterInitrd } = await restored();
      expect(bootCodeAfterInitrd).toEqual({ grubInMbr: true, grubCore: true });
    },
    TIMEOUT,
  );

  it(
    "runs the database module's restore, which reads back what its backup spooled",
    async () => {
      const old = await oldMachine();
      const { machine } = await restored();
      expect(old.dump).toBe(`db dump of ${old.backup.id}: 42 rows\n`);
      expect(await readFile(join(machine.home.mountPoint, PROOF), 'utf8')).toBe(old.dump);
    },
    TIMEOUT,
  );

  it(
    'removes every marker and working file, and disarms post.restore',
    async () => {
      const { after, machine } = await restored();
      expect(after).toEqual(NO_MARKERS);
      expect((await stat(join(machine.root.mountPoint, 'etc/postinst.d/post.restore'))).isFile()).toBe(true);
    },
    TIMEOUT,
  );

  it(
    'status --json shows the restore done, from the backup, and the backup machine idle',
    async () => {
      const old = await oldMachine();
      const { machine } = await restored();
      expect((await savedRestoreState(machine.state))?.value).toBe('done');
      const r = await runCli(machine.config, ['status', '--json']);
      expect(r.exitCode).toBe(0);
      const report = JSON.parse(r.stdout) as {
        state: string;
        restore: { state: string; last: { result: string; backupId: string }; summary: string };
      };
      expect(report.restore).toMatchObject({ state: 'done', last: { result: 'restored', backupId: old.backup.id } });
      expect(report.restore.summary).toContain(`restored from backup ${old.backup.id}`);
      // The copy was taken while that backup ran; the restored system writes the run off instead of resuming it.
      expect(report.state).toBe('idle');
    },
    TIMEOUT,
  );
});

describe('a resume --initrd killed with SIGKILL once the new root is formatted, then run again', () => {
  let killed: { signal: string | undefined; state: string | undefined } | undefined;
  let pending: Promise<Restored> | undefined;
  const restored = () =>
    (pending ??= restoreOnto('crashed-initrd', {
      initrd: async (m) => {
        const old = await oldMachine();
        const child = startInitrd(m);
        await waitUntil(
          'the new root to carry the recorded UUID',
          async () => child.exitCode !== null || (await probeFs(m.root.device)).uuid === old.ids.root.uuid,
          60_000,
          5,
        );
        const result = await powerCut(m, child);
        killed = { signal: result.signal, state: (await restoreStatus(m.initrdConfig))?.state };
        return runCli(m.initrdConfig, ['resume', '--initrd']);
      },
    }));
  afterAll(async () => (await pending?.catch(() => undefined))?.machine.destroy());

  it(
    'is killed half-way, while the saved state still says initrd',
    async () => {
      await restored();
      expect(killed).toEqual({ signal: 'SIGKILL', state: 'initrd' });
    },
    TIMEOUT,
  );

  it(
    'the second resume --initrd, the first boot and a last resume all exit 0',
    async () => {
      const r = await restored();
      expect([r.initrd.exitCode, r.firstBoot.exitCode, r.again.exitCode]).toEqual([0, 0, 0]);
    },
    TIMEOUT,
  );

  it(
    'ends exactly as an uninterrupted restore: trees, labels and UUIDs, GRUB, module restore, markers, status',
    async () => {
      const old = await oldMachine();
      expect(await whatIsWrong(old, await restored())).toEqual(allWell(old));
    },
    TIMEOUT,
  );
});

describe('a restore whose saved state is lost: the markers and plan.json alone lead it', () => {
  /** What status --json says of the restore after each forgetting, with the system's and with the initrd's configuration. */
  const withoutState: Array<Array<RestoreStatus | null>> = [];
  /** Every copy of the restore's saved state: paths.state on /, its mirror on /home, and the initrd's in the system copy. */
  const forgetState = async (m: NewMachine) => {
    for (const dir of [m.state, join(m.home.mountPoint, '.syn3restore'), join(m.home.mountPoint, INITRD_STATE)]) {
      await rm(join(dir, 'restore-state.json'), { force: true });
    }
    withoutState.push([await restoreStatus(m.config), await restoreStatus(m.initrdConfig)]);
  };
  let pending: Promise<Restored> | undefined;
  const restored = () => (pending ??= restoreOnto('markers-only', { beforeInitrd: forgetState, beforeFirstBoot: forgetState }));
  afterAll(async () => (await pending?.catch(() => undefined))?.machine.destroy());

  it(
    'has no saved restore state before resume --initrd nor before the first-boot resume',
    async () => {
      await restored();
      expect(withoutState).toEqual([
        [null, null],
        [null, null],
      ]);
    },
    TIMEOUT,
  );

  it(
    'resume --initrd and resume still finish the restore, and say from which backup',
    async () => {
      const old = await oldMachine();
      const r = await restored();
      expect([r.initrd.exitCode, r.firstBoot.exitCode]).toEqual([0, 0]);
      expect(r.firstBoot.stdout).toContain(`restored from backup ${old.backup.id}`);
    },
    TIMEOUT,
  );

  it(
    'ends exactly as a restore with its state: trees, labels and UUIDs, GRUB, module restore, markers, status',
    async () => {
      const old = await oldMachine();
      expect(await whatIsWrong(old, await restored())).toEqual(allWell(old));
    },
    TIMEOUT,
  );
});

/**
 * A property over crash points: the restore is killed (SIGKILL) at the start of
 * any phase, once its state was saved, at a random moment inside the long
 * phases (xfsrestore, mkfs, rsync, grub-install running), right after its side
 * effect, or after a random number of bytes of the preflight's read of the
 * backup; the machine "reboots" (what the killed run mounted is gone),
 * and the administrator and the boot hooks go on as status says. Every case
 * ends exactly as an uninterrupted restore.
 */
describe('a restore killed at any point', () => {
  const HARNESS = join(REPO_ROOT, 'dist/test/support/restore-crash-harness.js');
  const STAGES = ['restore', 'resume-initrd', 'resume'] as const;
  type Stage = (typeof STAGES)[number];
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
  let cases = 0;

  async function runStage(m: NewMachine, stage: Stage): Promise<void> {
    if (stage === 'restore') expectOk('restore', await runCli(m.config, ['restore', '--confirm', SANDBOX_HOST]));
    if (stage === 'resume-initrd') {
      expectOk('resume --initrd', await runCli(m.initrdConfig, ['resume', '--initrd'], { env: { TMPDIR: m.tmp } }));
      await bootRestoredSystem(m);
    }
    if (stage === 'resume') expectOk('resume', await runCli(m.config, ['resume']));
  }

  /** What a reboot after a power cut leaves: no process of the killed run, none of its mounts. */
  async function reboot(m: NewMachine): Promise<void> {
    await waitUntil('the killed run to leave the machine', async () => (await processesUsing(m.dir)).length === 0, 30_000, 50);
    for (const v of [m.root, m.boot, m.home]) {
      for (const at of await mountsOf(v.device)) if (at !== v.mountPoint) await execa('umount', [at]);
    }
    await emptyTmp(m.tmp);
    await bootRestoredSystem(m);
  }

  async function crashThenFinish(crash: RestoreCrashPoint): Promise<void> {
    const old = await oldMachine();
    const machine = await installNewMachine(old, `crash-${++cases}`);
    try {
      const crashStage: Stage = crash.kind === 'inRead' ? 'restore' : STAGE_OF[crash.step];
      for (const stage of STAGES.slice(0, STAGES.indexOf(crashStage))) await runStage(machine, stage);
      const config = crashStage === 'resume-initrd' ? machine.initrdConfig : machine.config;
      const killed = await execa(process.execPath, [HARNESS, config, crashStage, JSON.stringify(crash)], {
        reject: false,
        stdin: 'ignore',
        env: { TMPDIR: machine.tmp },
      });
      // A moment inside a phase may come after the phase is over: then the run simply went on.
      if (crash.kind !== 'during' || killed.signal) {
        expect(killed.signal, `the harness died at ${JSON.stringify(crash)}: ${killed.stdout} ${killed.stderr}`).toBe('SIGKILL');
      }
      await reboot(machine);
      // Go on as status tells: start again, resume, or let the initrd run.
      for (let i = 0; i < 8; i++) {
        const s = await restoreStatus(machine.config);
        if (s?.state === 'done') break;
        if (!s || s.state === 'idle') await runStage(machine, 'restore');
        else if (s.state === 'awaitingReboot' || s.state === 'initrd' || s.failedPhase === 'initrd')
          await runStage(machine, 'resume-initrd');
        else await runStage(machine, 'resume');
      }
      const r = {
        machine,
        trees: await trees(machine),
        ids: await identities(machine),
        after: await markers(machine),
        mbr: await machine.bootDisk.readMbr(),
      } as Restored;
      expect(await whatIsWrong(old, r), JSON.stringify(crash)).toEqual(allWell(old));
    } finally {
      await machine.destroy();
    }
  }

  const steps = Object.keys(STAGE_OF) as Array<keyof RestoreSteps>;
  const stepPoint = fc.record({
    kind: fc.constantFrom('start' as const, 'entered' as const, 'after' as const),
    step: fc.constantFrom(...steps),
  });
  // The preflight's read of the backup, cut at a random byte.
  const readPoint = fc.record({
    kind: fc.constant('inRead' as const),
    open: fc.constant(1),
    bytes: fc.integer({ min: 1, max: 2_000_000 }),
  });
  // Inside the long phases, while their programs run (xfsrestore, mkfs, rsync, grub-install).
  const duringPoint = fc.record({
    kind: fc.constant('during' as const),
    step: fc.constantFrom('restoreHome' as const, 'restoreSystem' as const, 'reinstallGrub' as const, 'formatHome' as const),
    ms: fc.integer({ min: 10, max: 1500 }),
  });

  it('ends exactly as an uninterrupted restore, wherever it was killed', async () => {
    await fc.assert(fc.asyncProperty(fc.oneof(stepPoint, readPoint, duringPoint), crashThenFinish), {
      numRuns: 6,
      // One from each kind of place: mid-read of the preflight, the format of /home, mid-xfsrestore, the initrd, post.restore.
      examples: [
        [{ kind: 'inRead', open: 1, bytes: 300_000 }],
        [{ kind: 'after', step: 'formatHome' }],
        [{ kind: 'during', step: 'restoreHome', ms: 300 }],
        [{ kind: 'entered', step: 'restoreSystem' }],
        [{ kind: 'after', step: 'runModuleRestores' }],
      ],
      endOnFailure: true,
    });
  }, 1_200_000);
});
