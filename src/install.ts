/**
 * The side effects of `syn3-backup install`: the boot hooks, units, cron job,
 * wrapper, example configuration and example database modules, written under a
 * prefix (a sandbox root in the tests, / for real). Every file is compared first, so a second run changes
 * nothing and says so; writes go through writeDurable and set the mode
 * explicitly.
 */
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from './errors.js';
import { syncDirectory, writeDurable } from './state/durable.js';
import { run } from './system/run.js';
import { requireTrusted } from './system/trust.js';
import { which } from './system/tools.js';

export type Scheduler = 'cron' | 'timer' | 'none';
export const SCHEDULERS: readonly Scheduler[] = ['cron', 'timer', 'none'];

/** What happened to one path (or, with --dry-run, what would). */
export type InstallAction = 'created' | 'updated' | 'unchanged' | 'removed';

/** Paths on the installed system (the prefix is prepended when writing). */
export const INSTALL_PATHS = {
  hook: '/usr/share/initramfs-tools/hooks/syn3-backup',
  premount: '/usr/share/initramfs-tools/scripts/local-premount/syn3-backup',
  postRestore: '/etc/postinst.d/post.restore',
  resumeService: '/etc/systemd/system/syn3-backup-resume.service',
  resumeWants: '/etc/systemd/system/multi-user.target.wants/syn3-backup-resume.service',
  tickService: '/etc/systemd/system/syn3-backup.service',
  tickTimer: '/etc/systemd/system/syn3-backup.timer',
  timerWants: '/etc/systemd/system/timers.target.wants/syn3-backup.timer',
  cron: '/etc/cron.d/syn3-backup',
  wrapper: '/usr/local/bin/syn3-backup',
  config: '/etc/syn3-backup/config.yaml',
  /** The database modules shipped as examples: not executable, and not in paths.modules, so none runs until enabled. */
  moduleExamples: '/etc/syn3-backup/modules.examples',
} as const;

/** Where the example modules sit in the package, beside boot/. */
export const MODULE_EXAMPLES_SOURCE = join('examples', 'modules');

export type InstallItem =
  | {
      kind: 'file';
      path: string;
      content: string;
      mode: number;
      /** post.restore: the restore sets its execute bit; an install must not take it away. */
      keepExecBit?: boolean;
      /** The configuration: written only when there is none. */
      onlyIfAbsent?: boolean;
    }
  | {
      /** A unit enabled (its .wants symlink present) or disabled (absent). */
      kind: 'enable';
      path: string;
      unit: string;
      target: string;
      enabled: boolean;
      /** With systemctl: also start/stop it (the timer), not only at the next boot. */
      now?: boolean;
    }
  | { kind: 'absent'; path: string };

export interface ItemResult {
  /** The path on the installed system. */
  path: string;
  /** Where it is on this machine (prefix + path). */
  file: string;
  kind: InstallItem['kind'];
  action: InstallAction;
  mode?: string;
  note?: string;
}

export interface CommandResult {
  command: string;
  status: 'ran' | 'failed' | 'skipped' | 'would run';
  detail?: string;
}

/** The directory holding package.json above `from` (a source file, or a chunk in dist/bin). */
export function packageRoot(from: string = import.meta.url): string {
  let dir = dirname(from.startsWith('file:') ? fileURLToPath(from) : from);
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && !dir.endsWith('/dist')) return dir;
    const up = dirname(dir);
    if (up === dir) throw new UserError('internal', `cannot find the syn3-backup package (package.json) above ${from}`);
    dir = up;
  }
}

export function readBootFile(root: string, name: string): string {
  const file = join(root, 'boot', name);
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError('internal', `the boot file ${file} is missing from the syn3-backup package`, {
      hint: 'Reinstall syn3-backup from a complete checkout (boot/ sits next to package.json)',
      cause: e,
    });
  }
}

