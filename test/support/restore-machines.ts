// The two machines of a disaster-recovery test. The "old machine" is a
// sandbox backed up through a target (a file target with `tick`, or any
// target's configuration lines with `backup`) and then lost (its volumes unmounted: XFS
// refuses a second mount of a UUID, and the restore gives the new volumes the
// old UUIDs). A "new machine" is a fresh installation: root and home on their
// own loop XFS volumes, boot on the first partition of a partitioned loop disk
// whose MBR GRUB can take, all with labels and UUIDs of their own.
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type Result, type ResultPromise } from 'execa';
import { POST_RESTORE_SCRIPT } from '../../actors/markers.js';
import { CLI, ensureSigningKey, listBackups, runCli, writeSandboxConfig, type ListedBackup } from './cli.js';
import { createPartitionedXfsDisk, probeFs, type FsIdentity, type PartitionedDisk } from './partitioned-disk.js';
import { populateBootTree, populateRichTree, populateSystemTree, SYSTEM_VOLATILE_DIRS } from './rich-tree.js';
import { createSandbox, createTargetVolume, createXfsVolume, type Sandbox, type XfsVolume } from './sandbox.js';
import { snapshotTree, type Snapshot } from './tree-compare.js';

/** paths.state inside the root, as on a real server (/var/lib/syn3-backup). */
export const STATE_IN_ROOT = 'var/lib/syn3-backup';
export const SYSTEM_COPY = '.syn3systembackup';
/** Where the database module's restore writes what it read back (relative to home). */
export const PROOF = 'db-restored-proof';
export const POST_RESTORE = 'etc/postinst.d/post.restore';

/** A database module: its backup spools a dump, its restore reads the dump back and proves it. */
const DB_BACKUP = `#!/bin/sh
set -e
printf 'db dump of %s: 42 rows\\n' "$SYN3_BACKUP_ID" > "$SYN3_SPOOL/db.dump"
`;
const DB_RESTORE = `#!/bin/sh
set -e
cat "$SYN3_SPOOL/db.dump" > "$SYN3_SPOOL/../../${PROOF}"
`;

export const RESTORE_SECTION = `restore:
  update_grub: false
  update_initramfs: false
  stop_timeout: 5s
`;

export interface Identities {
  root: FsIdentity;
  boot: FsIdentity;
  home: FsIdentity;
}

export interface Trees {
  root: Snapshot;
  boot: Snapshot;
  home: Snapshot;
}

export interface OldMachine {
  /** Holds the target and the modules, shared by the old and the new machines. */
  work: string;
  sandbox: Sandbox;
  /** The file target's volume, when the backup went to one (buildOldMachine). */
  target?: XfsVolume;
  /** The lines under `target:` in the old machine's configuration, and by default in the new machine's. */
  targetLines: readonly string[];
  modules: string;
  config: string;
  /** The public key of the old machine's signing key: what the disaster-recovery papers hold. */
  publicKey: string;
  backup: ListedBackup;
  /** What the database module spooled at backup time. */
  dump: string;
  /** At the end of the backup; root without its runtime junk (never copied back) and without paths.state. */
  trees: Trees;
  ids: Identities;
}

/** Snapshots root as a restore must bring it back: no runtime content (never copied back), no paths.state (which the restore itself writes). */
export async function rootTree(root: string): Promise<Snapshot> {
  const runtime = await Promise.all(
    SYSTEM_VOLATILE_DIRS.map(async (d) => (await readdir(join(root, d)).catch(() => [])).map((n) => `${d}/${n}`)),
  );
  return snapshotTree(root, { exclude: [STATE_IN_ROOT, ...runtime.flat()] });
}

/** The lines under `target:` of a file target on a volume of its own. */
export function fileTargetLines(path: string): string[] {
  return ['type: file', `path: ${path}`, 'require_mount: true', 'retention:', '  keep: 7'];
}

/**
 * A server with a rich /home and a database module that can be backed up
 * through any number of targets, one after the other (each backup is what
 * a restore from it must bring back), and then lost.
 */
export interface OldServer {
  work: string;
  sandbox: Sandbox;
  modules: string;
  publicKey: string;
  ids: Identities;
  /** Backs the server up with `command` through the target the lines name, under a configuration called `name`. */
  backUp(name: string, targetLines: readonly string[], command?: 'tick' | 'backup'): Promise<OldMachine>;
  /** The server burns down: its volumes are unmounted (XFS refuses a second mount of a UUID). */
  lose(): Promise<void>;
}

