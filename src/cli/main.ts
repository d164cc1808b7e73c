#!/usr/bin/env node
/**
 * The command line. Commands are imported when they run, so `tick` with
 * nothing due starts fast (cron runs it every hour).
 */
import { Command, CommanderError, Option } from 'commander';
import { EXIT, isUserError } from '../errors.js';
import { VERSION } from '../version.js';
import type { GlobalOptions } from './context.js';

type Action = (globals: GlobalOptions & Record<string, unknown>) => Promise<number>;

function program(): Command {
  const cli = new Command('syn3-backup')
    .description(
      'Whole-server disaster-recovery backup: rsync of / and /boot into /home, xfsdump of /home to a target, and a restore that boots.',
    )
    .version(VERSION)
    .option('-c, --config <file>', 'configuration file (default /etc/syn3-backup/config.yaml, or $SYN3_BACKUP_CONFIG)')
    .addOption(
      new Option('--log-format <format>', 'console log format: auto (readable on a terminal, quiet under cron), text, json (for journald)')
        .choices(['auto', 'text', 'json'])
        .default('auto'),
    )
    .option('-v, --verbose', 'show debug messages on the console')
    .option('-q, --quiet', 'only warnings and errors on the console')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  const action = (load: () => Promise<Action>) =>
    async function (this: Command) {
      const globals = { ...this.optsWithGlobals() } as GlobalOptions & Record<string, unknown>;
      process.exitCode = await (await load())(globals);
    };

  cli
    .command('tick')
    .description('what cron runs every hour: make a backup if one is due (quiet and exit 0 when not)')
    .option('--json', 'print the result as JSON')
    .action(action(async () => (await import('./backup-run.js')).backupCommand.bind(null, 'tick')));
  cli
    .command('backup')
    .description('make a backup now, whatever the schedule')
    .option('--json', 'print the result as JSON')
    .action(action(async () => (await import('./backup-run.js')).backupCommand.bind(null, 'backup')));
  cli
    .command('status')
    .description('the current state, last success and failure, next due time (exit 1 when the last run failed)')
    .option('--json', 'print as JSON')
    .action(action(async () => (await import('./status.js')).statusCommand));
  cli
    .command('list')
    .description('the backups on the target, oldest first')
    .option('--json', 'print as JSON: [{id, created, size, location, host, sha256, signature, signedBy}]')
    .option('--all-hosts', 'also list backups of other hosts on the same target')
    .action(action(async () => (await import('./list.js')).listCommand));
  cli
    .command('restore')
    .description('restore this host from a backup: shows what is destroyed, asks for the host name, then runs until a reboot is needed')
    .option('--from <id>', 'the backup to restore (default: the newest of this host)')
    .option('--confirm <host>', "confirm without asking, with this host's name (for scripts)")
    .option('--allow-unsigned', 'accept a backup with no signature at all (made before backups were signed); never a wrong one')
    .option('--json', 'print the result as JSON')
    .action(action(async () => (await import('./restore.js')).restoreCommand));
  cli
    .command('resume')
    .description('go on with a restore where it stopped (what the boot hooks run); exit 0 when nothing is pending')
    .option('--initrd', 'run the initrd phase (restore / and /boot); the initramfs hook passes it')
    .option('--json', 'print the result as JSON')
    .action(action(async () => (await import('./restore.js')).resumeCommand));
  cli
    .command('abort')
    .description('give up a restore that failed before /home was formatted')
    .option('--json', 'print the result as JSON')
    .action(action(async () => (await import('./restore.js')).abortCommand));
  cli
    .command('install')
    .description(
      'install the boot hooks (initramfs hook and premount script, post.restore, first-boot unit), the hourly cron job or timer, /usr/local/bin/syn3-backup and an example configuration; safe to run again',
    )
    .option('--prefix <dir>', 'install under this root directory instead of / (for packaging and tests; no systemctl, no update-initramfs)')
    .addOption(new Option('--scheduler <kind>', 'what runs the hourly tick').choices(['cron', 'timer', 'none']).default('cron'))
    .option('--dry-run', 'print what would change, change nothing')
    .option('--json', 'print the result as JSON')
    .action(action(async () => (await import('./install.js')).installCommand));
  const key = cli.command('key').description("this server's signing key: every backup is signed, and a restore checks the signature");
  key
    .command('init')
    .description('make the signing key at trust.signing_key (0600; never over an existing one) and print its public key')
    .option('--json', 'print as JSON: {file, publicKey}')
    .action(action(async () => (await import('./key.js')).keyInitCommand));
  key
    .command('show')
    .description('print the public key of the signing key, the line for trust.public_keys')
    .option('--json', 'print as JSON: {file, publicKey}')
    .action(action(async () => (await import('./key.js')).keyShowCommand));
  const config = cli.command('config').description('check or show the configuration');
  config
    .command('check')
    .description('validate the configuration and print the effective values')
    .option('--json', 'print as JSON')
    .action(action(async () => (await import('./config.js')).configCheckCommand));
  config
    .command('example')
    .description('print an example configuration file')
    .action(action(async () => (await import('./config.js')).configExampleCommand));
  return cli;
}

async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    if (isUserError(e)) {
      process.stderr.write(`syn3-backup: ${e.paragraph()}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    process.stderr.write(`syn3-backup: internal error, please report it with the log:\n${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 70;
  }
}

await main(process.argv);
