#!/usr/bin/env node
/**
 * npm run demo: syn3-backup end to end on this machine, without touching it.
 *
 * A sandbox of throw-away XFS file systems on loop devices stands in for /,
 * /boot and /home; a fourth one is the backup disk. The demo runs the real
 * command line on them (tick, tick again, status, list), then proves the
 * backup: it restores the dump with plain xfsrestore into a fresh XFS file
 * system and compares it with home, entry by entry, metadata included; and it
 * compares the system copy inside home with / and /boot.
 *
 * Then the restore drill: the server burns down (the sandbox's /, /boot and
 * /home are destroyed, the backup disk survives), a new machine with blank
 * disks gets the same configuration, and syn3-backup restore runs through
 * every phase: /home now, the initrd's / and /boot after the "reboot", the
 * first boot's post.restore. The new machine is then compared with snapshots
 * of the one that burnt, entry by entry, UUIDs and labels included.
 *
 * Everything lives in one temp dir (the sandbox's) and its loop devices, and
 * goes away at the end: on success, on failure and on Ctrl-C.
 *
 * Each part is one function in SECTIONS.
 */
import type { RestoreRestingState } from '../machines/restore.js';
import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { loadConfig } from '../src/config/load.js';
import { formatBytes, formatMs } from '../src/format.js';
import { mountAt, readMounts } from '../src/system/mounts.js';
import { loadRestoreState } from '../src/restore/run.js';
import { DRBD_MARKER, POST_RESTORE } from '../actors/markers.js';
import { mountPointsOf } from '../src/system/mount.js';
import { populateBootTree, populateRichTree, populateSystemTree, SYSTEM_VOLATILE_DIRS } from '../test/support/rich-tree.js';
import {
  createSandbox,
  createTargetVolume,
  createXfsVolume,
  destroyAll,
  liveResourceCount,
  XFS_MIN_MIB,
  type Sandbox,
  type XfsVolume,
} from '../test/support/sandbox.js';
import {
  diffTrees,
  ROOT_KEY,
  snapshotTree,
  XFSRESTORE_LOSSES,
  type DiffOptions,
  type Entry,
  type Snapshot,
} from '../test/support/tree-compare.js';

const CLI = fileURLToPath(new URL('../bin/syn3-backup.mjs', import.meta.url));
const HOST = 'demo-host';
const SYSTEM_COPY = '.syn3systembackup';
const MODULE_NAME = '10-database.backup';
const RESTORE_MODULE_NAME = '10-database.restore';
const DUMP_NAME = 'database.sql';

/** A spool module: what a real one does with pg_dump or mysqldump, it does with echo. */
const MODULE = `#!/bin/sh
# Writes a consistent dump of "the database" into the spool, which the home dump then carries.
set -e
{
  echo "-- demo database, dumped for backup $SYN3_BACKUP_ID"
  echo "CREATE TABLE customers (id integer PRIMARY KEY, name text);"
  echo "INSERT INTO customers VALUES (1, 'Ada Lovelace'), (2, 'Grace Hopper');"
} > "$SYN3_SPOOL/${DUMP_NAME}"
`;

/** Its counterpart, run at the first boot after a restore: loads the dump into "the database" (a file, here). */
const restoreModule = (database: string): string => `#!/bin/sh
# Loads the dump that the restored home brought back; a real one would feed it to psql.
set -e
cp "$SYN3_SPOOL/${DUMP_NAME}" '${database}'
echo "loaded ${DUMP_NAME} of backup $SYN3_BACKUP_ID: $(grep -c '^INSERT' '${database}') INSERT statement(s)"
`;

/** A machine the demo runs syn3-backup on: the one that burns, then the new one. */
interface Machine {
  configFile: string;
}

/** What the sections share; filled in by the first. */
interface Demo extends Machine {
  sandbox: Sandbox;
  /** The backup disk: its own XFS, mounted at <sandbox>/target. */
  target: XfsVolume;
  state: string;
  modules: string;
  /** "The database" that the restore module loads the dump into: a file outside the compared trees. */
  database: string;
  /** The public key of the sandbox's signing key, as "syn3-backup key init" printed it: the papers' line. */
  publicKey?: string;
  /** Filled in by the restore drill's sections, in order. */
  drill?: Drill;
}

const ROLES = ['root', 'boot', 'home'] as const;
type Role = (typeof ROLES)[number];
const SHOWN: Record<Role, string> = { root: '/', boot: '/boot', home: '/home' };

interface FsIds {
  uuid: string;
  label: string | undefined;
}

interface Drill {
  /** The burnt machine's trees, snapshotted before the fire; root without its runtime junk. */
  before: Record<Role, Snapshot>;
  /** Runtime entries under the old / that the backup leaves behind on purpose, so not compared. */
  runtime: string[];
  /** blkid's UUID and LABEL of the burnt file systems: what the restore must give the new ones. */
  ids: Record<Role, FsIds>;
  /** The new machine, once it exists. */
  machine?: Machine & { volumes: Record<Role, XfsVolume>; state: string };
}

interface Listed {
  id: string;
  created: string;
  size: number;
  location: string;
}

type Section = { title: string; run: (demo: Demo) => Promise<void> };

/** A failure the demo explains itself: printed without a stack. */
class DemoFailure extends Error {
  override name = 'DemoFailure';
}

// ─── printing ────────────────────────────────────────────────────────────────

const out = (text = ''): void => void process.stdout.write(`${text}\n`);
const indent = (text: string, by = '    '): string => text.replace(/\n$/, '').replace(/^/gm, by);

