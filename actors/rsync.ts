/**
 * The seed's step 2: rsync / and /boot into <home>/.syn3systembackup. Archive
 * mode with hard links, ACLs, xattrs, sparse files and numeric ids, one file
 * system at a time; --delete keeps the copy exact. /boot is synced after / so
 * that the root pass (which excludes boot/*) never deletes the boot copy.
 */
import { chmod, lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { ensureTrustedDirectory } from '../src/system/trust.js';
import { isAbsolute, join, relative } from 'node:path';
import { run } from '../src/system/run.js';

export const RSYNC_OPTIONS = ['-aHAXS', '--numeric-ids', '--delete', '--one-file-system'] as const;

/** Runtime content that must not come back after a restore. */
const RUNTIME = ['/proc/*', '/sys/*', '/dev/*', '/run/*', '/tmp/*', '/var/tmp/*', '/lost+found'];

export interface SystemSyncPaths {
  root: string;
  boot: string;
  home: string;
  systemCopy: string;
  /** Directories under / that must not be copied (the target, for one). */
  alsoExclude: string[];
  /** This program's lock: a restored system must not boot holding the lock of the run that copied it. */
  lockFile?: string;
  /** Files whose secrecy the backup must keep (the signing key): never copied, so never in a dump a target holds. */
  secretFiles?: string[];
}

export async function syncSystem(paths: SystemSyncPaths, signal?: AbortSignal): Promise<{ warnings: string[] }> {
  // rsync --delete into a link would empty whatever it points at.
  ensureTrustedDirectory(paths.systemCopy, 'the system copy');
  // Closed to everyone but root: through it, users could run the copies of setuid programs, or
  // plant files in its tmp/ for every dump to carry. rsync gives it /'s mode at its end, hence again below.
  await chmod(paths.systemCopy, 0o700);
  const excludes = [
    ...RUNTIME,
    ...[paths.boot, paths.home, ...paths.alsoExclude].flatMap((p) => underRoot(paths.root, p)),
    ...(paths.lockFile ? fileUnderRoot(paths.root, paths.lockFile) : []),
    ...(paths.secretFiles ?? []).flatMap((f) => fileUnderRoot(paths.root, f)),
  ];
  const warnings: string[] = [];
  warnings.push(...(await rsync(withSlash(paths.root), withSlash(paths.systemCopy), excludes, signal)));
  await chmod(paths.systemCopy, 0o700);
  await emptyRuntimeDirectories(paths.systemCopy);
  await mkdir(`${paths.systemCopy}/boot`, { recursive: true });
  warnings.push(...(await rsync(withSlash(paths.boot), `${paths.systemCopy}/boot/`, [], signal)));
  return { warnings };
}

/**
 * The world-writable runtime directories of the copy hold nothing of /'s (rsync skips their
 * content), and --delete spares what is excluded: whatever is in them was put there in the copy.
 */
const WORLD_WRITABLE_RUNTIME = ['tmp', 'var/tmp'];

async function emptyRuntimeDirectories(copy: string): Promise<void> {
  for (const rel of WORLD_WRITABLE_RUNTIME) {
    const dir = join(copy, rel);
    const st = await lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) continue;
    // rm removes links, never what they point at.
    for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/** rsync's own "some files vanished" (24) is normal on a live system: a warning, not a failure. */
async function rsync(from: string, to: string, excludes: string[], signal?: AbortSignal): Promise<string[]> {
  const args = [...RSYNC_OPTIONS, ...excludes.map((e) => `--exclude=${e}`), from, to];
  try {
    await run('rsync', args, { signal });
    return [];
  } catch (e) {
    const exit = (e as { cause?: { exitCode?: number } }).cause?.exitCode;
    if (exit === 24) return [`rsync ${from}: some files vanished while copying (normal on a live system)`];
    throw e;
  }
}

/** An rsync exclude, anchored at the transfer root, for a path that lies under root. */
function underRoot(root: string, path: string): string[] {
  const rel = relative(root, path);
  if (!rel || rel.startsWith('..') || isAbsolute(rel)) return [];
  return [`/${rel}/*`];
}

function fileUnderRoot(root: string, file: string): string[] {
  const rel = relative(root, file);
  return !rel || rel.startsWith('..') || isAbsolute(rel) ? [] : [`/${rel}`];
}

function withSlash(p: string): string {
  return p.endsWith('/') ? p : `${p}/`;
}
