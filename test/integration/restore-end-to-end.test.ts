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
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, SANDBOX_HOST, type CliResult } from '../support/cli.js';
import { destroyAllDisks, probeFs } from '../support/partitioned-disk.js';
import {
  buildOldMachine,
  identities,
  installNewMachine,
  markers,
  powerCut,
  PROOF,
  removeWork,
  restoreStatus,
  savedRestoreState,
  startInitrd,
  SYSTEM_COPY,
  trees,
  waitUntil,
  type Identities,
  type NewMachine,
  type OldMachine,
  type RestoreStatus,
  type Trees,
} from '../support/restore-machines.js';
import {
  allWell,
  bootDifferences,
  bootRestoredSystem,
  expectOk,
  homeDifferences,
  INITRD_STATE,
  NO_MARKERS,
  rootDifferences,
  whatIsWrong,
} from '../support/restore-outcome.js';
import { destroyAll } from '../support/sandbox.js';

const TIMEOUT = 180_000;

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
        // The old machine runs no DRBD: drbd.primary is only for a node that was primary (test/lane/drbd-pair).
        drbdInCopy: false,
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
