/** `config check` validates and prints the effective configuration; `config example` prints a starting point. */
import { formatDuration } from '../config/duration.js';
import { checkModulesDirectory } from '../config/modules-dir.js';
import type { Config } from '../config/schema.js';
import { EXIT, isUserError } from '../errors.js';
import { describeSnapshotSize } from '../config/snapshot-config.js';
import { configOnly, printJson, type GlobalOptions } from './context.js';

export const EXAMPLE_CONFIG = `# /etc/syn3-backup/config.yaml
schedule:
  daily: "02:00"          # or: every: 6h   or: cron: "0 2 * * 1-5"
mode: spool               # run modules/*.backup into <home>/system/spool
                          # or snapshot: /home on LVM, modules/*.freeze hold the databases
                          # while it is snapshotted, and the snapshot is dumped
# snapshot:
#   size: 20%             # copy-on-write space: a share of /home's volume, or e.g. 4G
#   freeze_timeout: 60s
paths:
  root: /
  boot: /boot
  home: /home
  state: /var/lib/syn3-backup
  modules: /usr/backup/modules
modules:
  timeout: 1h
target:
  type: file
  path: /mnt/backup       # a directory on a local or USB disk
  require_mount: true     # refuse to write when the disk is not mounted there
  retention:
    keep: 7
`;

export async function configCheckCommand(options: GlobalOptions & { json?: boolean }): Promise<number> {
  const config = configOnly(options);
  const warnings = configWarnings(config);
  if (options.json) printJson({ ...effectiveView(config), warnings });
  else {
    process.stdout.write(`${config.file}: valid\n${humanView(config)}`);
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  }
  return EXIT.ok;
}

/** What is valid but risky, or would stop a backup: said by config check, which otherwise prints "valid". */
export function configWarnings(c: Config): string[] {
  const warnings: string[] = [];
  if (c.target.type === 'ftp' && !c.target.secure) {
    warnings.push(
      `target.secure is false: the FTP password and every backup cross the network in clear, readable by anyone on the way; use FTPS (secure: true) if ${c.target.host} offers it`,
    );
  }
  if (c.target.type === 'ftp' && c.target.secure && c.target.allow_self_signed) {
    warnings.push(
      'target.allow_self_signed is true: any certificate is accepted, so a man in the middle can take the password; prefer ca_file',
    );
  }
  if (c.target.type === 'smb' && c.target.encryption === 'off') {
    warnings.push('target.encryption is off: the backups cross the network in clear even where the SMB server offers encryption');
  }
  try {
    const w = checkModulesDirectory(c);
    if (w) warnings.push(w);
  } catch (e) {
    if (!isUserError(e)) throw e;
    warnings.push(`${e.paragraph()} A backup is refused until then.`);
  }
  return warnings;
}

export async function configExampleCommand(): Promise<number> {
  process.stdout.write(EXAMPLE_CONFIG);
  return EXIT.ok;
}

function effectiveView(c: Config) {
  const schedule =
    c.schedule.kind === 'every'
      ? { every: formatDuration(c.schedule.ms) }
      : c.schedule.kind === 'daily'
        ? { daily: c.schedule.at }
        : { cron: c.schedule.expr };
  return {
    file: c.file,
    host: c.host,
    schedule,
    mode: c.mode,
    ...(c.mode === 'snapshot'
      ? { snapshot: { size: describeSnapshotSize(c.snapshot.size), freeze_timeout: formatDuration(c.snapshot.freeze_timeout) } }
      : {}),
    paths: c.paths,
    modules: { timeout: formatDuration(c.moduleTimeoutMs) },
    system_sync: { exclude: c.systemSyncExclude },
    target: c.target,
  };
}

function humanView(c: Config): string {
  const lines: string[] = [];
  const walk = (value: unknown, indent: string) => {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        lines.push(`${indent}${k}:`);
        walk(v, `${indent}  `);
      } else lines.push(`${indent}${k}: ${Array.isArray(v) ? `[${v.join(', ')}]` : String(v)}`);
    }
  };
  const { file: _file, ...rest } = effectiveView(c);
  walk(rest, '  ');
  return `${lines.join('\n')}\n`;
}
