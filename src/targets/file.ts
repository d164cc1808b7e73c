/**
 * The file target: a directory on a local or USB disk. Layout:
 *   <path>/.incoming/<id>/home.xfsdump   while a backup is written and verified
 *   <path>/<id>/home.xfsdump + meta.json once committed (a directory rename)
 * A directory counts as a backup only when meta.json is in it, and meta.json
 * is removed first on deletion, so a crash never leaves a half backup listed.
 *
 * Root deletes and renames in here, so the target directory, .incoming and
 * each pending directory must pass the trust rule (src/system/trust.ts), and
 * no removal follows a symbolic link: a .incoming linked to another directory
 * would otherwise have that directory emptied by the next run.
 */
import { constants as fsc, createWriteStream } from 'node:fs';
import { access, lstat, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FileTargetConfig } from '../config/schema.js';
import { UserError } from '../errors.js';
import { isMountPoint } from '../system/mounts.js';
import { syncDirectory, writeDurable } from '../state/durable.js';
import { ensureTrustedDirectory, requireTrusted } from '../system/trust.js';
import {
  assertSameBackup,
  checkId,
  encodeMetadata,
  isBackupId,
  LIST_SHOWS,
  oldestFirst,
  storedBackup,
  trustedMetadata,
} from './kit/index.js';
import type { BackupMetadata, StoredBackup, Target } from './target.js';

const DUMP_FILE = 'home.xfsdump';
const META_FILE = 'meta.json';
const INCOMING = '.incoming';
const TARGET_DIR = 'the target directory (target.path)';
const INCOMING_DIR = "the target's .incoming directory";

export class FileTarget implements Target {
  readonly description: string;

  constructor(private readonly config: FileTargetConfig) {
    this.description = `file target ${config.path}`;
  }

  async check(): Promise<void> {
    const dir = this.config.path;
    const st = await lstat(dir).catch(() => undefined);
    if (!st) {
      throw new UserError('target', 'the target directory does not exist', {
        where: dir,
        hint: this.config.require_mount
          ? 'Plug in and mount the backup disk there, or correct target.path'
          : 'Create it (mkdir -p), mount the backup disk there, or correct target.path',
      });
    }
    if (!st.isDirectory() && !st.isSymbolicLink()) {
      throw new UserError('target', 'the target path is not a directory', {
        where: dir,
        hint: 'Point target.path at the directory where the backup disk is mounted (or move this file aside)',
      });
    }
    // A local disk's directory, not a link: the program deletes old backups in it.
    requireTrusted(dir, 'directory', TARGET_DIR);
    if (this.config.require_mount && !isMountPoint(dir)) {
      throw new UserError('target', 'the target directory is not a mount point, and target.require_mount is true', {
        where: dir,
        hint: 'Mount the backup disk there (nothing was written, so the root file system cannot fill up)',
      });
    }
    try {
      await access(dir, fsc.W_OK);
    } catch {
      throw new UserError('target', 'the target directory is not writable', {
        where: dir,
        hint: 'Check the disk is mounted read-write and the directory is writable by root',
      });
    }
  }

  async write(id: string, source: Readable): Promise<void> {
    const dir = await this.freshPendingDir(id);
    const file = join(dir, DUMP_FILE);
    try {
      // flush: fsync before close, so a committed backup is on the disk. wx: never through a planted file or link.
      await pipeline(source, createWriteStream(file, { mode: 0o600, flush: true, flags: 'wx' }));
    } catch (e) {
      // A partial dump is useless, and on a full disk it holds the space the next run needs.
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw this.writeError(e, file);
    }
  }

  async localWrite(id: string): Promise<{ file: string; fail: (error: unknown) => Promise<unknown> }> {
    const dir = await this.freshPendingDir(id);
    const file = join(dir, DUMP_FILE);
    return {
      file,
      fail: async (e) => {
        await rm(dir, { recursive: true, force: true }).catch(() => undefined);
        return this.writeError(e, file);
      },
    };
  }

  async openPending(id: string): Promise<Readable> {
    return this.openFile(join(this.pendingDir(id), DUMP_FILE));
  }

  async commit(id: string, metadata: BackupMetadata): Promise<StoredBackup> {
    const final = this.backupDir(id);
    const pending = this.pendingDir(id);
    const already = await readMetadata(final, id);
    if (already) assertSameBackup(id, already, metadata, final);
    if (!already) {
      // The rename must move the pending directory root wrote, not a link to somewhere else.
      requireTrusted(join(this.config.path, INCOMING), 'directory', INCOMING_DIR);
      requireTrusted(pending, 'directory', `the pending backup directory ${INCOMING}/${id}`);
      try {
        writeDurable(join(pending, META_FILE), encodeMetadata(metadata), 0o600);
        await rename(pending, final);
        syncDirectory(this.config.path);
      } catch (e) {
        throw this.writeError(e, final);
      }
    }
    return this.describe(id, metadata);
  }

