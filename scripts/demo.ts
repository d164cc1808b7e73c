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
 * Everything lives in one temp dir (the sandbox's) and its loop devices, and
 * goes away at the end: on success, on failure and on Ctrl-C.
 *
 * Each part is one function in SECTIONS, so a later part (a restore drill)
 * is one more entry there.
 */
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { formatBytes, formatMs } from '../src/format.js';
import { populateBootTree, populateRichTree, populateSystemTree, SYSTEM_VOLATILE_DIRS } from '../test/support/rich-tree.js';
import { createSandbox, createTargetVolume, createXfsVolume, destroyAll, liveResourceCount, type Sandbox, type XfsVolume } from '../test/support/sandbox.js';
import { diffTrees, snapshotTree, XFSRESTORE_LOSSES, type DiffOptions, type Snapshot } from '../test/support/tree-compare.js';

const CLI = fileURLToPath(new URL('../bin/syn3-backup.mjs', import.meta.url));
const HOST = 'demo-host';
const SYSTEM_COPY = '.syn3systembackup';
const MODULE_NAME = '10-database.backup';
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

/** What the sections share; filled in by the first. */
interface Demo {
  sandbox: Sandbox;
  /** The backup disk: its own XFS, mounted at <sandbox>/target. */
  target: XfsVolume;
  configFile: string;
  state: string;
  modules: string;
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

/** syn3-backup --config <demo config> <args>, shown and with its output on the terminal. */
async function showCli(demo: Demo, args: string[]): Promise<number> {
  shell('syn3-backup', ['--config', demo.configFile, ...args]);
  child = execa(process.execPath, [CLI, '--config', demo.configFile, ...args], { stdio: 'inherit', reject: false, env: { SYN3_BACKUP_CONFIG: undefined } });
  const r = await child;
  child = undefined;
  checkInterrupted();
  return r.exitCode ?? 128;
}

/** The same, with the output captured, the way cron runs it (no terminal). */
async function quietCli(demo: Demo, args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  child = execa(process.execPath, [CLI, '--config', demo.configFile, ...args], { stdin: 'ignore', reject: false, env: { SYN3_BACKUP_CONFIG: undefined } });
  const r = await child;
  child = undefined;
  checkInterrupted();
  return { exitCode: r.exitCode ?? 128, stdout: String(r.stdout), stderr: String(r.stderr) };
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
  };
  await mkdir(demo.modules, { recursive: true });
  await writeFile(join(demo.modules, MODULE_NAME), MODULE);
  await chmod(join(demo.modules, MODULE_NAME), 0o755);
  out();
  out(`  temp dir  ${sandbox.dir}`);
  for (const [name, v] of [['/', sandbox.root], ['/boot', sandbox.boot], ['/home', sandbox.home], ['target', demo.target]] as const) {
    const entries = name === 'target' ? 'empty' : `${await countEntries(v.mountPoint)} entries`;
    out(`  ${name.padEnd(8)}  ${v.device.padEnd(11)} → ${v.mountPoint}  (${entries})`);
  }
  out(`  module    ${join(demo.modules, MODULE_NAME)}: writes ${DUMP_NAME} into $SYN3_SPOOL`);
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
`;
  await writeFile(demo.configFile, text);
  out(indent(text));
  const r = await quietCli(demo, ['config', 'check']);
  expectExit('syn3-backup config check', r.exitCode);
  out(`  ✔ syn3-backup config check: ${r.stdout.split('\n')[0]}`);
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
  out('  restore symlink mtimes or the top directory\'s mtime; those two are not compared.)');
  const home = await snapshotTree(demo.sandbox.home.mountPoint);
  const restored = await snapshotTree(fresh.mountPoint);
  expectIdentical('home vs the restored dump', home, restored, XFSRESTORE_LOSSES);
  const dump = await readFile(join(fresh.mountPoint, 'system', 'spool', DUMP_NAME), 'utf8');
  if (!dump.includes(backup.id)) throw new DemoFailure(`the spooled ${DUMP_NAME} in the dump does not name backup ${backup.id}:\n${indent(dump)}`);
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
  expectIdentical('/ vs the system copy', await snapshotTree(root, { exclude: ['boot', ...runtime] }), await snapshotTree(copy, { exclude: ['boot'] }));
  expectIdentical('/boot vs the system copy\'s boot', await snapshotTree(demo.sandbox.boot.mountPoint), await snapshotTree(join(copy, 'boot')));
  const notEmpty: string[] = [];
  for (const d of SYSTEM_VOLATILE_DIRS) if ((await readdir(join(copy, d))).length) notEmpty.push(d);
  if (notEmpty.length) throw new DemoFailure(`runtime directories in the system copy are not empty: ${notEmpty.join(', ')}`);
  out(`  ✔ ${SYSTEM_VOLATILE_DIRS.join(', ')} are there as empty directories`);
}

const SECTIONS: Section[] = [
  { title: 'Write the configuration', run: writeConfig },
  { title: 'First tick: a backup is due, so it runs', run: firstTick },
  { title: 'Second tick: nothing is due', run: secondTick },
  { title: 'status and list', run: statusAndList },
  { title: 'Prove the dump: restore it with plain xfsrestore and compare', run: proveDump },
  { title: 'Prove the system copy: compare it with / and /boot', run: proveSystemCopy },
  // A restore drill (syn3-backup restore onto blank disks, then compare) goes here.
];

// ─── main ────────────────────────────────────────────────────────────────────

/** What the sandbox, the backup and the comparison run. */
const TOOLS = ['losetup', 'mkfs.xfs', 'mount', 'umount', 'xfsdump', 'xfsrestore', 'rsync', 'getfacl', 'setfacl', 'getfattr', 'setfattr', 'mknod', 'mkfifo'];

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, tool)));
}

function preflight(): void {
  if (process.getuid?.() !== 0) throw new DemoFailure('the demo needs root: it creates loop devices and mounts XFS file systems (run it with sudo)');
  if (!existsSync(CLI)) throw new DemoFailure(`${CLI} does not exist: run "npm run build" first (or "npm run demo", which does)`);
  const missing = TOOLS.filter((t) => !onPath(t));
  if (missing.length) throw new DemoFailure(`not found on PATH: ${missing.join(', ')}; run "npm run setup" to install them (PATH=${process.env.PATH ?? ''})`);
}

async function cleanup(dir: string | undefined): Promise<void> {
  await destroyAll();
  const left = liveResourceCount();
  if (left > 0) process.stderr.write(`demo: ${left} volume(s) could not be cleaned up; see the warnings above\n`);
  else if (dir && existsSync(dir)) process.stderr.write(`demo: could not remove ${dir}\n`);
  else out(`  unmounted every file system, detached every loop device, removed ${dir ?? 'the temp dir'}`);
}

async function main(): Promise<number> {
  const started = performance.now();
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  const total = SECTIONS.length + 2;
  out('syn3-backup demo: a whole-server backup of a sandbox, end to end, then proven by a restore.');
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
    await cleanup(demo?.sandbox.dir);
  }
  out();
  out(`total time: ${formatMs(Math.round(performance.now() - started))}`);
  if (failure === undefined) {
    out('demo OK: backed up, nothing due on the second tick, dump and system copy proven identical.');
    return 0;
  }
  const message = interrupted ? `interrupted by ${interrupted}` : failure instanceof DemoFailure ? failure.message : ((failure as Error)?.stack ?? String(failure));
  process.stderr.write(`\ndemo FAILED${current ? ` in "${current}"` : ''}: ${message}\n`);
  return interrupted ? exitCodeOf(interrupted) : 1;
}

process.exitCode = await main();