function heading(n: number, total: number, title: string): void {
  out();
  out(`━━━ ${n}/${total}  ${title} ${'━'.repeat(Math.max(3, 72 - title.length))}`);
}

function shell(cmd: string, args: string[]): void {
  out(`  $ ${[cmd, ...args].map((a) => (/^[\w./:=@+-]+$/.test(a) ? a : `'${a}'`)).join(' ')}`);
}

// ─── Ctrl-C ──────────────────────────────────────────────────────────────────

let interrupted: NodeJS.Signals | undefined;
let child: ResultPromise | undefined;

/**
 * The first signal stops the running command and lets the demo unwind and
 * clean up (the sandbox module also unmounts at once); a second one exits now,
 * and the sandbox's exit hook still detaches what is left.
 */
function onSignal(signal: NodeJS.Signals): void {
  if (interrupted) {
    process.stderr.write(`\ndemo: ${signal} again: exiting now\n`);
    process.exit(exitCodeOf(signal));
  }
  interrupted = signal;
  process.stderr.write(`\ndemo: ${signal}: stopping, then cleaning up (Ctrl-C again to exit at once)\n`);
  child?.kill(signal);
  setTimeout(() => process.exit(exitCodeOf(signal)), 30_000).unref();
}

/** What a shell reports for a process killed by signal: 130 for SIGINT, 143 for SIGTERM. */
function exitCodeOf(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 2);
}

function checkInterrupted(): void {
  if (interrupted) throw new DemoFailure(`interrupted by ${interrupted}`);
}

// ─── running things ──────────────────────────────────────────────────────────

/**
 * The command line's environment: no config from the caller's, and its temp dir (the initrd
 * phase mounts / there) inside the sandbox, so even a restore killed halfway leaves nothing
 * outside it.
 */
const cliEnv: Record<string, string | undefined> = { SYN3_BACKUP_CONFIG: undefined };

/** The exit code, or for a command killed by a signal what a shell reports (137 for SIGKILL). */
function exitStatus(r: { exitCode?: number | undefined; signal?: NodeJS.Signals | undefined }): number {
  return r.exitCode ?? (r.signal ? exitCodeOf(r.signal) : 128);
}

/** syn3-backup --config <the machine's config> <args>, shown and with its output on the terminal. */
async function showCli(machine: Machine, args: string[]): Promise<number> {
  shell('syn3-backup', ['--config', machine.configFile, ...args]);
  child = execa(process.execPath, [CLI, '--config', machine.configFile, ...args], { stdio: 'inherit', reject: false, env: cliEnv });
  const r = await child;
  child = undefined;
  checkInterrupted();
  return exitStatus(r);
}

/** The same, with the output captured, the way cron runs it (no terminal). */
async function quietCli(machine: Machine, args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  child = execa(process.execPath, [CLI, '--config', machine.configFile, ...args], { stdin: 'ignore', reject: false, env: cliEnv });
  const r = await child;
  child = undefined;
  checkInterrupted();
  return { exitCode: exitStatus(r), stdout: String(r.stdout), stderr: String(r.stderr) };
}

