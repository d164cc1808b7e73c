/**
 * What every backup target offers. Each target (file, smb, tape, ftp, s3)
 * implements it in one file; backup and restore only ever see this interface.
 * A backup is written under a temporary name, read back for verification,
 * and becomes visible to `list` only through `commit`.
 */
import type { Readable } from 'node:stream';
import type { SystemLayout, UnkeptTimes } from '../../machines/types.js';
import type { Command } from '../system/run.js';

export const METADATA_FORMAT = 1;

export interface BackupMetadata {
  format: typeof METADATA_FORMAT;
  id: string;
  host: string;
  created: string;
  startedAt: string;
  size: number;
  sha256: string;
  compression: 'none' | 'zstd';
  tool: 'xfsdump';
  program: string;
  layout: SystemLayout;
  /** Files whose times xfsdump could not keep; absent when there were none, and in backups made before it was looked for. */
  unkeptTimes?: UnkeptTimes;
  /** Ed25519 over the rest of the metadata (src/signing/canonical.ts); absent on backups made before signing existed. */
  signature?: MetadataSignature;
}

export interface MetadataSignature {
  /** The signer's public key, as trust.public_keys lists it: "ed25519:<base64>". */
  key: string;
  /** The 64-byte signature, base64. */
  sig: string;
}

export interface StoredBackup {
  id: string;
  created: string;
  size: number;
  location: string;
  metadata: BackupMetadata;
}

export interface Target {
  /** For messages: "file target /mnt/usb/backups". */
  readonly description: string;
  /** Refuse early when the target cannot take a backup (missing, not mounted, unwritable). */
  check(): Promise<void>;
  /** Store the stream under a temporary name; an earlier partial of the same id is replaced. */
  write(id: string, source: Readable): Promise<void>;
  /**
   * For a target that is a local file: a fresh temporary file a program can
   * write the backup to directly, with no copy through this process; `fail`
   * turns a write error into the target's error and removes the partial.
   */
  localWrite?(id: string): Promise<{ file: string; fail: (error: unknown) => Promise<unknown> }>;
  /**
   * For a target that writes with native programs (the tape: dd): it runs
   * `producers` (xfsdump [| zstd]) itself, their output going to the medium
   * with no copy through this process, and returns the stream's length and
   * sha256 as those programs counted them. Otherwise as `write`.
   */
  writeFrom?(id: string, producers: readonly Command[], options?: { signal?: AbortSignal }): Promise<{ bytes: number; sha256: string }>;
  /** Read back what `write` stored, before it is committed. */
  openPending(id: string): Promise<Readable>;
  /** Make the written backup visible, atomically, with its metadata beside it. Idempotent. */
  commit(id: string, metadata: BackupMetadata): Promise<StoredBackup>;
  /** Committed backups, oldest first. */
  list(): Promise<StoredBackup[]>;
  open(id: string): Promise<Readable>;
  /** For a target that is a local file: where a committed backup's dump is, for tools that read files faster than pipes. */
  localPath?(id: string): string;
  remove(id: string): Promise<void>;
  /** Remove temporaries of unfinished runs, except `keep`; returns what was removed. */
  cleanPending(keep?: string): Promise<string[]>;
}