export async function prepareOldServer(): Promise<OldServer> {
  const work = await mkdtemp(join(tmpdir(), 'syn3-restore-e2e-'));
  const modules = join(work, 'modules');
  await mkdir(modules);
  for (const [name, text] of [
    ['10-db.backup', DB_BACKUP],
    ['10-db.restore', DB_RESTORE],
  ] as const) {
    await writeFile(join(modules, name), text);
    await chmod(join(modules, name), 0o755);
  }
  const sandbox = await createSandbox();
  const root = sandbox.root.mountPoint;
  await populateSystemTree(root);
  await populateBootTree(sandbox.boot.mountPoint);
  await populateRichTree(sandbox.home.mountPoint);
  // As `syn3-backup install` leaves it: present, not executable.
  await mkdir(join(root, 'etc/postinst.d'), { recursive: true });
  await writeFile(join(root, POST_RESTORE), POST_RESTORE_SCRIPT, { mode: 0o644 });
  await chmod(join(root, POST_RESTORE), 0o644);
  const publicKey = ensureSigningKey(join(sandbox.dir, 'signing.key'));
  const ids = {
    root: await probeFs(sandbox.root.device),
    boot: await probeFs(sandbox.boot.device),
    home: await probeFs(sandbox.home.device),
  };
  const backUp = async (name: string, targetLines: readonly string[], command: 'tick' | 'backup' = 'backup'): Promise<OldMachine> => {
    const config = await writeSandboxConfig(sandbox, {
      file: join(work, `${name}.yaml`),
      targetLines,
      modules,
      state: join(root, STATE_IN_ROOT),
      extra: RESTORE_SECTION,
    });
    const run = await runCli(config, [command]);
    const listed = await listBackups(config);
    if (run.exitCode !== 0 || listed.length !== 1)
      throw new Error(`the old machine's backup (${name}) failed: ${JSON.stringify(run)}; list: ${JSON.stringify(listed)}`);
    const backup = listed[0]!;
    const dump = await readFile(join(sandbox.home.mountPoint, 'system/spool/db.dump'), 'utf8');
    const trees = {
      root: await rootTree(root),
      boot: await snapshotTree(sandbox.boot.mountPoint),
      home: await snapshotTree(sandbox.home.mountPoint),
    };
    return { work, sandbox, targetLines, modules, config, publicKey, backup, dump, trees, ids };
  };
  const lose = async () => {
    for (const volume of [sandbox.home, sandbox.boot, sandbox.root]) await volume.unmount();
  };
  return { work, sandbox, modules, publicKey, ids, backUp, lose };
}

/** A server with a rich /home, a database module and a backup (by tick) on a file target of its own, then lost. */
export async function buildOldMachine(): Promise<OldMachine & { target: XfsVolume }> {
  const server = await prepareOldServer();
  const target = await createTargetVolume(server.work);
  const old = await server.backUp('old-machine', fileTargetLines(target.mountPoint), 'tick');
  await server.lose();
  return { ...old, target };
}

/** Removes the old machine's work directory once every volume is gone, never through a mount that is still there. */
export async function removeWork(old: Pick<OldMachine, 'work'>): Promise<void> {
  const { stdout } = await execa('findmnt', ['-n', '-r', '-o', 'TARGET'], { reject: false });
  const below = stdout.split('\n').filter((t) => t.startsWith(`${old.work}/`));
  if (below.length) {
    console.warn(`left ${old.work} in place: still mounted ${below.join(' ')}`);
    return;
  }
  await rm(old.work, { recursive: true, force: true });
}

export interface NewMachine {
  dir: string;
  root: XfsVolume;
  home: XfsVolume;
  bootDisk: PartitionedDisk;
  boot: XfsVolume;
  config: string;
  state: string;
  /**
   * The configuration as the initrd sees it. The premount script runs
   * `resume --initrd` chrooted into <home>/.syn3systembackup, so paths.state
   * (/var/lib/syn3-backup) is the system copy's, on /home, never on the root
   * device being formatted. The sandbox's root is not /, so this configuration
   * says so explicitly.
   */
  initrdConfig: string;
  /** TMPDIR of the commands startInitrd starts: what a killed run leaves there stays inside the machine's dir. */
  tmp: string;
  destroy(): Promise<void>;
}