async function listBackups(demo: Demo): Promise<Listed[]> {
  const r = await quietCli(demo, ['list', '--json']);
  if (r.exitCode !== 0) throw new DemoFailure(`syn3-backup list --json exited ${r.exitCode}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Listed[];
}

function expectExit(what: string, exitCode: number, wanted = 0): void {
  if (exitCode !== wanted) throw new DemoFailure(`${what} exited ${exitCode}, expected ${wanted} (its messages are above)`);
}

/** Compares two snapshots; throws with the first differences, or says how many entries matched. */
function expectIdentical(what: string, a: Snapshot, b: Snapshot, options: DiffOptions = {}): void {
  const diffs = diffTrees(a, b, options);
  if (diffs.length) {
    const shown = diffs.slice(0, 20).join('\n');
    throw new DemoFailure(`${what} differ in ${diffs.length} places:\n${indent(shown)}${diffs.length > 20 ? '\n    …' : ''}`);
  }
  out(`  ✔ ${what}: identical: ${a.size} entries`);
}

async function countEntries(dir: string): Promise<number> {
  let n = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    n++;
    if (entry.isDirectory()) n += await countEntries(join(dir, entry.name));
  }
  return n;
}

// ─── sections ────────────────────────────────────────────────────────────────

async function buildSandbox(): Promise<Demo> {
  out('  Four XFS file systems on loop devices in a temp dir: a fake /, /boot and /home full of');
  out('  awkward metadata (hard links, ACLs, xattrs, capabilities, sparse files, device nodes,');
  out('  odd names, orphan owners), and a separate backup disk.');
  // Whatever fails below, main's clean-up destroys every volume made so far (sandbox.ts tracks them).
  const sandbox = await createSandbox();
  checkInterrupted();
  await populateSystemTree(sandbox.root.mountPoint);
  await populateBootTree(sandbox.boot.mountPoint);
  await populateRichTree(sandbox.home.mountPoint);
  checkInterrupted();
  const demo: Demo = {
    sandbox,
    target: await createTargetVolume(sandbox.dir),
    configFile: join(sandbox.dir, 'config.yaml'),
    state: join(sandbox.dir, 'state'),
    modules: join(sandbox.dir, 'modules'),
    database: join(sandbox.dir, 'database-server.sql'),
  };
  await mkdir(demo.modules, { recursive: true });
  cliEnv.TMPDIR = join(sandbox.dir, 'tmp');
  await mkdir(cliEnv.TMPDIR, { mode: 0o700 });
  for (const [name, text] of [
    [MODULE_NAME, MODULE],
    [RESTORE_MODULE_NAME, restoreModule(demo.database)],
  ] as const) {
    await writeFile(join(demo.modules, name), text);
    await chmod(join(demo.modules, name), 0o755);
  }
  out();
  out(`  temp dir  ${sandbox.dir}`);
  for (const [name, v] of [
    ['/', sandbox.root],
    ['/boot', sandbox.boot],
    ['/home', sandbox.home],
    ['target', demo.target],
  ] as const) {
    const entries = name === 'target' ? 'empty' : `${await countEntries(v.mountPoint)} entries`;
    out(`  ${name.padEnd(8)}  ${v.device.padEnd(11)} → ${v.mountPoint}  (${entries})`);
  }
  out(`  modules   ${join(demo.modules, MODULE_NAME)}: writes ${DUMP_NAME} into $SYN3_SPOOL`);
  out(`            ${join(demo.modules, RESTORE_MODULE_NAME)}: loads it into ${demo.database} after a restore`);
  return demo;
}

async function writeConfig(demo: Demo): Promise<void> {
  const { sandbox } = demo;
  const text = `# ${demo.configFile}
host: ${HOST}
schedule:
  every: 1h                 # cron runs "syn3-backup tick" hourly; this makes each tick due after an hour
mode: spool                 # run the modules into <home>/system/spool before the dump
paths:
  root: ${sandbox.root.mountPoint}
  boot: ${sandbox.boot.mountPoint}
  home: ${sandbox.home.mountPoint}
  state: ${demo.state}
  modules: ${demo.modules}
target:
  type: file
  path: ${demo.target.mountPoint}
  require_mount: true       # never fill the root disk when the backup disk is missing
  retention:
    keep: 3
trust:
  signing_key: ${join(sandbox.dir, 'signing.key')}   # every backup's metadata is signed with it (default /etc/syn3-backup/signing.key)
`;
  await writeFile(demo.configFile, text);
  out(indent(text));
  const r = await quietCli(demo, ['config', 'check']);
  expectExit('syn3-backup config check', r.exitCode);
  out(`  ✔ syn3-backup config check: ${r.stdout.split('\n')[0]}`);
  // What "syn3-backup install" does on a real server when there is no key yet.
  const key = await quietCli(demo, ['key', 'init']);
  expectExit('syn3-backup key init', key.exitCode);
  demo.publicKey = key.stdout.split('\n').find((l) => l.startsWith('ed25519:'));
  out(`  ✔ syn3-backup key init: made ${join(sandbox.dir, 'signing.key')} (0600); its public key, for the papers:`);
  out(`      ${demo.publicKey}`);
}

async function firstTick(demo: Demo): Promise<void> {
  out('  What cron runs every hour. Nothing was ever backed up, so a backup is due: the machine');
  out('  syncs / and /boot into home, runs the spool module, dumps home with xfsdump to the target,');
  out('  verifies the dump, publishes it and applies retention. Every transition is saved first.');
  out();
  expectExit('the first tick', await showCli(demo, ['--log-format', 'text', 'tick']));
  const listed = await listBackups(demo);
  if (listed.length !== 1) throw new DemoFailure(`after the first tick the target should hold one backup, it holds ${listed.length}`);
}

async function secondTick(demo: Demo): Promise<void> {
  out('  Run again at once, as cron would (no terminal): the last success is seconds old, so');
  out('  nothing is due. It must exit 0 and print nothing, so cron mails nothing.');
  out();
  shell('syn3-backup', ['--config', demo.configFile, 'tick']);
  const r = await quietCli(demo, ['tick']);
  const silent = r.stdout === '' && r.stderr === '';
  if (r.exitCode !== 0 || !silent) {
    throw new DemoFailure(`the second tick should be quiet with exit 0; it exited ${r.exitCode} with:\n${indent(r.stdout + r.stderr)}`);
  }
  const listed = await listBackups(demo);
  if (listed.length !== 1) throw new DemoFailure(`the second tick should not have made a backup; the target holds ${listed.length}`);
  out(`  ✔ exit ${r.exitCode}, no output, still 1 backup on the target`);
}

async function statusAndList(demo: Demo): Promise<void> {
  for (const [i, command] of ['status', 'list'].entries()) {
    if (i > 0) out();
    shell('syn3-backup', ['--config', demo.configFile, command]);
    const r = await quietCli(demo, [command]);
    if (r.stdout) out(indent(r.stdout));
    if (r.stderr) process.stderr.write(`${indent(r.stderr)}\n`);
    expectExit(`syn3-backup ${command}`, r.exitCode);
  }
}

/** The proof that matters: the dump restores, with nothing but xfsrestore, to a copy of home. */
async function proveDump(demo: Demo): Promise<void> {
  const [backup] = await listBackups(demo);
  if (!backup) throw new DemoFailure('the target holds no backup to restore');
  out(`  Restoring ${backup.id} (${formatBytes(backup.size)}) with plain xfsrestore into a fresh XFS file system:`);
  const fresh = await createXfsVolume(demo.sandbox.dir, 'restored', 300, { label: 'sbrestore' });
  const args = ['-F', '-J', '-B', '-f', backup.location, fresh.mountPoint];
  shell('xfsrestore', args);
  child = execa('xfsrestore', args, { reject: false, all: true, stdin: 'ignore' });
  const r = await child;
  child = undefined;
  checkInterrupted();
  const status = /Restore Status: (\w+)/.exec(String(r.all))?.[1];
  if (r.exitCode !== 0 || status !== 'SUCCESS') {
    throw new DemoFailure(`xfsrestore exited ${r.exitCode}${status ? ` (Restore Status: ${status})` : ''}:\n${indent(String(r.all))}`);
  }
  out(`    xfsrestore: Restore Status: ${status}`);
  out();
  out('  Comparing every entry: type, content (sha256), mode, owner, size, mtime, symlink target,');
  out('  device numbers, hard-link groups, sparseness, ACLs and xattrs. (xfsrestore does not');
  out("  restore symlink mtimes or the top directory's mtime; those two are not compared.)");
  const home = await snapshotTree(demo.sandbox.home.mountPoint);
  const restored = await snapshotTree(fresh.mountPoint);
  expectIdentical('home vs the restored dump', home, restored, XFSRESTORE_LOSSES);
  const dump = await readFile(join(fresh.mountPoint, 'system', 'spool', DUMP_NAME), 'utf8');
  if (!dump.includes(backup.id))
    throw new DemoFailure(`the spooled ${DUMP_NAME} in the dump does not name backup ${backup.id}:\n${indent(dump)}`);
  out(`  ✔ the module's spool file came back too: system/spool/${DUMP_NAME}`);
  out(indent(dump, '      │ '));
  await fresh.destroy();
}

/** The system copy inside home is what a bare-metal restore boots from: it must be / and /boot exactly. */
async function proveSystemCopy(demo: Demo): Promise<void> {
  const root = demo.sandbox.root.mountPoint;
  const copy = join(demo.sandbox.home.mountPoint, SYSTEM_COPY);
  // Runtime directories are kept as empty directories: their content is left behind on purpose.
  const runtime = (await Promise.all(SYSTEM_VOLATILE_DIRS.map(async (d) => (await readdir(join(root, d))).map((n) => `${d}/${n}`)))).flat();
  out(`  <home>/${SYSTEM_COPY} against / (without the content of ${SYSTEM_VOLATILE_DIRS.join(', ')}: ${runtime.length} entries of`);
  out('  runtime junk that must not be copied) and <home>/.syn3systembackup/boot against /boot:');
  // The copy's own top differs from / on purpose: it is root's only (0700); the restore gives / its mode back.
  const [rootTree, copyTree] = [
    await snapshotTree(root, { exclude: ['boot', ...runtime] }),
    await snapshotTree(copy, { exclude: ['boot'] }),
  ];
  const copyMode = (copyTree.get(ROOT_KEY)?.mode ?? 0) & 0o7777;
  if (copyMode !== 0o700) throw new DemoFailure(`the system copy's top directory has mode 0${copyMode.toString(8)}, not 0700`);
  for (const tree of [rootTree, copyTree]) tree.delete(ROOT_KEY);
  expectIdentical('/ vs the system copy, below its top', rootTree, copyTree);
  out('  ✔ the system copy itself is 0700: no one but root reaches its copies of setuid programs');
  expectIdentical(
    "/boot vs the system copy's boot",
    await snapshotTree(demo.sandbox.boot.mountPoint),
    await snapshotTree(join(copy, 'boot')),
  );
  const notEmpty: string[] = [];
  for (const d of SYSTEM_VOLATILE_DIRS) if ((await readdir(join(copy, d))).length) notEmpty.push(d);
  if (notEmpty.length) throw new DemoFailure(`runtime directories in the system copy are not empty: ${notEmpty.join(', ')}`);
  out(`  ✔ ${SYSTEM_VOLATILE_DIRS.join(', ')} are there as empty directories`);
}

// ─── the restore drill ───────────────────────────────────────────────────────

function drillOf(demo: Demo): Drill {
  if (!demo.drill) throw new DemoFailure('the restore drill has no record of the burnt machine (its first section did not run)');
  return demo.drill;
}

function newMachineOf(demo: Demo): NonNullable<Drill['machine']> {
  const machine = drillOf(demo).machine;
  if (!machine) throw new DemoFailure('the restore drill has no new machine (its section did not run)');
  return machine;
}

/** blkid's UUID and LABEL, probed on the device itself (-p: no cache, loop device names get reused). */
async function fsIds(device: string): Promise<FsIds> {
  const r = await execa('blkid', ['-p', '-o', 'export', device], { reject: false, stdin: 'ignore' });
  const found = new Map<string, string>();
  for (const line of String(r.stdout).split('\n')) {
    const m = /^(\w+)=(.*)$/.exec(line);
    if (m) found.set(m[1]!, m[2]!);
  }
  const uuid = found.get('UUID');
  if (!uuid)
    throw new DemoFailure(
      `blkid finds no file system on ${device} (exit ${r.exitCode}):\n${indent(`${String(r.stdout)}${String(r.stderr)}`)}`,
    );
  return { uuid, label: found.get('LABEL') };
}

const showIds = (ids: FsIds): string => `UUID ${ids.uuid}  LABEL ${ids.label ?? '(none)'}`;

/** Runtime entries under a / (the content of proc, sys, …): never backed up, so never compared. */
async function runtimeEntries(root: string): Promise<string[]> {
  return (await Promise.all(SYSTEM_VOLATILE_DIRS.map(async (d) => (await readdir(join(root, d))).map((n) => `${d}/${n}`)))).flat();
}

/** Where the new machine's restore stands, as syn3-backup itself reads it. */
function restoreState(machine: Machine): string {
  return loadRestoreState(loadConfig(machine.configFile))?.state ?? 'idle (nothing saved)';
}

function expectRestoreState(machine: Machine, wanted: RestoreRestingState): void {
  const state = restoreState(machine);
  if (state !== wanted) throw new DemoFailure(`the restore should now be ${wanted}; its saved state is ${state}`);
  out(`  ✔ the restore's saved state: ${state}`);
}

async function burnDown(demo: Demo): Promise<void> {
  const { sandbox } = demo;
  const volumes: Record<Role, XfsVolume> = { root: sandbox.root, boot: sandbox.boot, home: sandbox.home };
  out('  Before the fire, for the comparison afterwards: a snapshot of every entry of /, /boot and');
  out('  /home, metadata included (/ without its runtime junk, which is never backed up), and the');
  out('  identity of each file system as blkid reads it.');
  const runtime = await runtimeEntries(sandbox.root.mountPoint);
  const before: Record<Role, Snapshot> = {
    root: await snapshotTree(sandbox.root.mountPoint, { exclude: runtime }),
    boot: await snapshotTree(sandbox.boot.mountPoint),
    home: await snapshotTree(sandbox.home.mountPoint),
  };
  const ids = {} as Record<Role, FsIds>;
  for (const role of ROLES) ids[role] = await fsIds(volumes[role].device);
  demo.drill = { before, runtime, ids };
  for (const role of ROLES)
    out(`    ${SHOWN[role].padEnd(6)} ${volumes[role].device.padEnd(11)} ${showIds(ids[role])}  (${before[role].size} entries)`);
  checkInterrupted();
  out();
  out('  The fire: each file system is unmounted, its loop device detached and its image deleted.');
  out('  Only the backup disk survives. (They must be gone for another reason too: the restore gives');
  out('  the new file systems these same UUIDs, and XFS will not mount two file systems with one UUID.)');
  for (const role of ROLES) {
    const v = volumes[role];
    await v.destroy();
    out(`    ✗ ${SHOWN[role].padEnd(6)} umount ${v.mountPoint}; losetup -d ${v.device}; rm ${v.image}`);
  }
  out(`    ✔ target ${demo.target.device.padEnd(11)} → ${demo.target.mountPoint}  (${(await listBackups(demo)).length} backup)`);
}

async function newMachine(demo: Demo): Promise<void> {
  const drill = drillOf(demo);
  const dir = demo.sandbox.dir;
  out('  Blank disks: three freshly made, empty XFS file systems with new UUIDs and labels of their');
  out('  own, the surviving backup disk attached, and syn3-backup installed with the same host name');
  out('  and target as before:');
  const volumes = {} as Record<Role, XfsVolume>;
  // One at a time: parallel `losetup --find` calls can race for the same free device.
  for (const role of ROLES) volumes[role] = await createXfsVolume(dir, `new${role}`, XFS_MIN_MIB, { label: `new${role}` });
  checkInterrupted();
  const state = join(volumes.root.mountPoint, 'var', 'lib', 'syn3-backup');
  const machine = { configFile: join(dir, 'new-machine.yaml'), volumes, state };
  drill.machine = machine;
  for (const role of ROLES) {
    const v = volumes[role];
    out(`    ${SHOWN[role].padEnd(6)} ${v.device.padEnd(11)} → ${v.mountPoint}  ${showIds(await fsIds(v.device))}  (empty)`);
  }
  out();
  const text = `# ${machine.configFile}: the new machine's, with the old one's host and target
host: ${HOST}
schedule:
  every: 1h
mode: spool
paths:
  root: ${volumes.root.mountPoint}
  boot: ${volumes.boot.mountPoint}
  home: ${volumes.home.mountPoint}
  state: ${state}   # inside /, as /var/lib/syn3-backup is on a real server
  modules: ${demo.modules}
target:
  type: file
  path: ${demo.target.mountPoint}
  require_mount: true
  retention:
    keep: 3
restore:
  update_grub: false        # both would rebuild the running system's boot files:
  update_initramfs: false   # this host's real /boot, not the sandbox's
  grub_devices: []          # loop devices have no boot sector; never let it guess a disk of this host
trust:                      # no signing key of its own yet: only the old machine's public key, from the papers
  signing_key: ${join(dir, 'new-machine-signing.key')}
  public_keys:
    - "${demo.publicKey}"
`;
  await writeFile(machine.configFile, text);
  out(indent(text));
  out("  update_grub and update_initramfs are off because they would touch this host's real boot");
  out('  files (its /boot and initramfs), and GRUB gets no disk to install to: a sandbox has none.');
  out('  (On a real server this file is /etc/syn3-backup/config.yaml on the new /; here it stays');
  out("  outside the sandbox's /, which the restore formats, so that every step reads the same file.)");
  const r = await quietCli(machine, ['config', 'check']);
  expectExit('syn3-backup config check', r.exitCode);
  out(`  ✔ syn3-backup config check: ${r.stdout.split('\n')[0]}`);
}

async function confirmRestore(demo: Demo): Promise<void> {
  const machine = newMachineOf(demo);
  out('  restore takes the newest backup of this host on the target, says what it destroys and asks');
  out(`  for the host name (--confirm ${HOST} answers for a script). It reads the whole backup back`);
  out('  and checks its sha256 before anything is formatted; then /home gets its old UUID and label');
  out('  and the dump, and markers for the next boot are written.');
  out();
  expectExit('syn3-backup restore', await showCli(machine, ['--log-format', 'text', 'restore', '--confirm', HOST]));
  expectRestoreState(machine, 'awaitingReboot');
  out();
  out('  resume is what the boot hooks run. Before the reboot there is nothing for it to do:');
  out();
  expectExit('syn3-backup resume', await showCli(machine, ['--log-format', 'text', 'resume']));
  expectRestoreState(machine, 'awaitingReboot');
}

async function rebootAndFirstBoot(demo: Demo): Promise<void> {
  const machine = newMachineOf(demo);
  out('  — reboot: the initrd runs —');
  out('  On a real server the initramfs runs this before / is mounted (chrooted into the system copy');
  out('  on the restored /home): / and /boot are formatted with their old UUIDs and labels and filled');
  out('  from the system copy.');
  out();
  expectExit('syn3-backup resume --initrd', await showCli(machine, ['--log-format', 'text', 'resume', '--initrd']));
  expectRestoreState(machine, 'awaitingFirstBoot');
  out();
  out('  — first boot: post.restore —');
  out("  The restored / runs post.restore at its first boot: GRUB (no disk here), the modules'");
  out('  restores, DRBD (not configured here), then the restore disarms itself and cleans up.');
  out();
  expectExit('syn3-backup resume', await showCli(machine, ['--log-format', 'text', 'resume']));
  expectRestoreState(machine, 'done');
  out();
  out('  status on the restored machine. Its backup history starts afresh: the burnt machine kept its');
  out('  backup state outside its / (in the sandbox dir); on a real server /var/lib/syn3-backup comes back.');
  out();
  expectExit('syn3-backup status', await showCli(machine, ['status']));
}

/** A difference the restore itself makes on purpose, or a known loss; anything else fails the demo. */
interface Expected {
  covers: (path: string, entry: Entry | undefined) => boolean;
  change: 'added' | keyof Entry;
  why: string;
}

const at =
  (...paths: string[]) =>
  (path: string): boolean =>
    paths.includes(path);
const atOrBelow =
  (dir: string) =>
  (path: string): boolean =>
    path === dir || path.startsWith(`${dir}/`);
const symlinks = (_path: string, entry: Entry | undefined): boolean => entry?.type === 'symlink';

const DIFF_LINE = /^("(?:[^"\\]|\\.)*"): (.*)$/;

