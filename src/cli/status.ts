/** `status`: where the backup machine stands, the last success and failure, the next due time. */
import { backupSnapshotOf, type BackupContext } from '../../machines/backup.js';
import { TAGS } from '../../machines/tags.js';
import { dueAt } from '../../machines/schedule.js';
import type { HistoryEntry } from '../../machines/types.js';
import { EXIT } from '../errors.js';
import { formatBytes, formatMs, formatTime } from '../format.js';
import { stateName } from '../../machines/state-name.js';
import { SnapshotStore } from '../state/store.js';
import { configOnly, printJson, type GlobalOptions } from './context.js';
import type { Config } from '../config/schema.js';
import { modulesDirectoryWarning } from '../config/modules-dir.js';
import { restoreSnapshotOf, type RestoreContext, type RestoreRestingState } from '../../machines/restore.js';
import { restoreStore } from '../state/stores.js';
import { readDrbdWaiting, waitingAdvice } from '../state/drbd-waiting.js';
import { Drbd } from '../system/drbd.js';

interface SavedSnapshot {
  value: unknown;
  context: BackupContext;
}

export async function statusCommand(options: GlobalOptions & { json?: boolean }): Promise<number> {
  const config = configOnly(options);
  const saved = new SnapshotStore(config.paths.state, 'backup').load() as SavedSnapshot | undefined;
  const context: BackupContext = saved?.context ?? { consecutiveFailures: 0, history: [] };
  const state = saved ? stateName(saved.value) : 'idle';
  const nextDue = dueAt(config.schedule, { lastSuccessAt: context.lastSuccess?.finishedAt, retryAt: context.retryAt });
  const restore = restoreSummary(config);
  const drbd = await drbdStillWaiting(config);
  const modulesWarning = modulesDirectoryWarning(config);
  const report = {
    host: config.host,
    state,
    running: context.run
      ? {
          id: context.run.id,
          startedAt: formatTime(context.run.startedAt),
          trigger: context.run.trigger,
          mode: context.run.mode ?? 'spool',
        }
      : null,
    lastSuccess: entryJson(context.lastSuccess),
    lastFailure: entryJson(context.lastFailure),
    consecutiveFailures: context.consecutiveFailures,
    retentionWarning: context.retentionWarning
      ? { id: context.retentionWarning.id, at: formatTime(context.retentionWarning.at), reason: context.retentionWarning.reason }
      : null,
    nextDue: nextDue === 0 ? 'now' : formatTime(nextDue),
    target: config.target.type === 'file' ? config.target.path : config.target.type,
    stateFile: new SnapshotStore(config.paths.state, 'backup').file,
    restore,
    modulesWarning: modulesWarning ?? null,
    drbdWaiting: drbd,
  };
  if (options.json) printJson(report);
  else {
    const modules = modulesWarning ? `warning:       ${modulesWarning}\n` : '';
    const waits = drbd.map((w) => `drbd:          ${w.resource} ${w.advice}\n`).join('');
    process.stdout.write(humanStatus(report, context) + modules + (restore ? `restore:       ${restore.summary}\n` : '') + waits);
  }
  const backupFailed = saved ? backupSnapshotOf(saved).hasTag(TAGS.failed) : false;
  return backupFailed || restore?.failed ? EXIT.failed : EXIT.ok;
}

/**
 * What the first boot after a restore left waiting, as far as DRBD says it still waits: a
 * resource that was primary waits until it is primary again, a secondary until it has its peer.
 */
async function drbdStillWaiting(config: Config) {
  const left = readDrbdWaiting(config.paths.state);
  const drbd = left.length ? await Drbd.of(config.paths.root) : undefined;
  if (!drbd) return [];
  const still = [];
  for (const w of left) {
    const done = w.primary ? (await drbd.role(w.resource)) === 'Primary' : await drbd.withPeer(w.resource);
    if (!done) still.push({ ...w, advice: waitingAdvice(w, await drbd.connection(w.resource)) });
  }
  return still;
}

function entryJson(e: HistoryEntry | undefined) {
  if (!e) return null;
  return { ...e, startedAt: formatTime(e.startedAt), finishedAt: formatTime(e.finishedAt) };
}

function humanStatus(r: { host: string; state: string; nextDue: string; target: string }, c: BackupContext): string {
  const lines = [
    `host:          ${r.host}`,
    `state:         ${r.state}${c.run ? ` (backup ${c.run.id} since ${formatTime(c.run.startedAt)})` : ''}`,
  ];
  const s = c.lastSuccess;
  lines.push(
    `last success:  ${s ? `${s.id} at ${formatTime(s.finishedAt)}, ${formatBytes(s.size ?? 0)} in ${formatMs(s.durationMs)}${s.freezeWindowMs === undefined ? '' : `; databases frozen ${formatMs(s.freezeWindowMs)}`}` : 'never'}`,
  );
  const f = c.lastFailure;
  if (f) lines.push(`last failure:  ${f.id} at ${formatTime(f.finishedAt)} in ${f.step}: ${f.reason}`);
  const w = c.retentionWarning;
  if (w) lines.push(`warning:       retention after backup ${w.id} failed at ${formatTime(w.at)}: ${w.reason} (old backups were kept)`);
  if (c.consecutiveFailures) lines.push(`failures:      ${c.consecutiveFailures} in a row; retry not before ${formatTime(c.retryAt)}`);
  lines.push(`next due:      ${r.nextDue}`, `target:        ${r.target}`);
  return `${lines.join('\n')}\n`;
}

const WAITING: Partial<Record<RestoreRestingState, string>> = {
  awaitingReboot: 'waiting for a reboot (the initrd restores / and /boot)',
  awaitingFirstBoot: 'waiting for the first boot of the restored system (post.restore)',
};

/** The restore's part of the status: in progress, failed (with what to do), or the last one done. */
function restoreSummary(config: Config) {
  const saved = restoreStore(config).load() as { value: unknown; context: RestoreContext } | undefined;
  if (!saved) return null;
  const state = stateName(saved.value);
  const failed = restoreSnapshotOf(saved).hasTag(TAGS.failed);
  const c = saved.context;
  const cur = c.current;
  let summary: string;
  if (cur && failed)
    summary = `backup ${cur.backupId}: FAILED at ${cur.failedPhase}: ${cur.reason} (run "syn3-backup resume" after fixing it)`;
  else if (cur) summary = `backup ${cur.backupId}: ${WAITING[state as RestoreRestingState] ?? `in progress (${state})`}`;
  else if (c.last?.result === 'restored')
    summary = `the system was restored from backup ${c.last.backupId} at ${formatTime(c.last.finishedAt)}`;
  else if (c.last) summary = `the restore of backup ${c.last.backupId} was ${c.last.result}`;
  else return null;
  return {
    state,
    failed,
    backupId: cur?.backupId ?? c.last?.backupId ?? null,
    failedPhase: cur?.failedPhase ?? null,
    reason: cur?.reason ?? null,
    last: c.last ?? null,
    summary,
  };
}
