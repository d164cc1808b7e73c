/**
 * `install`: puts the boot side of syn3-backup in place (initramfs hook and
 * local-premount script, post.restore, the first-boot unit), the hourly tick
 * (cron job or systemd timer), /usr/local/bin/syn3-backup, the example database
 * modules (in /etc/syn3-backup/modules.examples, where none runs) and, when
 * there is none, an example configuration. Safe to run again: it reports each path as
 * created, updated or unchanged. --prefix installs into another root (for
 * packaging and the tests); only with / does it call systemctl and
 * update-initramfs.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  applyAbsent,
  applyEnable,
  applyFile,
  daemonReload,
  enableModuleCommand,
  INSTALL_PATHS,
  installPlan,
  packageRoot,
  readModuleExamples,
  SCHEDULERS,
  systemdRunning,
  updateInitramfs,
  type CommandResult,
  type ItemResult,
  type Scheduler,
} from '../install.js';
import { EXIT, UserError } from '../errors.js';
import { EXAMPLE_CONFIG } from './config.js';
import { trustSchema } from '../config/trust-config.js';
import { configSchema } from '../config/schema.js';
import { createSigningKey } from '../signing/keys.js';
import { configOnly, printJson, type GlobalOptions } from './context.js';
import { papersSentence } from './key.js';

export interface InstallOptions extends GlobalOptions {
  json?: boolean;
  dryRun?: boolean;
  prefix?: string;
  /** What runs the hourly tick: cron (default), timer, none. */
  scheduler?: string;
}

export interface InstallReport {
  prefix: string;
  dryRun: boolean;
  scheduler: Scheduler;
  node: string;
  cli: string;
  files: ItemResult[];
  commands: CommandResult[];
  warnings: string[];
  /** The example modules installed, and how an administrator enables one. */
  moduleExamples: ModuleExamples;
}

export interface ModuleExamples {
  /** Where they are on the installed system. */
  directory: string;
  /** Their names (empty when the package has no examples/modules). */
  modules: string[];
  /** paths.modules, where an enabled module goes. */
  modulesDirectory: string;
  /** The command that enables the first one, as an example. */
  enable?: string;
}

export async function installCommand(options: InstallOptions): Promise<number> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new UserError('usage', 'syn3-backup install must run as root: it writes to /etc, /usr and the initramfs', {
      hint: 'Run it again as root (sudo syn3-backup install)',
    });
  }
  const scheduler = parseScheduler(options.scheduler);
  const prefix = parsePrefix(options.prefix);
  const dryRun = options.dryRun === true;
  const real = prefix === '/';

  const root = packageRoot();
  const cli = join(root, 'dist', 'bin', 'syn3-backup.mjs');
  const node = process.execPath;
  const warnings: string[] = [];
  if (!existsSync(cli))
    warnings.push(`${cli} does not exist yet: run "npm run build" in ${root}, or /usr/local/bin/syn3-backup will not start`);

  const examples = readModuleExamples(root);
  if (!examples)
    warnings.push(
      `${join(root, 'examples', 'modules')} is missing: no example database modules were installed (a complete checkout has them)`,
    );
  const plan = installPlan({ packageRoot: root, scheduler, node, cli, exampleConfig: EXAMPLE_CONFIG });
  const files: ItemResult[] = [];
  const commands: CommandResult[] = [];

  for (const item of plan) {
    if (item.kind === 'file') files.push(applyFile(prefix, item, dryRun));
    else if (item.kind === 'absent') files.push(applyAbsent(prefix, item, dryRun));
  }

  const systemctl = real && systemdRunning();
  if (systemctl) commands.push(await daemonReload(dryRun));
  for (const item of plan) {
    if (item.kind !== 'enable') continue;
    const { result, command } = await applyEnable(prefix, item, { dryRun, systemctl });
    files.push(result);
    if (command) commands.push(command);
  }

  // The server's signing key: made once, on the real root only (a package built with --prefix must not ship one).
  const signing = real ? ensureSigningKey(options, dryRun) : undefined;
  if (signing) commands.push(signing.command);

  if (real) {
    const initramfs = await updateInitramfs(dryRun);
    commands.push(initramfs);
    if (initramfs.status === 'skipped' || initramfs.status === 'failed')
      warnings.push(`${initramfs.command}: ${initramfs.detail ?? initramfs.status}`);
  }

  const moduleExamples = moduleExamplesOf(
    options,
    real,
    (examples ?? []).map((e) => e.name),
  );
  const report: InstallReport = { prefix, dryRun, scheduler, node, cli, files, commands, warnings, moduleExamples };
  if (options.json) printJson(report);
  else
    process.stdout.write(
      `${humanReport(report)}${signing?.publicKey ? `Made the signing key ${signing.file}. ${papersSentence(signing.publicKey)}` : ''}`,
    );
  for (const w of warnings) process.stderr.write(`syn3-backup: warning: ${w}\n`);
  return commands.some((c) => c.status === 'failed') ? EXIT.failed : EXIT.ok;
}