function matches(e: Expected, path: string, entry: Entry | undefined, detail: string): boolean {
  if (!e.covers(path, entry)) return false;
  if (e.change === 'added') return detail === 'only in second tree';
  return detail.startsWith(`${e.change} `);
}

const listed = (paths: string[]): string =>
  paths.length > 3 ? `${paths.slice(0, 3).join(', ')} and ${paths.length - 3} more` : paths.join(', ');

/**
 * Compares a tree from before the fire with the restored one. Prints how many entries are
 * identical and each expected difference that occurred, with its reason; returns the others.
 */
function compareRestored(what: string, before: Snapshot, after: Snapshot, options: DiffOptions, expected: Expected[]): string[] {
  const unexpected: string[] = [];
  const seen = new Map<Expected, string[]>();
  const differing = new Set<string>();
  for (const line of diffTrees(before, after, options)) {
    const m = DIFF_LINE.exec(line);
    const path = m ? (JSON.parse(m[1]!) as string) : '';
    const detail = m?.[2] ?? line;
    const e = m ? expected.find((x) => matches(x, path, before.get(path) ?? after.get(path), detail)) : undefined;
    if (!e) {
      unexpected.push(`${what}: ${line}`);
      continue;
    }
    if (before.has(path)) differing.add(path);
    if (!seen.get(e)?.includes(path)) seen.set(e, [...(seen.get(e) ?? []), path]);
  }
  if (unexpected.length) return unexpected;
  out(`  ✔ ${what}: identical: ${before.size - differing.size} entries${seen.size ? ', and as expected:' : ''}`);
  for (const [e, paths] of seen)
    out(`      ${e.change === 'added' ? '+' : '~'} ${listed(paths)}${e.change === 'added' ? '' : ` (${e.change})`}: ${e.why}`);
  return [];
}

