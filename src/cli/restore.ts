/**
 * `restore`: CONFIRM_RESTORE. Shows what will be destroyed and what comes
 * back, asks for the host name (or takes --confirm HOST), then runs the
 * restore up to the point where the machine must reboot.
 * `resume`: what the boot hooks run. `abort`: give up a restore that failed
 * before anything was destroyed.
 */
import { createInterface } from 'node:readline/promises';
import type { RestoreContext, RestoreEvent, RestoreRestingState } from '../../machines/restore.js';
import { TAGS } from '../../machines/tags.js';
import { EXIT, UserError } from '../errors.js';
import { formatBytes } from '../format.js';
import { mountAt } from '../system/mounts.js';
import { loadRestoreState, runRestore, type RestoreRunResult } from '../restore/run.js';
import { approveUnsigned, withdrawUnsignedApproval } from '../signing/unsigned-approval.js';
import { createTarget } from '../targets/index.js';
import type { StoredBackup, Target } from '../targets/target.js';
import { freshHome } from '../system/fresh-home.js';
import { unkeptTimesSentence } from '../system/unkept-times.js';
import { quotaMountOptions } from '../system/xfs-quota.js';
import { commandContext, printJson, type CommandContext, type GlobalOptions } from './context.js';

export async function restoreCommand(
  options: GlobalOptions & { from?: string; confirm?: string; json?: boolean; allowUnsigned?: boolean },
): Promise<number> {
  const ctx = commandContext(options, 'restore');
  const { config } = ctx;
  const pending = loadRestoreState(config);
  if (pending && !pending.snapshot.can({ type: 'CONFIRM_RESTORE', now: 0, restoreId: '', backupId: '' })) {
    throw new UserError('usage', `a restore of backup ${pending.context.current?.backupId} is already in progress (${pending.state})`, {
      hint: 'Run "syn3-backup resume" to go on with it, or "syn3-backup abort" if it failed before /home was formatted',
    });
  }
  const { backup, target } = await chooseBackup(ctx, options.from);
  // The preflight decides alike, on the same rule (src/system/fresh-home.ts).
  const fresh = target.localPath ? undefined : await freshHome(config);
  if (!options.json) process.stdout.write(plan(ctx, backup, fresh));
  // What is typed is the name of the host whose backup this is: a typo in --from cannot slip through.
  await confirm(backup.metadata.host, config.host, options.confirm);
  // Kept on disk for this backup only: a preflight run again by "resume" must decide alike.
  if (options.allowUnsigned) approveUnsigned(config.paths.state, backup.id);
  else withdrawUnsignedApproval(config.paths.state);
  const outcome = await runRestore(config, ctx.log, 'restore', () => ({
    type: 'CONFIRM_RESTORE',
    now: Date.now(),
    restoreId: ctx.runId,
    backupId: backup.id,
  }));
  return report(outcome, options.json, config.paths.home);
}

export async function resumeCommand(options: GlobalOptions & { initrd?: boolean; json?: boolean }): Promise<number> {
  const ctx = commandContext(options, options.initrd ? 'resume --initrd' : 'resume');
  // An interrupted phase goes on by itself once the state is loaded; a resting one needs the event.
  const outcome = await runRestore(ctx.config, ctx.log, 'resume', (s) => {
    const resume: RestoreEvent = { type: 'RESUME', now: Date.now(), inInitrd: !!options.initrd };
    return s.can(resume) ? resume : undefined;
  });
  return report(outcome, options.json, ctx.config.paths.home);
}

export async function abortCommand(options: GlobalOptions & { json?: boolean }): Promise<number> {
  const ctx = commandContext(options, 'abort');
  let refused = false;
  const outcome = await runRestore(ctx.config, ctx.log, 'abort', (s) => {
    const abort: RestoreEvent = { type: 'ABORT', now: Date.now() };
    refused = s.hasTag(TAGS.failed) && !s.can(abort);
    return refused ? undefined : abort;
  });
  if (outcome.result === 'rested' && refused) {
    throw new UserError(
      'usage',
      `the restore cannot be aborted: it failed at ${outcome.context.current?.failedPhase}, after /home was formatted`,
      {
        hint: 'Fix the cause and run "syn3-backup resume" to finish it',
      },
    );
  }
  return report(outcome, options.json, ctx.config.paths.home);
}

async function chooseBackup(ctx: CommandContext, from: string | undefined): Promise<{ backup: StoredBackup; target: Target }> {
  const target = await createTarget(ctx.config.target, { stateDir: ctx.config.paths.state, host: ctx.config.host });
  const all = await target.list();
  if (from) {
    const b = all.find((x) => x.id === from);
    if (!b)
      throw new UserError('usage', `backup ${from} is not on ${target.description}`, {
        hint: 'Run "syn3-backup list --all-hosts" to see the backups there',
      });
    return { backup: b, target };
  }
  const mine = all.filter((b) => b.metadata.host === ctx.config.host);
  const latest = mine.at(-1);
  if (!latest) {
    throw new UserError('restore', `there is no backup of ${ctx.config.host} on ${target.description}`, {
      hint: 'Attach the backup target (and check target in the configuration), or name a backup of another host with --from ID',
    });
  }
  return { backup: latest, target };
}