export interface NewMachineOptions {
  /** The lines under `target:` (default the old machine's): the target as the new machine reaches it. */
  targetLines?: (dir: string) => Promise<readonly string[]>;
  /** What /home holds besides the installer's notes, written before the restore. */
  home?: (home: string) => Promise<void>;
}

/**
 * A fresh installation, with its own labels and UUIDs and a little content of
 * its own, configured like the old machine but with no signing key: its
 * configuration holds only the old machine's public key, as the papers do.
 */
export async function installNewMachine(old: OldMachine, name: string, o: NewMachineOptions = {}): Promise<NewMachine> {
  const dir = join(old.work, name);
  await mkdir(dir);
  const made: Array<{ destroy(): Promise<void> }> = [];
  try {
    const root = await createXfsVolume(dir, 'root', 300, { label: 'newroot' });
    made.push(root);
    const home = await createXfsVolume(dir, 'home', 300, { label: 'newhome' });
    made.push(home);
    const bootDisk = await createPartitionedXfsDisk(dir, 'boot', 400, { label: 'newboot' });
    made.push(bootDisk);
    const boot = bootDisk.partition;
    await mkdir(join(root.mountPoint, 'etc'));
    await writeFile(join(root.mountPoint, 'etc/hostname'), 'fresh-install\n');
    await writeFile(join(boot.mountPoint, 'vmlinuz-fresh'), 'fresh kernel\n');
    await mkdir(join(home.mountPoint, 'installer'));
    await writeFile(join(home.mountPoint, 'installer/notes.txt'), 'fresh install\n');
    await o.home?.(home.mountPoint);
    const targetLines = (await o.targetLines?.(dir)) ?? old.targetLines;
    const state = join(root.mountPoint, STATE_IN_ROOT);
    const config = await writeSandboxConfig(
      { dir, root, boot, home, cleanup: async () => undefined },
      {
        file: join(dir, 'config.yaml'),
        targetLines,
        modules: old.modules,
        state,
        signingKey: false,
        publicKeys: [old.publicKey],
        extra: RESTORE_SECTION,
      },
    );
    const initrdConfig = await writeSandboxConfig(
      { dir, root, boot, home, cleanup: async () => undefined },
      {
        file: join(dir, 'initrd.yaml'),
        targetLines,
        modules: old.modules,
        state: join(home.mountPoint, SYSTEM_COPY, STATE_IN_ROOT),
        signingKey: false,
        publicKeys: [old.publicKey],
        extra: RESTORE_SECTION,
      },
    );
    const tmp = join(dir, 'tmp');
    await mkdir(tmp);
    const destroy = async () => {
      for (const m of [...made].reverse()) await m.destroy().catch((e: unknown) => console.warn('new machine cleanup:', e));
      for (const f of [config, initrdConfig]) await rm(f, { force: true });
      await emptyTmp(tmp);
      await rmdir(tmp).catch(() => undefined);
      await rmdir(dir).catch((e: unknown) => console.warn('new machine cleanup:', e));
    };
    return { dir, root, home, bootDisk, boot, config, state, initrdConfig, tmp, destroy };
  } catch (error) {
    for (const m of made.reverse()) await m.destroy().catch(() => undefined);
    throw error;
  }
}

export async function identities(m: NewMachine): Promise<Identities> {
  return { root: await probeFs(m.root.device), boot: await probeFs(m.boot.device), home: await probeFs(m.home.device) };
}

export async function trees(m: NewMachine): Promise<Trees> {
  return {
    root: await rootTree(m.root.mountPoint),
    boot: await snapshotTree(m.boot.mountPoint),
    home: await snapshotTree(m.home.mountPoint),
  };
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

async function executable(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => (s.mode & 0o111) !== 0,
    () => false,
  );
}

/** The seed's markers and this program's working files, as found on the new machine. */
export async function markers(m: NewMachine) {
  const home = m.home.mountPoint;
  return {
    spool: await exists(join(home, 'system/spool/.syn3restorespool')),
    system: await exists(join(m.boot.mountPoint, '.syn3restoresystem')),
    drbdInCopy: await exists(join(home, SYSTEM_COPY, 'boot/drbd.primary')),
    drbdInBoot: await exists(join(m.boot.mountPoint, 'drbd.primary')),
    postRestoreExecutable: await executable(join(m.root.mountPoint, POST_RESTORE)),
    copyPostRestoreExecutable: await executable(join(home, SYSTEM_COPY, POST_RESTORE)),
    restoreDir: await exists(join(home, '.syn3restore')),
    plan: await exists(join(home, '.syn3restore/plan.json')),
    pendingInitrd: await exists(join(home, '.syn3restore/pending-initrd')),
  };
}