async function proveRestore(demo: Demo): Promise<void> {
  const drill = drillOf(demo);
  const machine = newMachineOf(demo);
  out("  Each new file system's UUID and label against what blkid read before the fire:");
  for (const role of ROLES) {
    const now = await fsIds(machine.volumes[role].device);
    const was = drill.ids[role];
    if (now.uuid !== was.uuid || now.label !== was.label) {
      throw new DemoFailure(
        `${SHOWN[role]} on ${machine.volumes[role].device} has ${showIds(now)}; before the fire it had ${showIds(was)}`,
      );
    }
    out(`  ✔ ${SHOWN[role].padEnd(6)} ${machine.volumes[role].device.padEnd(11)} ${showIds(now)}, as before`);
  }
  out();
  out('  The new machine against the snapshots of the one that burnt, entry by entry (the same fields');
  out('  as above; for /home, as above, not the two mtimes xfsrestore never restores). Every');
  out('  difference must be one of the expected ones listed here with its reason, or the demo fails:');
  const after = {
    root: await snapshotTree(machine.volumes.root.mountPoint, { exclude: drill.runtime }),
    boot: await snapshotTree(machine.volumes.boot.mountPoint),
    home: await snapshotTree(machine.volumes.home.mountPoint),
  };
  const state = relative(machine.volumes.root.mountPoint, machine.state);
  const symlinkMtime: Expected = {
    covers: symlinks,
    change: 'mtime',
    why: 'symlinks: xfsrestore does not restore their mtime, and / and /boot travel in the home dump',
  };
  const unexpected = [
    ...compareRestored('/ vs before the fire', drill.before.root, after.root, {}, [
      {
        covers: at(POST_RESTORE, dirname(POST_RESTORE)),
        change: 'added',
        why: 'the first-boot hook the restore installs (disarmed now, see below)',
      },
      { covers: at(dirname(dirname(POST_RESTORE))), change: 'mtime', why: "post.restore's directory was added to it" },
      { covers: atOrBelow(state), change: 'added', why: "the restore's own state and log (paths.state), written after / came back" },
      { covers: at(dirname(state)), change: 'mtime', why: 'paths.state was added to it' },
      {
        covers: at('boot'),
        change: 'mtime',
        why: "/boot's mount point: it comes back as the copy's boot/, /boot's top directory, which the drbd.primary marker touched",
      },
      symlinkMtime,
    ]),
    ...compareRestored('/boot vs before the fire', drill.before.boot, after.boot, {}, [
      { covers: at('.'), change: 'mtime', why: "the initrd brought the restore's drbd.primary marker here, the first boot removed it" },
      symlinkMtime,
    ]),
    ...compareRestored('/home vs before the fire', drill.before.home, after.home, XFSRESTORE_LOSSES, [
      {
        covers: at(`${SYSTEM_COPY}/${POST_RESTORE}`, `${SYSTEM_COPY}/${dirname(POST_RESTORE)}`),
        change: 'added',
        why: 'post.restore in the system copy, which the initrd copies to / (disarmed now)',
      },
      {
        covers: at(`${SYSTEM_COPY}/${dirname(dirname(POST_RESTORE))}`, `${SYSTEM_COPY}/boot`),
        change: 'mtime',
        why: `the restore added its markers there (post.restore; ${DRBD_MARKER}, removed again)`,
      },
      { covers: at('system/spool'), change: 'mtime', why: "the module restores' marker was added and removed there" },
    ]),
  ];
  if (unexpected.length) {
    throw new DemoFailure(
      `the restored machine differs from the one that burnt in ${unexpected.length} unexpected places:\n${indent(unexpected.slice(0, 40).join('\n'))}${unexpected.length > 40 ? '\n    …' : ''}`,
    );
  }
  const hooks = [after.root.get(POST_RESTORE), after.home.get(`${SYSTEM_COPY}/${POST_RESTORE}`)];
  if (!hooks.every((h) => h?.type === 'file' && (h.mode & 0o111) === 0)) {
    throw new DemoFailure(
      `post.restore should be there, disarmed (not executable), in / and in the system copy: modes ${hooks.map((h) => (h ? `0${h.mode.toString(8)}` : 'missing')).join(', ')}`,
    );
  }
  out(
    `  ✔ post.restore is disarmed (mode 0${after.root.get(POST_RESTORE)!.mode.toString(8)}), so the next boot is an ordinary one; no other marker or working file is left`,
  );
  const loaded = await readFile(demo.database, 'utf8').catch(() => '');
  const backupId = loadRestoreState(loadConfig(machine.configFile))?.context.last?.backupId ?? '(unknown)';
  if (!loaded.includes(backupId))
    throw new DemoFailure(
      `the module restore did not load the dump of backup ${backupId} into ${demo.database}:\n${indent(loaded || '(no such file)')}`,
    );
  out(`  ✔ the module restore loaded the spooled dump of ${backupId} into ${demo.database}:`);
  out(indent(loaded, '      │ '));
}

