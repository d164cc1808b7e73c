/**
 * The FTP target: a directory on an FTP server, plain or explicit FTPS
 * (AUTH TLS), through basic-ftp. Layout in target.directory:
 *   <id>.xfsdump.partial                while a backup is uploaded and verified
 *   <id>.xfsdump + <id>.meta.json       once committed (a rename, then the metadata)
 * A backup counts only when its meta.json is there; the metadata is uploaded
 * under a temporary name and renamed too, so a half-written one never shows,
 * and it is removed first on deletion. Every operation has its own control
 * connection, closed when it is done; nothing is staged locally.
 */
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { Client, FTPError, type FileInfo } from 'basic-ftp';
import { UserError } from '../errors.js';
import { redact } from '../system/run.js';
import type { FtpTargetConfig } from './ftp-config.js';
import {
  assertSameBackup,
  checkId,
  EARLIER_KEPT,
  encodeMetadata,
  isBackupId,
  LIST_SHOWS,
  oldestFirst,
  readSecretFile,
  RUN_AGAIN,
  storedBackup,
  trustedMetadata,
} from './kit/index.js';
import type { BackupMetadata, StoredBackup, Target } from './target.js';

const DUMP = '.xfsdump';
const META = '.meta.json';
const PARTIAL = '.partial';
/** Uploaded after a transfer broke off, to ask the server whether it still has room. */
const PROBE = '.space-probe';
const PROBE_BYTES = 64 * 1024;
/** What check() writes and deletes to see the directory is writable. */
const CHECK_FILE = 'syn3-backup-write-check.partial';
const MAX_META_BYTES = 1024 * 1024;
const STREAM_BUFFER = 512 * 1024;

/** Where a connection failed, which decides what the failure means. */
type Phase = 'connect' | 'tls' | 'login' | 'directory' | 'upload' | 'download' | 'rename' | 'list' | 'remove';

const DOING: Record<Phase, string> = {
  connect: 'connecting',
  tls: 'starting TLS',
  login: 'logging in',
  directory: 'changing to the backup directory',
  upload: 'uploading',
  download: 'downloading',
  rename: 'renaming',
  list: 'listing the backup directory',
  remove: 'deleting',
};

/** Node's names for a certificate that does not verify. */
const CERTIFICATE_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']);

export interface FtpTargetOptions {
  /** Where the password comes from; by default target.password_file, read at each connection. */
  password?: () => Promise<string>;
}

/**
 * The password from a file only root can read: one line, mode 0600 or
 * stricter. A file that group or others can read (or write) is refused.
 */
export async function readPasswordFile(file: string): Promise<string> {
  const text = await readSecretFile(file, {
    what: 'the FTP password file',
    secret: 'password',
    missingHint: 'Put the password on one line in it (chmod 600), or correct target.password_file',
  });
  const password = text.replace(/\r?\n$/, '');
  if (!password || /[\r\n\0]/.test(password)) {
    throw new UserError('config', 'the FTP password file must hold the password on a single line', {
      where: file,
      hint: 'Write just the password into it, followed by at most one newline',
    });
  }
  return password;
}

export class FtpTarget implements Target {
  readonly description: string;
  readonly #password: () => Promise<string>;
  #secret = '';

  constructor(
    private readonly config: FtpTargetConfig,
    options: FtpTargetOptions = {},
  ) {
    this.description = `ftp target ${this.url()}${config.secure ? ' (explicit FTPS)' : ''}`;
    this.#password = options.password ?? (() => readPasswordFile(config.password_file));
  }

  async check(): Promise<void> {
    await this.session(async (client) => {
      // Logged in and in the directory; a write permission problem shows only on a write.
      // Not empty: vsftpd fails an empty upload over TLS.
      const probe = Buffer.from('syn3-backup checks that it may write here\n');
      await this.attempt('upload', this.url(CHECK_FILE), () => client.uploadFrom(Readable.from([probe]), CHECK_FILE));
      await this.attempt('remove', this.url(CHECK_FILE), () => client.remove(CHECK_FILE));
    });
  }