/**
 * The example modules of the package by name, or undefined when this copy of the package has none
 * (one made of package.json, boot/ and dist/ alone): the rest of the install does not need them.
 */
export function readModuleExamples(root: string): Array<{ name: string; content: string }> | undefined {
  const dir = join(root, MODULE_EXAMPLES_SOURCE);
  if (!existsSync(dir)) return undefined;
  return readdirSync(dir)
    .filter((name) => /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) && lstatSync(join(dir, name)).isFile())
    .sort()
    .map((name) => ({ name, content: readFileSync(join(dir, name), 'utf8') }));
}

/** The command that enables one example module: a root-only copy in the modules directory. */
export function enableModuleCommand(name: string, modulesDir: string): string {
  return `install -D -m 0700 ${join(INSTALL_PATHS.moduleExamples, name)} ${join(modulesDir, name)}`;
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** /usr/local/bin/syn3-backup: node on this package's bundle, by absolute paths. */
export function wrapperScript(node: string, cli: string): string {
  return [
    '#!/bin/sh',
    '# syn3-backup: written by "syn3-backup install"; run that again after moving node or the program.',
    `exec ${shellQuote(node)} ${shellQuote(cli)} "$@"`,
    '',
  ].join('\n');
}

export interface PlanOptions {
  packageRoot: string;
  scheduler: Scheduler;
  /** Absolute path of node. */
  node: string;
  /** Absolute path of dist/bin/syn3-backup.mjs. */
  cli: string;
  exampleConfig: string;
}

/**
 * The wrapper runs this checkout's bundle as root from cron, and the boot files become the initrd's
 * and first boot's scripts: whoever can change any of them is root at the next tick. So node, the
 * bundle with its chunks, and the boot files must pass the trust rule (and so every directory above).
 */
export function requireTrustedCheckout(o: Pick<PlanOptions, 'packageRoot' | 'node' | 'cli'>): void {
  requireTrusted(realpathSync(o.node), 'file', 'node, which the wrapper runs');
  requireTrusted(o.packageRoot, 'directory', 'the syn3-backup checkout');
  // Not built yet: the install says so; the build's files are root's when root builds them.
  const bin = dirname(o.cli);
  if (existsSync(bin)) {
    requireTrusted(bin, 'directory', "the directory of syn3-backup's bundled CLI");
    for (const name of readdirSync(bin).filter((n) => n.endsWith('.mjs') || n.endsWith('.js'))) {
      requireTrusted(join(bin, name), 'file', `the bundled CLI's file ${name}`);
    }
  }
  if (existsSync(o.cli)) requireTrusted(o.cli, 'file', 'the bundled CLI the wrapper runs');
  const boot = join(o.packageRoot, 'boot');
  requireTrusted(boot, 'directory', "syn3-backup's boot files");
  for (const name of readdirSync(boot)) requireTrusted(join(boot, name), 'file', `the boot file ${name}`);
  // An example module, once enabled, runs as root too.
  const examples = join(o.packageRoot, MODULE_EXAMPLES_SOURCE);
  if (existsSync(examples)) {
    requireTrusted(examples, 'directory', "syn3-backup's example modules");
    for (const name of readdirSync(examples)) requireTrusted(join(examples, name), 'file', `the example module ${name}`);
  }
}

export function installPlan(o: PlanOptions): InstallItem[] {
  requireTrustedCheckout(o);
  const boot = (name: string) => readBootFile(o.packageRoot, name);
  const P = INSTALL_PATHS;
  const items: InstallItem[] = [
    { kind: 'file', path: P.hook, content: boot('initramfs-hook'), mode: 0o755 },
    { kind: 'file', path: P.premount, content: boot('initramfs-premount'), mode: 0o755 },
    { kind: 'file', path: P.postRestore, content: boot('post.restore'), mode: 0o644, keepExecBit: true },
    { kind: 'file', path: P.resumeService, content: boot('syn3-backup-resume.service'), mode: 0o644 },
    { kind: 'file', path: P.tickService, content: boot('syn3-backup.service'), mode: 0o644 },
    { kind: 'file', path: P.tickTimer, content: boot('syn3-backup.timer'), mode: 0o644 },
    { kind: 'file', path: P.wrapper, content: wrapperScript(o.node, o.cli), mode: 0o755 },
    { kind: 'file', path: P.config, content: o.exampleConfig, mode: 0o600, onlyIfAbsent: true },
    o.scheduler === 'cron' ? { kind: 'file', path: P.cron, content: boot('cron'), mode: 0o644 } : { kind: 'absent', path: P.cron },
    { kind: 'enable', path: P.resumeWants, unit: 'syn3-backup-resume.service', target: P.resumeService, enabled: true },
    { kind: 'enable', path: P.timerWants, unit: 'syn3-backup.timer', target: P.tickTimer, enabled: o.scheduler === 'timer', now: true },
  ];
  // Kept up to date like the boot files: they are the package's, to be copied, not edited in place.
  for (const { name, content } of readModuleExamples(o.packageRoot) ?? []) {
    items.push({ kind: 'file', path: join(P.moduleExamples, name), content, mode: 0o644 });
  }
  return items;
}

export function underPrefix(prefix: string, path: string): string {
  return resolve(prefix, `.${path}`);
}

function lstatOrUndefined(file: string): Stats | undefined {
  try {
    return lstatSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}

/** Creates the missing parent directories 0755 whatever the umask (writeDurable would make them 0700). */
function ensureParent(file: string): void {
  const missing: string[] = [];
  for (let dir = dirname(file); !existsSync(dir); dir = dirname(dir)) missing.unshift(dir);
  for (const dir of missing) {
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
  }
}

function notADirectory(file: string, what: string): UserError {
  return new UserError('usage', `${file} is ${what}, not a file syn3-backup can install over`, {
    hint: 'Move it out of the way and run syn3-backup install again',
  });
}

/** Writes one file when its content or mode differs. */
export function applyFile(prefix: string, item: Extract<InstallItem, { kind: 'file' }>, dryRun: boolean): ItemResult {
  const file = underPrefix(prefix, item.path);
  const st = lstatOrUndefined(file);
  const base = { path: item.path, file, kind: item.kind } as const;
  if (st?.isDirectory()) throw notADirectory(file, 'a directory');
  if (st && !st.isFile() && !st.isSymbolicLink()) throw notADirectory(file, 'a special file');
  if (st && item.onlyIfAbsent) {
    const same = readFileSync(file, 'utf8') === item.content;
    return { ...base, action: 'unchanged', mode: octal(st.mode), ...(same ? {} : { note: 'existing file kept' }) };
  }
  const current = st?.isFile() ? readFileSync(file, 'utf8') : undefined;
  const currentMode = st?.isFile() ? st.mode & 0o7777 : undefined;
  const keep = item.keepExecBit && currentMode !== undefined && (currentMode & 0o111) !== 0;
  const mode = keep ? currentMode! : item.mode;
  if (current === item.content && currentMode === mode) {
    return { ...base, action: 'unchanged', mode: octal(mode), ...(keep ? { note: 'execute bit kept (a restore set it)' } : {}) };
  }
  const action: InstallAction = st ? 'updated' : 'created';
  if (!dryRun) {
    ensureParent(file);
    if (current === item.content && st?.isFile()) chmodSync(file, mode);
    else {
      if (st?.isSymbolicLink()) unlinkSync(file);
      writeDurable(file, item.content, mode);
      chmodSync(file, mode);
    }
    syncDirectory(dirname(file));
  }
  return { ...base, action, mode: octal(mode), ...(keep ? { note: 'execute bit kept (a restore set it)' } : {}) };
}

/** Removes a file the chosen scheduler does not want (the cron job under --scheduler timer). */
export function applyAbsent(prefix: string, item: Extract<InstallItem, { kind: 'absent' }>, dryRun: boolean): ItemResult {
  const file = underPrefix(prefix, item.path);
  const st = lstatOrUndefined(file);
  const base = { path: item.path, file, kind: item.kind } as const;
  if (!st) return { ...base, action: 'unchanged', note: 'absent' };
  if (st.isDirectory()) throw notADirectory(file, 'a directory');
  if (!dryRun) {
    unlinkSync(file);
    syncDirectory(dirname(file));
  }
  return { ...base, action: 'removed' };
}

/** Is the unit's .wants link there (pointing anywhere: systemctl may have made it)? */
function linkState(file: string): { present: boolean; target?: string } {
  const st = lstatOrUndefined(file);
  if (!st) return { present: false };
  if (st.isDirectory()) throw notADirectory(file, 'a directory');
  return st.isSymbolicLink() ? { present: true, target: readlinkSync(file) } : { present: true };
}

/**
 * Enables or disables a unit. Without systemctl (a prefix, or no systemd
 * running) it makes or removes the .wants symlink itself, as `systemctl enable`
 * would; with systemctl it asks systemctl and reports what changed.
 */
export async function applyEnable(
  prefix: string,
  item: Extract<InstallItem, { kind: 'enable' }>,
  o: { dryRun: boolean; systemctl: boolean },
): Promise<{ result: ItemResult; command?: CommandResult }> {
  const file = underPrefix(prefix, item.path);
  const base = { path: item.path, file, kind: item.kind } as const;
  const before = linkState(file);
  const right = item.enabled ? before.present && (o.systemctl || before.target === item.target) : !before.present;
  if (right) return { result: { ...base, action: 'unchanged', note: item.enabled ? 'enabled' : 'not enabled' } };
  const action: InstallAction = item.enabled ? (before.present ? 'updated' : 'created') : 'removed';
  const note = item.enabled ? 'enabled' : 'disabled';
  if (o.systemctl) {
    const args = [item.enabled ? 'enable' : 'disable', ...(item.now ? ['--now'] : []), item.unit];
    const command = `systemctl ${args.join(' ')}`;
    if (o.dryRun) return { result: { ...base, action, note }, command: { command, status: 'would run' } };
    await run('systemctl', args);
    return { result: { ...base, action, note }, command: { command, status: 'ran' } };
  }
  if (!o.dryRun) {
    ensureParent(file);
    if (item.enabled) {
      const temporary = `${file}.syn3-install-${process.pid}`;
      if (lstatOrUndefined(temporary)) unlinkSync(temporary);
      symlinkSync(item.target, temporary);
      renameSync(temporary, file);
    } else unlinkSync(file);
    syncDirectory(dirname(file));
  }
  return { result: { ...base, action, note } };
}

/** True when systemd is the running init (what sd_booted() checks). */
export function systemdRunning(): boolean {
  return existsSync('/run/systemd/system');
}

export async function daemonReload(dryRun: boolean): Promise<CommandResult> {
  const command = 'systemctl daemon-reload';
  if (dryRun) return { command, status: 'would run' };
  await run('systemctl', ['daemon-reload']);
  return { command, status: 'ran' };
}

/** Rebuilds the initramfs so it holds the hook and premount script; skipped (with a warning) without initramfs-tools. */
export async function updateInitramfs(dryRun: boolean): Promise<CommandResult> {
  const command = 'update-initramfs -u';
  if (!(await which('update-initramfs'))) {
    return {
      command,
      status: 'skipped',
      detail: 'update-initramfs not found: install initramfs-tools, or the initrd phase of a restore cannot run',
    };
  }
  if (dryRun) return { command, status: 'would run' };
  try {
    await run('update-initramfs', ['-u'], { timeoutMs: 15 * 60_000 });
    return { command, status: 'ran' };
  } catch (e) {
    return { command, status: 'failed', detail: (e as Error).message };
  }
}