const SECTIONS: Section[] = [
  { title: 'Write the configuration', run: writeConfig },
  { title: 'First tick: a backup is due, so it runs', run: firstTick },
  { title: 'Second tick: nothing is due', run: secondTick },
  { title: 'status and list', run: statusAndList },
  { title: 'Prove the dump: restore it with plain xfsrestore and compare', run: proveDump },
  { title: 'Prove the system copy: compare it with / and /boot', run: proveSystemCopy },
  { title: 'The server burns down', run: burnDown },
  { title: 'A new machine: blank disks, the same configuration', run: newMachine },
  { title: 'syn3-backup restore: /home now, / and /boot at the next boot', run: confirmRestore },
  { title: 'Reboot: the initrd restores / and /boot, the first boot finishes', run: rebootAndFirstBoot },
  { title: 'Prove the restore: compare the new machine with the one that burnt', run: proveRestore },
];

// ─── main ────────────────────────────────────────────────────────────────────

/** What the sandbox, the backup, the restore and the comparisons run. */
const TOOLS = [
  'losetup',
  'mkfs.xfs',
  'mount',
  'umount',
  'blkid',
  'xfsdump',
  'xfsrestore',
  'rsync',
  'getfacl',
  'setfacl',
  'getfattr',
  'setfattr',
  'mknod',
  'mkfifo',
];

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, tool)));
}