  async write(id: string, source: Readable): Promise<void> {
    const name = partialName(id);
    let client: Client;
    try {
      client = await this.connect();
    } catch (e) {
      source.destroy();
      throw e;
    }
    let sourceError: unknown;
    source.once('error', (e) => {
      sourceError ??= e;
    });
    let bytes = 0;
    client.trackProgress((info) => {
      bytes = info.bytes;
    });
    try {
      await client.uploadFrom(source, name);
    } catch (e) {
      // Refused before the data started flowing (553, say): nothing else will read it.
      if (!source.destroyed) source.destroy();
      if (sourceError !== undefined) {
        await this.discard(client, [name]);
        throw sourceError;
      }
      throw await this.uploadFailure(e, client, id, bytes);
    } finally {
      client.close();
    }
  }

  async openPending(id: string): Promise<Readable> {
    return this.download(partialName(id), 'the uploaded backup is not on the FTP server (any more)');
  }

  async commit(id: string, metadata: BackupMetadata): Promise<StoredBackup> {
    const dump = dumpName(id);
    const meta = metaName(id);
    return this.session(async (client) => {
      const already = await this.readMetadata(client, id);
      if (already) {
        assertSameBackup(id, already, metadata, this.url(meta));
        return this.describe(id, already);
      }
      const names = await this.names(client);
      const uploaded = names.has(partialName(id));
      if (!uploaded && !names.has(dump)) {
        throw new UserError('target', `there is no uploaded backup ${id} to publish`, {
          where: this.url(partialName(id)),
          hint: RUN_AGAIN,
        });
      }
      // The metadata goes up first, under a temporary name: if the server is full now,
      // nothing has been renamed yet. The renames that follow need no space.
      const text = Buffer.from(encodeMetadata(metadata));
      const pending = meta + PARTIAL;
      try {
        await this.attempt('upload', this.url(pending), () => client.uploadFrom(Readable.from([text]), pending));
      } catch (e) {
        await this.discard(client, [pending]);
        throw e;
      }
      if (uploaded) {
        // A dump already there is left by a commit that broke off after its rename, before a new upload.
        if (names.has(dump)) await this.attempt('remove', this.url(dump), () => client.remove(dump));
        await this.attempt('rename', this.url(dump), () => client.rename(partialName(id), dump));
      }
      await this.attempt('rename', this.url(meta), () => client.rename(pending, meta));
      return this.describe(id, metadata);
    });
  }

  async list(): Promise<StoredBackup[]> {
    return this.session(async (client) => {
      const names = await this.names(client);
      const found: StoredBackup[] = [];
      for (const name of names) {
        if (!name.endsWith(META)) continue;
        const id = name.slice(0, -META.length);
        if (!isBackupId(id) || !names.has(dumpName(id))) continue;
        const metadata = await this.readMetadata(client, id);
        if (metadata) found.push(this.describe(id, metadata));
      }
      return oldestFirst(found);
    });
  }

  async open(id: string): Promise<Readable> {
    return this.download(dumpName(id), 'the backup file is not on the FTP server');
  }

  async remove(id: string): Promise<void> {
    await this.session(async (client) => {
      for (const name of [metaName(id), dumpName(id)]) await this.removeIfThere(client, name);
    });
  }

  async cleanPending(keep?: string): Promise<string[]> {
    return this.session(async (client) => {
      const names = await this.names(client);
      const removed = new Set<string>();
      for (const name of names) {
        const id = leftoverOf(name, names);
        if (id === undefined || id === keep) continue;
        await this.removeIfThere(client, name);
        removed.add(id);
      }
      return [...removed];
    });
  }

  // ---- connections ----