export interface RestoreStatus {
  state: string;
  backupId: string | null;
  failedPhase: string | null;
  reason: string | null;
  last: { result: string; backupId: string } | null;
  summary: string;
}

/** The restore part of `status --json`: the program's own view of its saved state (the newest of its copies). */
export async function restoreStatus(config: string): Promise<RestoreStatus | null> {
  const r = await runCli(config, ['status', '--json']);
  if (!r.stdout.trim()) throw new Error(`status --json printed nothing (exit ${r.exitCode}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as { restore: RestoreStatus | null }).restore;
}

/** The restore machine's saved state value, from <state>/restore-state.json. */
export async function savedRestoreState(state: string): Promise<{ value: unknown; context: Record<string, unknown> } | undefined> {
  const text = await readFile(join(state, 'restore-state.json'), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as { snapshot: { value: unknown; context: Record<string, unknown> } }).snapshot;
}

/** Pids of the process and all its descendants (children first), read from /proc. */
export async function processTree(pid: number): Promise<number[]> {
  const parents = new Map<number, number[]>();
  for (const name of (await readdir('/proc')).filter((n) => /^\d+$/.test(n))) {
    const text = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const ppid = Number(/\) \S+ (\d+)/.exec(text)?.[1] ?? 0);
    if (ppid) parents.set(ppid, [...(parents.get(ppid) ?? []), Number(name)]);
  }
  const out: number[] = [];
  const visit = (p: number) => {
    for (const child of parents.get(p) ?? []) visit(child);
    out.push(p);
  };
  visit(pid);
  return out;
}

/** Where a device is mounted now, from the kernel's table. */
export async function mountsOf(device: string): Promise<string[]> {
  const { stdout } = await execa('findmnt', ['-n', '-r', '-o', 'TARGET', '--source', device], { reject: false });
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((t) => t.replace(/\\x([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16))));
}

/** Starts `resume --initrd` with the initrd's configuration and the machine's own TMPDIR, without waiting for it. */
export function startInitrd(m: NewMachine): ResultPromise {
  return execa(process.execPath, [CLI, '--config', m.initrdConfig, 'resume', '--initrd'], {
    stdin: 'ignore',
    env: { SYN3_BACKUP_CONFIG: undefined, TMPDIR: m.tmp },
    reject: false,
  });
}

/** Empties a TMPDIR of ours, unless something is still mounted below it (a recursive rm would go through it). */
export async function emptyTmp(tmp: string): Promise<void> {
  const { stdout } = await execa('findmnt', ['-n', '-r', '-o', 'TARGET'], { reject: false });
  const below = stdout.split('\n').filter((t) => t.startsWith(`${tmp}/`));
  if (below.length) throw new Error(`not emptying ${tmp}: still mounted there: ${below.join(' ')}`);
  for (const name of await readdir(tmp).catch(() => [] as string[])) await rm(join(tmp, name), { recursive: true, force: true });
}

/**
 * A power cut during the initrd phase, as far as a sandbox can have one: the
 * command and everything it started die at once (stopped first, so it starts
 * nothing more), and the next boot finds / and /boot mounted nowhere, as a
 * real initrd does. The killed run's temporary mounts go with the "reboot".
 */
export async function powerCut(m: NewMachine, child: ResultPromise): Promise<Result> {
  const pid = child.pid;
  if (pid === undefined) throw new Error('the command to cut the power of has no pid');
  try {
    process.kill(pid, 'SIGSTOP');
  } catch {
    // Already gone: the caller sees its exit code in the result.
  }
  const pids = await processTree(pid);
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  const result = await child;
  await waitUntil('the killed processes to be gone', async () => pids.every((p) => !alive(p)), 10_000, 20);
  for (const v of [m.root, m.boot]) {
    for (const at of await mountsOf(v.device)) await execa('umount', [at]);
  }
  // The killed run's work directory (its temporary mounts were just undone), as a reboot clears /tmp.
  await emptyTmp(m.tmp);
  return result;
}

/** Whether a process of this pid exists (signal 0 only asks). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A killed orphan stays a zombie until its reaper waits for it, and in a container PID 1 may never do so:
  // a zombie runs nothing, so it counts as gone.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z';
  } catch {
    return false;
  }
}

export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