/** Runs "key init" when the configured signing key does not exist yet; an existing key is left as it is. */
function ensureSigningKey(options: InstallOptions, dryRun: boolean): { command: CommandResult; file: string; publicKey?: string } {
  const file = signingKeyPath(options);
  const command = 'syn3-backup key init';
  if (existsSync(file)) return { command: { command, status: 'skipped', detail: `${file} exists` }, file };
  if (dryRun) return { command: { command, status: 'would run', detail: file }, file };
  const publicKey = createSigningKey(file);
  return { command: { command, status: 'ran', detail: `${file}; public key ${publicKey}` }, file, publicKey };
}

/** trust.signing_key of the configuration just installed (or kept), or its default when that does not load yet. */
function signingKeyPath(options: InstallOptions): string {
  try {
    return configOnly(options).trust.signing_key;
  } catch {
    return trustSchema.parse({}).signing_key;
  }
}

/** paths.modules of the installed configuration on the real root; the default under a prefix, or when that does not load. */
function moduleExamplesOf(options: InstallOptions, real: boolean, modules: string[]): ModuleExamples {
  let modulesDirectory = configSchema.shape.paths.parse(undefined).modules;
  if (real) {
    try {
      modulesDirectory = configOnly(options).paths.modules;
    } catch {
      // The example configuration names the default.
    }
  }
  const first = modules.find((m) => m.endsWith('.backup')) ?? modules[0];
  return {
    directory: INSTALL_PATHS.moduleExamples,
    modules,
    modulesDirectory,
    ...(first ? { enable: enableModuleCommand(first, modulesDirectory) } : {}),
  };
}

function parseScheduler(value: string | undefined): Scheduler {
  const s = value ?? 'cron';
  if (!(SCHEDULERS as readonly string[]).includes(s)) {
    throw new UserError('usage', `--scheduler ${s} is not one of ${SCHEDULERS.join(', ')}`, {
      hint: 'Use --scheduler cron (an /etc/cron.d job), timer (syn3-backup.timer) or none (you start "syn3-backup tick" yourself)',
    });
  }
  return s as Scheduler;
}

function parsePrefix(value: string | undefined): string {
  const prefix = resolve(value ?? '/');
  if (value !== undefined && !value.startsWith('/')) {
    throw new UserError('usage', `--prefix ${value} must be an absolute path`, {
      hint: 'Give the root directory to install into, such as /mnt/newroot',
    });
  }
  let isDir = false;
  try {
    isDir = statSync(prefix).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir)
    throw new UserError('usage', `--prefix ${prefix} is not a directory`, { hint: 'Create it first, or give an existing root directory' });
  return prefix;
}

const VERB: Record<ItemResult['action'], [string, string]> = {
  created: ['created', 'would create'],
  updated: ['updated', 'would update'],
  removed: ['removed', 'would remove'],
  unchanged: ['unchanged', 'unchanged'],
};

function humanReport(r: InstallReport): string {
  const rows = r.files.map((f) => {
    const verb = VERB[f.action][r.dryRun ? 1 : 0];
    const details = [f.mode, f.note].filter(Boolean).join(', ');
    return [verb, `${f.file}${details ? ` (${details})` : ''}`] as const;
  });
  const cmds = r.commands.map((c) => [c.status, `${c.command}${c.detail ? `: ${c.detail}` : ''}`] as const);
  const all = [...rows, ...cmds];
  const width = Math.max(...all.map(([v]) => v.length));
  const lines = all.map(([v, what]) => `${v.padEnd(width)}  ${what}`);
  const head = r.dryRun ? `dry run: nothing was changed under ${r.prefix}` : `installed under ${r.prefix} (scheduler: ${r.scheduler})`;
  return `${head}\n${lines.join('\n')}\n${examplesParagraph(r.moduleExamples)}`;
}

function examplesParagraph(m: ModuleExamples): string {
  if (!m.enable) return '';
  return [
    `Database modules (MariaDB, PostgreSQL) are in ${m.directory} as examples, not run. To enable one, copy it`,
    `into paths.modules as root with mode 0700, e.g. ${m.enable}`,
    "(.backup and .restore for spool mode, .freeze for snapshot mode; see README there and each file's header).",
    '',
  ].join('\n');
}
