/**
 * The real actors behind the backup machine's steps, bound to one
 * configuration, target and logger. Each is idempotent: XState re-invokes an
 * in-flight step when a saved snapshot is restored after a crash. The actor
 * modules are imported when a step runs, so a tick with nothing due does not
 * pay for loading them.
 */
import { rmSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import type { InputFrom, OutputFrom } from 'xstate';
import { step } from '../steps.js';
import { STEP_OF_BACKUP_ACTOR, type backupActors } from '../../machines/backup.js';
import type { Config } from '../config/schema.js';
import { UserError } from '../errors.js';
import { LOG_FILE, type Logger } from '../log.js';
import { mountAt } from '../system/mounts.js';
import { ensureTrustedDirectory } from '../system/trust.js';
import type { UnkeptTimesFound } from '../system/find-unkept-times.js';
import { unkeptTimesOf, unkeptTimesSentence } from '../system/unkept-times.js';
import { readSigningKey } from '../signing/keys.js';
import { signMetadata } from '../signing/signature.js';
import { validateMetadata } from '../targets/kit/metadata.js';
import { METADATA_FORMAT, type BackupMetadata, type Target } from '../targets/target.js';
import { PROGRAM } from '../version.js';
import { formatBytes } from '../format.js';

export interface BackupDeps {
  config: Config;
  target: Target;
  log: Logger;
  signal?: AbortSignal;
  /** Hears a step's error before the machine reduces it to a reason: the command's exit code comes from it. */
  onStepError?: (error: unknown) => void;
}

/** The steps as plain async functions: the test harness wraps them to crash on purpose. */
export type BackupSteps = {
  [K in keyof typeof backupActors]: (input: InputFrom<(typeof backupActors)[K]>) => Promise<OutputFrom<(typeof backupActors)[K]>>;
};

export function backupImplementations(d: BackupDeps, steps: BackupSteps = backupSteps(d)): typeof backupActors {
  const wrap = <K extends keyof typeof backupActors>(src: K) => step(STEP_OF_BACKUP_ACTOR[src], d.log, steps[src], d.onStepError);
  return {
    checkReady: wrap('checkReady'),
    syncSystem: wrap('syncSystem'),
    recordLayout: wrap('recordLayout'),
    runSpoolModules: wrap('runSpoolModules'),
    takeSnapshot: wrap('takeSnapshot'),
    dumpHome: wrap('dumpHome'),
    verifyDump: wrap('verifyDump'),
    publishBackup: wrap('publishBackup'),
    applyRetention: wrap('applyRetention'),
  };
}

export function backupSteps(d: BackupDeps): BackupSteps {
  const { config, target, log } = d;
  const { paths } = config;
  return {
    checkReady: async () => {
      const { requireTools } = await import('../system/tools.js');
      const snapshotMode = config.mode === 'snapshot';
      await requireTools([
        'rsync',
        'xfsdump',
        'xfsrestore',
        'blkid',
        'xfs_info',
        'find',
        // xfsdump runs it for the quota limits of a /home that keeps quotas; snapshot mode runs it itself.
        'xfs_quota',
        // The tape's native writer: tee (through FIFOs made by mkfifo) into dd, openssl and wc.
        ...(target.writeFrom ? ['tee', 'mkfifo', 'dd', 'openssl', 'wc'] : []),
        ...(snapshotMode ? ['lvs', 'vgs', 'lvcreate', 'lvremove', 'dmsetup', 'mount', 'umount', 'sync'] : []),
      ]);
      const home = mountAt(paths.home);
      if (home?.fsType !== 'xfs') {
        throw new UserError(
          'config',
          `paths.home (${paths.home}) is not a mounted XFS file system${home ? ` (it is ${home.fsType})` : ''}`,
          {
            hint: 'xfsdump backs up XFS only: point paths.home at the XFS mount point of /home',
          },
        );
      }
      // Every backup is signed: without a key there is nothing a restore could tell from a forgery.
      readSigningKey(config.trust.signing_key);
      if (isUnder(config.trust.signing_key, paths.home)) {
        throw new UserError(
          'config',
          `trust.signing_key (${config.trust.signing_key}) lies under paths.home, which is dumped to the target`,
          {
            hint: 'Keep the signing key on the root file system (the default /etc/syn3-backup/signing.key): whoever holds a dump would hold the key',
          },
        );
      }
      await target.check();
      if (snapshotMode) {
        // /home is an LV with room for its snapshot, and what a killed run left is gone before anything else.
        const { prepareSnapshot } = await import('../../actors/snapshot.js');
        await prepareSnapshot({ home: paths.home, size: config.snapshot.size, log: (m) => log.info(m) });
      }
      return { checked: ['tools', 'home', ...(snapshotMode ? ['snapshot room'] : []), 'signing key', target.description] };
    },

    syncSystem: async () => {
      const { syncSystem } = await import('../../actors/rsync.js');
      const alsoExclude = config.target.type === 'file' ? [config.target.path, ...config.systemSyncExclude] : config.systemSyncExclude;
      const secretFiles = [config.trust.signing_key];
      const result = await syncSystem({ ...paths, alsoExclude, lockFile: join(paths.state, 'lock'), secretFiles }, d.signal);
      // A system copy made before the key was excluded may still hold it: it must not reach the next dump.
      for (const f of secretFiles) if (isUnder(f, paths.root)) rmSync(join(paths.systemCopy, relative(paths.root, f)), { force: true });
      for (const w of result.warnings) log.warn(w);
      return result;
    },

    recordLayout: async () => (await import('../../actors/layout.js')).readLayout(paths),

    runSpoolModules: async ({ runId }) => {
      const { runModules } = await import('../../actors/modules.js');
      // The modules write database dumps (secrets in them) here as root: no link, no one else's directory.
      ensureTrustedDirectory(dirname(paths.spool), `the spool's parent directory`);
      ensureTrustedDirectory(paths.spool, 'the spool directory');
      return runModules({
        dir: paths.modules,
        suffix: '.backup',
        env: { SYN3_SPOOL: paths.spool, SYN3_BACKUP_ID: runId },
        cwd: paths.spool,
        timeoutMs: config.moduleTimeoutMs,
        log: (msg, fields) => log.info(fields ?? {}, msg),
        signal: d.signal,
      });
    },

    takeSnapshot: async ({ runId }) =>
      (await import('../../actors/snapshot.js')).takeSnapshot({
        home: paths.home,
        spool: paths.spool,
        runId,
        size: config.snapshot.size,
        modulesDir: paths.modules,
        freezeTimeoutMs: config.snapshot.freeze_timeout,
        log: (m) => log.info(m),
      }),

    dumpHome: async ({ runId, snapshot }) => {
      const request = {
        home: paths.home,
        id: runId,
        sessionLabel: `syn3-backup ${runId}`,
        mediaLabel: config.host,
        target,
        compression: config.compression,
        onProgress: (bytes: number) => log.info({ bytes }, `dump: ${formatBytes(bytes)} written`),
        onUnkeptTimes: (found: UnkeptTimesFound) => reportUnkeptTimes(found, paths.home, join(paths.state, LOG_FILE), log),
        log: (m: string) => log.info(m),
        ...(d.signal ? { signal: d.signal } : {}),
      };
      if (!snapshot) return (await import('../../actors/xfsdump.js')).dumpHome(request);
      // The mount point and the time file live in the state directory: only root can reach into it.
      return (await import('../../actors/snapshot-dump.js')).dumpSnapshot({
        ...request,
        snapshot,
        mountDir: join(paths.state, 'snapshot'),
        timeFile: join(paths.state, 'snapshot.time'),
        log: (m) => log.info(m),
      });
    },

    verifyDump: async ({ runId, dump }) =>
      (await import('../../actors/verify.js')).verifyStream(
        () => target.openPending(runId),
        dump,
        target.description,
        dump.compression ?? 'none',
        d.signal,
      ),

    publishBackup: async (input) => {
      const unsigned: BackupMetadata = {
        format: METADATA_FORMAT,
        id: input.runId,
        host: config.host,
        created: new Date(input.dump.finishedAt).toISOString(),
        startedAt: new Date(input.startedAt).toISOString(),
        size: input.dump.bytes,
        sha256: input.dump.sha256,
        compression: input.dump.compression ?? 'none',
        tool: 'xfsdump',
        program: PROGRAM,
        layout: input.layout,
        ...(input.dump.unkeptTimes ? { unkeptTimes: input.dump.unkeptTimes } : {}),
      };
      const metadata = signMetadata(unsigned, readSigningKey(config.trust.signing_key));
      // What list and restore will refuse must fail here, loudly, not become a backup nobody can see.
      const valid = validateMetadata(metadata, input.runId);
      if (!valid.ok) {
        throw new UserError('internal', `the metadata of backup ${input.runId} does not pass its own validation (${valid.reason})`, {
          hint: 'syn3-backup restores xfs and ext2/3/4 file systems with plain UUIDs and labels; report this with the log if yours are such',
        });
      }
      const stored = await target.commit(input.runId, metadata);
      log.info(
        { id: stored.id, size: stored.size, location: stored.location },
        `published backup ${stored.id} (${formatBytes(stored.size)})`,
      );
      return {
        id: stored.id,
        created: stored.created,
        size: stored.size,
        location: stored.location,
        sha256: metadata.sha256,
        host: metadata.host,
        publishedAt: Date.now(),
      };
    },

    applyRetention: async ({ published }) => {
      const mine = (await target.list()).filter((b) => b.metadata.host === config.host);
      const keep = config.target.retention.keep;
      const old = mine.filter((b) => b.id !== published.id).slice(0, Math.max(0, mine.length - keep));
      for (const b of old) {
        await target.remove(b.id);
        log.info({ id: b.id }, `retention: removed backup ${b.id}`);
      }
      const leftovers = await target.cleanPending();
      if (leftovers.length) log.info({ leftovers }, 'retention: removed unfinished writes of earlier runs');
      return { deleted: old.map((b) => b.id), finishedAt: Date.now() };
    },
  };
}

/**
 * One warning per dump (it reaches stderr under cron, as rsync's do), and every path in the log file
 * only (debug: a terminal is not flooded); a restore's plan repeats the count from the metadata.
 */
function reportUnkeptTimes(found: UnkeptTimesFound, home: string, logFile: string, log: Logger): void {
  const unkept = unkeptTimesOf(found.paths);
  if (unkept) log.warn({ count: unkept.count }, `dump: ${unkeptTimesSentence(unkept, home)}; ${logFile} names every one`);
  for (const p of found.paths) log.debug({ path: join(home, p) }, 'dump: a time xfsdump cannot keep');
  if (found.incomplete)
    log.warn(
      `dump: the search for times xfsdump cannot keep did not finish (${found.incomplete}); the files it found by then are listed, and the backup goes on`,
    );
}

function isUnder(file: string, dir: string): boolean {
  const rel = relative(dir, file);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}