  /** A logged-in client in target.directory; the caller closes it. */
  private async connect(timeout = this.config.timeout): Promise<Client> {
    const { host, port, user, directory } = this.config;
    const password = await this.#password();
    this.#secret = password;
    const client = new Client(timeout);
    let phase: Phase = 'connect';
    // basic-ftp guards every reply with the timeout, but not the TLS handshake.
    let late = false;
    const deadline = setTimeout(() => {
      late = true;
      client.close();
    }, timeout * 2);
    try {
      await client.connect(host, port);
      if (this.config.secure) {
        phase = 'tls';
        await client.useTLS(await this.tlsOptions());
      }
      phase = 'login';
      await client.login(user, password);
      await client.useDefaultSettings();
      phase = 'directory';
      await client.cd(directory);
      return client;
    } catch (e) {
      client.close();
      throw this.failure(
        late ? new Error(`no answer within ${timeout * 2} ms`) : e,
        phase,
        phase === 'directory' ? this.url() : this.server(),
      );
    } finally {
      clearTimeout(deadline);
    }
  }

  private async session<T>(work: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.connect();
    try {
      return await work(client);
    } finally {
      client.close();
    }
  }

  private async tlsOptions(): Promise<ConnectionOptions> {
    const { host, ca_file, allow_self_signed } = this.config;
    const options: ConnectionOptions = { host, rejectUnauthorized: !allow_self_signed };
    if (ca_file) {
      try {
        options.ca = await readFile(ca_file);
      } catch {
        throw new UserError('config', 'the CA file for FTPS cannot be read', {
          where: ca_file,
          hint: "Put the server's certificate or its CA certificate (PEM) there, or correct target.ca_file",
        });
      }
    }
    return options;
  }