  async list(): Promise<StoredBackup[]> {
    let names: string[];
    try {
      names = await readdir(this.config.path);
    } catch {
      throw new UserError('target', 'cannot read the target directory', {
        where: this.config.path,
        hint: 'Check that the backup disk is mounted and target.path is right',
      });
    }
    const found: StoredBackup[] = [];
    for (const id of names.filter(isBackupId)) {
      const metadata = await readMetadata(this.backupDir(id), id);
      if (metadata && (await exists(join(this.backupDir(id), DUMP_FILE)))) found.push(this.describe(id, metadata));
    }
    return oldestFirst(found);
  }

  async open(id: string): Promise<Readable> {
    return this.openFile(join(this.backupDir(id), DUMP_FILE));
  }

  localPath(id: string): string {
    return join(this.backupDir(id), DUMP_FILE);
  }

  async remove(id: string): Promise<void> {
    const dir = this.backupDir(id);
    requireTrusted(this.config.path, 'directory', TARGET_DIR);
    const st = await lstat(dir).catch(() => undefined);
    if (!st) return;
    // A linked backup directory: its meta.json and dump are someone else's files, not this backup.
    if (!st.isDirectory()) requireTrusted(dir, 'directory', `the backup directory ${id}`);
    await rm(join(dir, META_FILE), { force: true });
    syncDirectory(this.config.path);
    await rm(dir, { recursive: true, force: true });
  }

  async cleanPending(keep?: string): Promise<string[]> {
    const incoming = join(this.config.path, INCOMING);
    if (!(await lstat(incoming).catch(() => undefined))) return [];
    // Listing a linked .incoming and removing what is "in" it emptied the directory it named.
    requireTrusted(incoming, 'directory', INCOMING_DIR);
    const removed = (await readdir(incoming)).filter((n) => n !== keep);
    // rm removes a link itself, never what it names; .incoming is root's, so only root put entries here.
    for (const n of removed) await rm(join(incoming, n), { recursive: true, force: true });
    return removed;
  }

  private describe(id: string, metadata: BackupMetadata): StoredBackup {
    return storedBackup(metadata, join(this.backupDir(id), DUMP_FILE));
  }

  private backupDir(id: string): string {
    checkId(id);
    return join(this.config.path, id);
  }

  private pendingDir(id: string): string {
    checkId(id);
    return join(this.config.path, INCOMING, id);
  }

  /** An empty pending directory of root's for `id`, under a .incoming that passes the trust rule (made 0700 when missing). */
  private async freshPendingDir(id: string): Promise<string> {
    const dir = this.pendingDir(id);
    requireTrusted(this.config.path, 'directory', TARGET_DIR);
    ensureTrustedDirectory(join(this.config.path, INCOMING), INCOMING_DIR);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o700 });
    requireTrusted(dir, 'directory', `the pending backup directory ${INCOMING}/${id}`);
    return dir;
  }

  private async openFile(file: string): Promise<Readable> {
    const handle = await open(file, 'r').catch(() => {
      throw new UserError('target', 'the backup file cannot be opened', {
        where: file,
        hint: `Check the backup disk is mounted; ${LIST_SHOWS}`,
      });
    });
    // 1 MiB reads: with the default 64 KiB, Node's per-chunk cost exceeds xfsrestore's own.
    return handle.createReadStream({ highWaterMark: 1024 * 1024 });
  }

  private writeError(e: unknown, file: string): unknown {
    const said = e instanceof Error ? e.message : '';
    // A program that wrote the file itself (xfsdump) reports a full disk in words, not as a code.
    const code = /No space left on device/i.test(said) ? 'ENOSPC' : (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      return new UserError('target', 'the target is full; the partial backup was discarded', {
        where: file,
        hint: 'Free space on the backup disk or lower target.retention.keep; the earlier backups were kept',
        cause: e,
      });
    }
    if (code === 'EROFS' || code === 'EACCES' || code === 'EIO') {
      return new UserError('target', `writing to the target failed (${code})`, {
        where: file,
        hint: 'Check the backup disk (mounted read-write, healthy) and run again',
        cause: e,
      });
    }
    return e;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The metadata in a backup's directory, when it is there and can be trusted (see kit/metadata.ts). */
async function readMetadata(dir: string, id: string): Promise<BackupMetadata | undefined> {
  const text = await readFile(join(dir, META_FILE), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : trustedMetadata(text, id);
}
