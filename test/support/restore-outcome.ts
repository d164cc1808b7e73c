/**
 * What a finished restore onto a new machine must show, shared by the
 * end-to-end restore tests and the restore crash property: the trees, labels
 * and UUIDs, GRUB, the module's restored data, no markers left, status done.
 * whatIsWrong() gathers it from the machine; allWell() says it from the old
 * machine alone, never from the code under test.
 */
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { runCli, type CliResult } from './cli.js';
import {
  identities,
  markers,
  mountsOf,
  PROOF,
  restoreStatus,
  STATE_IN_ROOT,
  SYSTEM_COPY,
  trees,
  type Identities,
  type NewMachine,
  type OldMachine,
  type Trees,
} from './restore-machines.js';
import { diffTrees, XFSRESTORE_LOSSES } from './tree-compare.js';

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
export const INITRD_STATE = `${SYSTEM_COPY}/${STATE_IN_ROOT}`;
/** The system copy came through xfsdump, which keeps no symlink mtimes: neither do / and /boot made from it. */
const FROM_THE_COPY = { ignoreSymlinkMtime: true };

/** diffTrees, minus the mtime of directories the restore legitimately wrote to. */
function differences(a: Trees[keyof Trees], b: Trees[keyof Trees], touched: string[], opts = XFSRESTORE_LOSSES): string[] {
  const ignored = touched.map((d) => `${JSON.stringify(d)}: mtime `);
  return diffTrees(a, b, opts).filter((line) => !ignored.some((prefix) => line.startsWith(prefix)));
}

/** What a finished restore is judged by: the new machine and what was read from it at the end. */
export interface RestoredState {
  machine: NewMachine;
  trees: Trees;
  ids: Identities;
  after: Awaited<ReturnType<typeof markers>>;
  mbr: Buffer;
}

export function expectOk(step: string, r: CliResult): void {
  if (r.exitCode !== 0) throw new Error(`${step} failed (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
}

/**
 * The restored system boots: / and /boot are mounted where they belong. The
 * initrd phase leaves them so when it found them so (the sandbox); after a
 * power cut the test finds them unmounted, as a real initrd would.
 */
export async function bootRestoredSystem(m: NewMachine): Promise<void> {
  for (const v of [m.root, m.boot]) {
    if (!(await mountsOf(v.device)).includes(v.mountPoint)) await execa('mount', ['-t', 'xfs', v.device, v.mountPoint]);
  }
}

/** What a restore is judged by, read from the new machine as it is now. */
export async function restoredState(m: NewMachine): Promise<RestoredState> {
  return { machine: m, trees: await trees(m), ids: await identities(m), after: await markers(m), mbr: await m.bootDisk.readMbr() };
}

/**
 * What follows a `restore` (or `resume`) that left the machine waiting for its
 * reboot: the initrd phase, the boot, and the first boot's resume, each of
 * which must exit 0. Returns what the first boot said.
 */
export async function rebootAndFinish(m: NewMachine): Promise<CliResult> {
  expectOk('resume --initrd', await runCli(m.initrdConfig, ['resume', '--initrd'], { env: { TMPDIR: m.tmp } }));
  await bootRestoredSystem(m);
  const firstBoot = await runCli(m.config, ['resume']);
  expectOk('resume', firstBoot);
  return firstBoot;
}

function withoutPaths(tree: Trees[keyof Trees], drop: (path: string) => boolean): Trees[keyof Trees] {
  return new Map([...tree].filter(([p]) => !drop(p)));
}

const inInitrdState = (p: string) => p === INITRD_STATE || p.startsWith(`${INITRD_STATE}/`);
const addedByGrub = (p: string) => GRUB_ADDED.some((g) => p === g || p.startsWith(`${g}/`));

/** Differences of the restored /home from the old one, beyond what the restore writes there by design. */
export function homeDifferences(old: OldMachine, r: RestoredState): string[] {
  const home = withoutPaths(r.trees.home, (p) => p === PROOF || inInitrdState(p));
  return differences(withoutPaths(old.trees.home, inInitrdState), home, TOUCHED_DIRS.home);
}

export function rootDifferences(old: OldMachine, r: RestoredState): string[] {
  return differences(old.trees.root, r.trees.root, TOUCHED_DIRS.root, FROM_THE_COPY);
}

export function bootDifferences(old: OldMachine, r: RestoredState): string[] {
  return differences(old.trees.boot, withoutPaths(r.trees.boot, addedByGrub), TOUCHED_DIRS.boot, FROM_THE_COPY);
}

export const NO_MARKERS = {
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
export async function whatIsWrong(old: OldMachine, r: RestoredState): Promise<Record<string, unknown>> {
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

export function allWell(old: OldMachine): Record<string, unknown> {
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
