/**
 * The file target: a directory on a local or USB disk. Layout:
 *   <path>/.incoming/<id>/home.xfsdump   while a backup is written and verified
 *   <path>/<id>/home.xfsdump + meta.json once committed (a directory rename)
 * A directory counts as a backup only when meta.json is in it, and meta.json
 * is removed first on deletion, so a crash never leaves a half backup listed.
 */
import { constants as fsc, createWriteStream } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FileTargetConfig } from '../config/schema.js';
import { UserError } from '../errors.js';
import { isMountPoint } from '../system/mounts.js';
import { syncDirectory, writeDurable } from '../state/durable.js';
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

export class FileTarget implements Target {
  readonly description: string;

  constructor(private readonly config: FileTargetConfig) {
    this.description = `file target ${config.path}`;
  }

  async check(): Promise<void> {
    const dir = this.config.path;
    try {
      if (!(await stat(dir)).isDirectory()) throw new Error('not a directory');
    } catch {
      throw new UserError('target', 'the target directory does not exist', {
        where: dir,
        hint: this.config.require_mount
          ? 'Plug in and mount the backup disk there, or correct target.path'
          : 'Create it (mkdir -p), mount the backup disk there, or correct target.path',
      });
    }
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
    const dir = this.pendingDir(id);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, DUMP_FILE);
    try {
      // flush: fsync before close, so a committed backup is on the disk.
      await pipeline(source, createWriteStream(file, { mode: 0o600, flush: true }));
    } catch (e) {
      // A partial dump is useless, and on a full disk it holds the space the next run needs.
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw this.writeError(e, file);
    }
  }

  async localWrite(id: string): Promise<{ file: string; fail: (error: unknown) => Promise<unknown> }> {
    const dir = this.pendingDir(id);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true, mode: 0o700 });
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
    await rm(join(dir, META_FILE), { force: true });
    syncDirectory(this.config.path);
    await rm(dir, { recursive: true, force: true });
  }

  async cleanPending(keep?: string): Promise<string[]> {
    const incoming = join(this.config.path, INCOMING);
    const names = await readdir(incoming).catch(() => [] as string[]);
    const removed = names.filter((n) => n !== keep);
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