function preflight(): void {
  if (process.getuid?.() !== 0)
    throw new DemoFailure('the demo needs root: it creates loop devices and mounts XFS file systems (run it with sudo)');
  if (!existsSync(CLI)) throw new DemoFailure(`${CLI} does not exist: run "npm run build" first (or "npm run demo", which does)`);
  const missing = TOOLS.filter((t) => !onPath(t));
  if (missing.length)
    throw new DemoFailure(`not found on PATH: ${missing.join(', ')}; run "npm run setup" to install them (PATH=${process.env.PATH ?? ''})`);
}

/** Loop devices whose image lives under dir (deleted images too: a busy device outlives its image). */
async function loopsUnder(dir: string): Promise<string[]> {
  const r = await execa('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], { reject: false, stdin: 'ignore' });
  return String(r.stdout)
    .split('\n')
    .map((line) => /^(\S+)\s+(.*?)(?: \(deleted\))?\s*$/.exec(line))
    .filter((m): m is RegExpExecArray => !!m && m[2]!.startsWith(`${dir}/`))
    .map((m) => m[1]!);
}

/**
 * A restore command that failed or was killed halfway can leave a new volume mounted where the
 * sandbox does not know of it (the initrd phase's work dir under cliEnv.TMPDIR), or not mounted
 * at its mount point. Such mounts are unmounted, and each volume is put back where the sandbox
 * expects it, so that the clean-up can unmount and detach it as usual.
 */
async function releaseRestoreMounts(demo: Demo): Promise<void> {
  const { sandbox } = demo;
  const volumes = [sandbox.root, sandbox.boot, sandbox.home, demo.target, ...Object.values(demo.drill?.machine?.volumes ?? {})];
  const expected = new Set(volumes.map((v) => v.mountPoint));
  const mine = new Set(await loopsUnder(sandbox.dir));
  for (const m of readMounts().reverse()) {
    if (!mine.has(m.source) || expected.has(m.mountPoint)) continue;
    out(`  ${m.source} is still mounted at ${m.mountPoint} by an interrupted restore step: unmounting it`);
    const r = await execa('umount', [m.mountPoint], { reject: false, stdin: 'ignore' });
    if (r.failed) await execa('umount', ['-l', m.mountPoint], { reject: false, stdin: 'ignore' });
  }
  for (const v of Object.values(demo.drill?.machine?.volumes ?? {})) {
    if (!v.mounted || mountAt(v.mountPoint)?.source === v.device || mountPointsOf(v.device).length) continue;
    out(`  ${v.device} is not mounted at ${v.mountPoint} (an interrupted restore step): mounting it back for the clean-up`);
    const r = await execa('mount', ['-t', 'xfs', v.device, v.mountPoint], { reject: false, stdin: 'ignore' });
    if (r.failed) process.stderr.write(`demo: could not mount ${v.device} back: ${r.stderr}\n`);
  }
}

async function cleanup(demo: Demo | undefined): Promise<void> {
  const dir = demo?.sandbox.dir;
  if (demo) await releaseRestoreMounts(demo).catch((e: unknown) => process.stderr.write(`demo: ${String(e)}\n`));
  await destroyAll();
  const left = liveResourceCount();
  const loops = dir ? await loopsUnder(dir) : [];
  const mounted = dir ? readMounts().filter((m) => m.mountPoint.startsWith(`${dir}/`)) : [];
  // After Ctrl-C the sandbox's signal hook tears down at once, and cannot remove the dir while a restore step's mount is in it.
  if (dir && existsSync(dir) && !left && !loops.length && !mounted.length) await rm(dir, { recursive: true, force: true });
  if (left > 0) process.stderr.write(`demo: ${left} volume(s) could not be cleaned up; see the warnings above\n`);
  else if (loops.length || mounted.length)
    process.stderr.write(
      `demo: left in ${dir}: ${[...mounted.map((m) => `${m.source} mounted at ${m.mountPoint}`), ...loops].join(', ')}\n`,
    );
  else if (dir && existsSync(dir)) process.stderr.write(`demo: could not remove ${dir}\n`);
  else out(`  unmounted every file system, detached every loop device, removed ${dir ?? 'the temp dir'}`);
}

async function main(): Promise<number> {
  const started = performance.now();
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  const total = SECTIONS.length + 2;
  out('syn3-backup demo: a whole-server backup of a sandbox, end to end, proven by restoring the dump, then by a');
  out('restore of the whole server onto blank disks.');
  let demo: Demo | undefined;
  let current = '';
  let failure: unknown;
  const timed = async <T>(n: number, title: string, run: () => Promise<T>): Promise<T> => {
    checkInterrupted();
    current = title;
    heading(n, total, title);
    const t = performance.now();
    const result = await run();
    out(`  (${formatMs(Math.round(performance.now() - t))})`);
    return result;
  };
  try {
    preflight();
    demo = await timed(1, 'Build a sandbox', buildSandbox);
    for (const [i, section] of SECTIONS.entries()) await timed(i + 2, section.title, () => section.run(demo!));
  } catch (e) {
    failure = e;
  } finally {
    heading(total, total, 'Clean up');
    await cleanup(demo);
  }
  out();
  out(`total time: ${formatMs(Math.round(performance.now() - started))}`);
  if (failure === undefined) {
    out('demo OK: backed up, nothing due on the second tick, dump and system copy proven identical; the server');
    out('restored onto blank disks through every phase, the same as before the fire but for the expected differences.');
    return 0;
  }
  const message = interrupted
    ? `interrupted by ${interrupted}`
    : failure instanceof DemoFailure
      ? failure.message
      : ((failure as Error)?.stack ?? String(failure));
  process.stderr.write(`\ndemo FAILED${current ? ` in "${current}"` : ''}: ${message}\n`);
  return interrupted ? exitCodeOf(interrupted) : 1;
}

process.exitCode = await main();