function plan(ctx: CommandContext, b: StoredBackup, fresh: { holds: string } | undefined): string {
  const { paths } = ctx.config;
  const dev = (p: string) => mountAt(p)?.source ?? '(not mounted)';
  const quotas = quotaMountOptions(b.metadata.layout.home.quota);
  return [
    b.metadata.host === ctx.config.host
      ? `This restores ${ctx.config.host} from backup ${b.id}`
      : `This restores ${ctx.config.host} from backup ${b.id} of ANOTHER HOST, ${b.metadata.host}: confirm with that host's name`,
    `  made ${b.created} on ${b.metadata.host}, ${formatBytes(b.size)}, from ${b.location}`,
    ...(b.metadata.unkeptTimes ? [`  ${unkeptTimesSentence(b.metadata.unkeptTimes, paths.home)}`] : []),
    `It DESTROYS:`,
    `  now:              ${paths.home} on ${dev(paths.home)} (formatted, then filled from the backup${quotas ? `; mounted with ${quotas} and its quota limits set again` : ''})`,
    `  at the next boot: ${paths.root} on ${dev(paths.root)} and ${paths.boot} on ${dev(paths.boot)} (formatted, then filled from the system copy)`,
    `Services using ${paths.home} are stopped first.`,
    fresh
      ? `${paths.home} holds only what a fresh installation puts there (${fresh.holds}), so it is formatted without reading the backup first: the backup is verified while it is restored (its length, sha256 and xfsrestore's verdict), not transferred twice.`
      : `The backup is read back in full before anything is formatted.`,
    '',
  ].join('\n');
}

/** The name to type: the host whose backup it is, which names itself when it is not this one. */
async function confirm(host: string, thisHost: string, given: string | undefined): Promise<void> {
  const name =
    host === thisHost ? `this host's name (${host})` : `the name of the host the backup is of (${host}; this host is ${thisHost})`;
  if (given !== undefined) {
    if (given !== host) {
      throw new UserError('usage', `--confirm ${given} does not match ${name}; nothing was touched`, { hint: `Pass --confirm ${host}` });
    }
    return;
  }
  if (!process.stdin.isTTY) {
    throw new UserError('usage', 'the restore needs a confirmation and there is no terminal to ask on; nothing was touched', {
      hint: `Pass --confirm ${host}`,
    });
  }
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  const answer = (await rl.question(`Type ${name} to confirm: `)).trim();
  rl.close();
  if (answer !== host)
    throw new UserError('usage', 'the confirmation did not match; nothing was touched', { hint: `Type ${host} exactly` });
}

const NEXT: Partial<Record<RestoreRestingState, string>> = {
  awaitingReboot: 'Reboot now: at the next boot the initrd restores / and /boot from the system copy.',
  awaitingFirstBoot: 'Boot the restored system: its first boot finishes the restore (GRUB, module restores, DRBD).',
  done: 'The system is restored.',
  idle: 'No restore is in progress.',
};

function report(outcome: RestoreRunResult, json: boolean | undefined, home: string): number {
  if (outcome.result === 'busy') {
    throw new UserError(
      'usage',
      `another syn3-backup run holds the lock (pid ${outcome.holder.pid}, ${outcome.holder.command}, since ${outcome.holder.since})`,
      {
        hint: 'Wait for it to finish, then run the command again',
      },
    );
  }
  const c: RestoreContext = outcome.context;
  if (json) printJson({ state: outcome.state, restore: c.current ?? null, last: c.last ?? null });
  if (outcome.snapshot.hasTag(TAGS.failed)) {
    const cur = c.current!;
    const safe = outcome.snapshot.can({ type: 'ABORT', now: 0 });
    const again =
      cur.failedPhase === 'initrd'
        ? 'reboot (or leave the initramfs shell) to run it again, or run "syn3-backup resume --initrd"'
        : 'run "syn3-backup resume" to go on from this phase';
    throw new UserError('restore', `the restore of backup ${cur.backupId} failed at ${cur.failedPhase}: ${cur.reason}`, {
      hint: safe ? `Nothing was destroyed yet: fix the cause and ${again}, or "syn3-backup abort"` : `Fix the cause and ${again}`,
      exitCode: EXIT.failed,
    });
  }
  if (!json) {
    const finished = !outcome.snapshot.hasTag(TAGS.inProgress) && c.last?.result === 'restored';
    const last = finished && outcome.moved ? ` (restored from backup ${c.last?.backupId})` : '';
    const next = NEXT[outcome.state as RestoreRestingState] ?? outcome.state;
    process.stdout.write(`${outcome.moved ? '' : 'Nothing to resume. '}${next}${last}\n`);
    // Once /home is back, its summary repeats what the plan said of the times the dump could not keep.
    const unkept = c.current?.plan?.unkeptTimes;
    if (outcome.moved && outcome.state === 'awaitingReboot' && unkept)
      process.stdout.write(`${unkeptTimesSentence(unkept, home, 'done')}\n`);
  }
  return EXIT.ok;
}