  /** Runs one FTP command, turning what goes wrong into the target's error. */
  private async attempt<T>(phase: Phase, where: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      throw this.failure(e, phase, where);
    }
  }

  private async names(client: Client): Promise<Set<string>> {
    const files: FileInfo[] = await this.attempt('list', this.url(), () => client.list());
    return new Set(files.filter((f) => f.isFile).map((f) => f.name));
  }

  private async removeIfThere(client: Client, name: string): Promise<void> {
    try {
      await client.remove(name);
    } catch (e) {
      // 550: not there (any more), which is what was wanted.
      if (!(e instanceof FTPError && e.code === 550)) throw this.failure(e, 'remove', this.url(name));
    }
  }

  /** Best effort: a partial upload holds the space the next run needs. */
  private async discard(client: Client | undefined, names: string[]): Promise<void> {
    let own: Client | undefined;
    try {
      if (!client || client.closed) client = own = await this.connect(Math.min(this.config.timeout, 10_000));
      for (const name of names) await client.remove(name, true);
    } catch {
      // The server is gone: the next run's cleanPending removes it.
    } finally {
      own?.close();
    }
  }

  // ---- reading ----

  private async download(name: string, missing: string): Promise<Readable> {
    const client = await this.connect();
    const where = this.url(name);
    try {
      // A missing file is said now rather than as an error on the stream.
      await client.size(name);
    } catch (e) {
      const unsupported = e instanceof FTPError && e.code >= 500 && e.code <= 504;
      if (!unsupported) {
        client.close();
        if (e instanceof FTPError && e.code === 550) {
          throw new UserError('target', missing, {
            where,
            hint: LIST_SHOWS,
          });
        }
        throw this.failure(e, 'download', where);
      }
    }
    // basic-ftp ends and destroys the stream it is given on its own schedule: give it an
    // inner sink and end the outer stream only once the server has confirmed the transfer.
    const out = new PassThrough({ highWaterMark: STREAM_BUFFER });
    let settled = false;
    let waiting: (() => void) | undefined;
    const go = () => {
      const next = waiting;
      waiting = undefined;
      next?.();
    };
    out.on('drain', go);
    out.on('close', () => {
      // The reader stopped early: stop the transfer rather than keep the server waiting.
      if (!settled) client.close();
      go();
    });
    const sink = new Writable({
      highWaterMark: STREAM_BUFFER,
      write(chunk: Buffer, _encoding, done) {
        if (out.destroyed || out.write(chunk)) return done();
        waiting = () => done();
      },
    });
    client.downloadTo(sink, name).then(
      () => {
        settled = true;
        client.close();
        out.end();
      },
      (e: unknown) => {
        settled = true;
        client.close();
        if (!out.destroyed) out.destroy(this.failure(e, 'download', where));
      },
    );
    return out;
  }

  private async readMetadata(client: Client, id: string): Promise<BackupMetadata | undefined> {
    const chunks: Buffer[] = [];
    let size = 0;
    // Read to the end whatever comes (stopping early would break the connection), keep a little.
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        size += chunk.length;
        if (size <= MAX_META_BYTES) chunks.push(chunk);
        done();
      },
    });
    try {
      await client.downloadTo(sink, metaName(id));
    } catch (e) {
      if (e instanceof FTPError && e.code === 550) return undefined;
      throw this.failure(e, 'download', this.url(metaName(id)));
    }
    if (size > MAX_META_BYTES) return undefined;
    return trustedMetadata(Buffer.concat(chunks).toString('utf8'), id);
  }

  // ---- errors ----

  /**
   * A transfer that broke off on the data connection says nothing about why:
   * vsftpd closes it when its disk is full and only then answers 451 on the
   * control connection, which basic-ftp has closed by then. So ask again: a
   * server that cannot be reached any more dropped the connection; one that
   * refuses a small upload with 451/452/552 is full.
   */
  private async uploadFailure(e: unknown, client: Client, id: string, bytes: number): Promise<UserError> {
    const where = this.url(partialName(id));
    const after = bytes > 0 ? ` after ${formatBytes(bytes)} had been sent` : '';
    if (e instanceof FTPError || isUserError(e)) {
      const failure = this.failure(e, 'upload', where, after);
      await this.discard(client, [partialName(id)]);
      return failure;
    }
    let again: Client;
    try {
      again = await this.connect(Math.min(this.config.timeout, 10_000));
    } catch {
      return this.lost(e, 'upload', where, after);
    }
    const probe = id + PROBE + PARTIAL;
    try {
      await again.uploadFrom(Readable.from([Buffer.alloc(PROBE_BYTES)]), probe);
      return this.lost(e, 'upload', where, after);
    } catch (p) {
      return p instanceof FTPError && isFullCode(p.code, 'upload') ? this.full(p, where, after) : this.lost(e, 'upload', where, after);
    } finally {
      await this.discard(again, [probe, partialName(id)]);
      again.close();
    }
  }

  private failure(e: unknown, phase: Phase, where: string, after = ''): UserError {
    if (isUserError(e)) return e;
    const said = this.redact(e instanceof Error ? e.message : String(e));
    if (e instanceof FTPError) {
      const code = e.code;
      if (phase === 'tls') {
        return new UserError('target', `the FTP server does not offer explicit FTPS (AUTH TLS was answered with: ${said})`, {
          where,
          hint: 'Enable explicit FTPS (AUTH TLS) on the server, or set target.secure: false if the network is trusted',
          cause: e,
        });
      }
      if (code === 530 && /encrypt|ssl|tls/i.test(said)) {
        return new UserError('target', `the FTP server requires FTPS (${said})`, {
          where,
          hint: 'Set target.secure: true',
          cause: e,
        });
      }
      if (code === 530) {
        return new UserError('target', `the FTP server refused the login of user ${this.config.user} (${said})`, {
          where,
          hint: `Check target.user and the password in ${this.config.password_file}`,
          cause: e,
        });
      }
      if (phase === 'directory' && code === 550) {
        return new UserError('target', `the backup directory ${this.config.directory} does not exist on the FTP server (${said})`, {
          where,
          hint: 'Create it on the server (it is not created automatically) or correct target.directory',
          cause: e,
        });
      }
      if (isFullCode(code, phase)) return this.full(e, where, after);
      if (code === 553 || (code === 550 && (phase === 'upload' || phase === 'rename'))) {
        return new UserError('target', `the FTP server does not let user ${this.config.user} write there (${said})`, {
          where,
          hint: `Give ${this.config.user} write permission in ${this.config.directory} on the server; ${EARLIER_KEPT}`,
          cause: e,
        });
      }
      if (code === 421) {
        return new UserError('target', `the FTP server closed the session while ${DOING[phase]} (${said})`, {
          where,
          hint: `Check the server (its connection limits, its log) and run again; ${EARLIER_KEPT}`,
          cause: e,
        });
      }
      return new UserError('target', `the FTP server refused ${DOING[phase]} (${said})`, {
        where,
        hint: `See the server log for why; ${EARLIER_KEPT}`,
        cause: e,
      });
    }
    const code = (e as NodeJS.ErrnoException | undefined)?.code ?? '';
    if (CERTIFICATE_CODES.has(code) || /certificate/i.test(said)) {
      return new UserError('target', `the FTP server's TLS certificate is not trusted (${said})`, {
        where,
        hint: "Set target.ca_file to a PEM file with the server's certificate or the CA that signed it",
        cause: e,
      });
    }
    if (phase === 'connect' || phase === 'tls' || phase === 'login') {
      if (UNREACHABLE_CODES.has(code) || /timeout|no answer/i.test(said) || phase === 'connect') {
        return new UserError('target', `cannot reach the FTP server (${said})`, {
          where,
          hint: `Check that the server is running and reachable at ${this.server()}, and target.host and target.port`,
          cause: e,
        });
      }
    }
    return this.lost(e, phase, where, after);
  }

  private full(e: unknown, where: string, after: string): UserError {
    const said = this.redact(e instanceof Error ? e.message : String(e));
    return new UserError(
      'target',
      `the FTP server is full: it stopped taking the backup${after} (${said}); the partial upload was removed`,
      {
        where,
        hint: `Free space on the FTP server (or raise the quota of ${this.config.user}) or lower target.retention.keep; ${EARLIER_KEPT}`,
        cause: e,
      },
    );
  }

  private lost(e: unknown, phase: Phase, where: string, after: string): UserError {
    const said = this.redact(e instanceof Error ? e.message : String(e));
    return new UserError('target', `the connection to the FTP server was lost while ${DOING[phase]}${after} (${said})`, {
      where,
      // Only an upload leaves a partial file behind; a download (a verify, a restore) leaves nothing.
      hint: `Check that the server is running and reachable, then run again; the earlier backups were kept${phase === 'upload' ? ', and the next successful run removes the partial upload' : ''}`,
      cause: e,
    });
  }

  private redact(text: string): string {
    return redact(text, [this.#secret]);
  }

  // ---- names ----

  private describe(id: string, metadata: BackupMetadata): StoredBackup {
    return storedBackup(metadata, this.url(dumpName(id)));
  }

  private server(): string {
    return `${this.config.host}:${this.config.port}`;
  }

  /** ftp://user@host:port/directory[/name], for messages and StoredBackup.location. */
  private url(name?: string): string {
    const { user, directory } = this.config;
    const path = name ? posix.join(directory, name) : directory;
    return `ftp://${encodeURIComponent(user)}@${this.server()}${path.startsWith('/') ? '' : '/'}${path}`;
  }
}

function dumpName(id: string): string {
  return checkId(id) + DUMP;
}

function metaName(id: string): string {
  return checkId(id) + META;
}

function partialName(id: string): string {
  return dumpName(id) + PARTIAL;
}

/** The id whose unfinished write left `name` behind, or undefined when it is not such a leftover. */
function leftoverOf(name: string, names: Set<string>): string | undefined {
  if (name === CHECK_FILE) return name;
  for (const suffix of [DUMP + PARTIAL, META + PARTIAL, PROBE + PARTIAL]) {
    if (name.endsWith(suffix)) {
      const id = name.slice(0, -suffix.length);
      return isBackupId(id) ? id : undefined;
    }
  }
  // A dump whose metadata never arrived (a commit or a removal that broke off).
  if (name.endsWith(DUMP)) {
    const id = name.slice(0, -DUMP.length);
    if (isBackupId(id) && !names.has(id + META)) return id;
  }
  return undefined;
}

/** 452/552: out of space or quota; 451 on an upload: vsftpd's "Failure writing to local file". */
function isFullCode(code: number, phase: Phase): boolean {
  return code === 452 || code === 552 || (code === 451 && phase === 'upload');
}

function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${Math.max(1, Math.round(n / 1024))} KiB`;
}
