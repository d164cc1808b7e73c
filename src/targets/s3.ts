/**
 * The s3 target: a bucket on any S3-compatible store (AWS, Ceph RGW, MinIO).
 * One key per backup, and a manifest written last:
 *   <prefix><id>/home.xfsdump    the dump, streamed up as a multipart upload
 *   <prefix><id>/manifest.json   the metadata; written by commit, after the
 *                                dump was read back and verified
 * A backup counts only when its manifest exists: list shows manifests only
 * (with their dump beside them), remove deletes the manifest first, and a
 * dump without a manifest, or an unfinished multipart upload, is a leftover
 * of an interrupted run that cleanPending removes (and aborts).
 * The keys come from a 0600 file, never from the configuration.
 */
import { PassThrough, Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type ListMultipartUploadsCommandOutput,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { UserError } from '../errors.js';
import { redact } from '../system/run.js';
import {
  assertSameBackup,
  checkId,
  EARLIER_KEPT,
  encodeMetadata,
  isBackupId,
  LIST_SHOWS,
  oldestFirst,
  PARTIAL_DISCARDED,
  readSecretFile,
  RUN_AGAIN,
  RUN_AGAIN_NEW_ID,
  storedBackup,
  trustedMetadata,
} from './kit/index.js';
import type { S3TargetConfig } from './s3-config.js';
import type { BackupMetadata, StoredBackup, Target } from './target.js';

const DUMP = 'home.xfsdump';
const MANIFEST = 'manifest.json';
const MiB = 1024 * 1024;

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

type Action = 'check' | 'write' | 'read' | 'list' | 'commit' | 'remove' | 'clean';

export class S3Target implements Target {
  readonly description: string;
  private readonly where: string;
  private connection: Promise<{ client: S3Client; secret: string }> | undefined;

  constructor(
    private readonly config: S3TargetConfig,
    private readonly loadCredentials: (file: string) => Promise<S3Credentials> = readS3Credentials,
  ) {
    const server = config.endpoint ?? `AWS S3 (${config.region})`;
    this.where = `s3://${config.bucket}/${config.prefix} at ${server}`;
    this.description = `s3 target ${this.where}`;
  }

  async check(): Promise<void> {
    await this.send('check', this.where, (c) =>
      c.send(new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: this.config.prefix, MaxKeys: 1 })),
    );
  }

  async write(id: string, source: Readable): Promise<void> {
    const key = this.dumpKey(id);
    // lib-storage destroys the stream it reads when it gives up, with an AbortError of
    // its own making: only another error is a failure of the source. (Listening from the
    // start also keeps an early error of the source from going unhandled.)
    let sourceError: unknown;
    source.on('error', (e) => {
      sourceError ??= e;
    });
    try {
      if (await this.manifestOf(id, 'check', this.url(key))) {
        throw new UserError('target', `a backup with id ${id} is already committed on the target`, {
          where: this.url(key),
          hint: RUN_AGAIN_NEW_ID,
        });
      }
      const { client } = await this.connect();
      const upload = new Upload({
        client,
        params: { Bucket: this.config.bucket, Key: key, Body: source, ContentType: 'application/octet-stream' },
        partSize: this.config.part_size * MiB,
        queueSize: this.config.queue_size,
        // Parts of a failed upload are aborted; those of a crashed one are left for cleanPending.
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (e) {
      // Stop the producer (xfsdump is killed by its caller once this rejects).
      source.destroy();
      if (sourceError !== undefined && (sourceError === e || !isAbortError(sourceError))) throw sourceError;
      if (e instanceof Error && /Exceeded \d+ parts/.test(e.message)) {
        throw new UserError(
          'target',
          `the backup is larger than 10,000 parts of ${this.config.part_size} MiB, the S3 limit; the partial backup was discarded`,
          {
            where: this.url(key),
            hint: 'Raise target.part_size (MiB) so that 10,000 parts hold the whole dump; the earlier backups were kept',
            cause: e,
          },
        );
      }
      throw await this.failure(e, 'write', this.url(key));
    }
  }

  async openPending(id: string): Promise<Readable> {
    return this.download(this.dumpKey(id));
  }

  async commit(id: string, metadata: BackupMetadata): Promise<StoredBackup> {
    const key = this.manifestKey(id);
    const already = await this.manifestOf(id, 'commit');
    if (already) {
      assertSameBackup(id, already, metadata, this.url(key));
      return this.describe(id, already);
    }
    const dump = await this.send('commit', this.url(this.dumpKey(id)), (c) =>
      c.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: this.dumpKey(id) })),
    ).catch((e: unknown) => {
      if (e instanceof UserError && notFound(e.cause)) return undefined;
      throw e;
    });
    if (!dump || dump.ContentLength !== metadata.size) {
      throw new UserError(
        'target',
        `the uploaded backup is ${dump ? `${dump.ContentLength ?? '?'} bytes, not ${metadata.size}` : 'not on the target'}, so it was not committed`,
        {
          where: this.url(this.dumpKey(id)),
          hint: RUN_AGAIN,
        },
      );
    }
    await this.send('commit', this.url(key), (c) =>
      c.send(
        new PutObjectCommand({
          Bucket: this.config.bucket,
          Key: key,
          Body: encodeMetadata(metadata),
          ContentType: 'application/json',
        }),
      ),
    );
    return this.describe(id, metadata);
  }

  async list(): Promise<StoredBackup[]> {
    const { dumps, manifests } = await this.scan('list');
    const ids = [...manifests].filter((id) => dumps.has(id));
    const found: StoredBackup[] = [];
    for (const batch of chunks(ids, 8)) {
      const read = await Promise.all(batch.map(async (id) => ({ id, metadata: await this.manifestOf(id, 'list') })));
      for (const { id, metadata } of read) if (metadata) found.push(this.describe(id, metadata));
    }
    return oldestFirst(found);
  }

  async open(id: string): Promise<Readable> {
    return this.download(this.dumpKey(id));
  }

  async remove(id: string): Promise<void> {
    // The manifest first: a backup half removed is no longer listed, and its dump is a leftover.
    for (const key of [this.manifestKey(id), this.dumpKey(id)]) {
      await this.send('remove', this.url(key), (c) => c.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: key })));
    }
  }

  async cleanPending(keep?: string): Promise<string[]> {
    const removed = new Set<string>();
    const { dumps, manifests } = await this.scan('clean');
    for (const id of dumps) {
      if (id === keep || manifests.has(id)) continue;
      await this.send('clean', this.url(this.dumpKey(id)), (c) =>
        c.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: this.dumpKey(id) })),
      );
      removed.add(id);
    }
    // Uploads a crash or a dropped connection left unfinished: their parts take space until aborted.
    for (const upload of await this.unfinishedUploads()) {
      const id = this.idOf(upload.key, DUMP);
      if (id === undefined || id === keep) continue;
      await this.send('clean', this.url(upload.key), (c) =>
        c.send(new AbortMultipartUploadCommand({ Bucket: this.config.bucket, Key: upload.key, UploadId: upload.uploadId })),
      ).catch((e: unknown) => {
        if (!(e instanceof UserError && notFound(e.cause))) throw e;
      });
      removed.add(id);
    }
    return [...removed];
  }

  /** Drops the HTTP connections (for tests and short-lived tools). */
  async close(): Promise<void> {
    const c = this.connection;
    this.connection = undefined;
    if (c) (await c.catch(() => undefined))?.client.destroy();
  }

  private async download(key: string): Promise<Readable> {
    const where = this.url(key);
    const got = await this.send('read', where, (c) => c.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key })));
    const body = got.Body;
    if (!(body instanceof Readable)) throw new Error(`GetObject of ${where} returned no stream`);
    // A connection lost while reading becomes the target's error, not a bare ECONNRESET.
    const out = new PassThrough({ highWaterMark: 4 * MiB });
    body.once('error', (e) => {
      void this.failure(e, 'read', where).then((mapped) => out.destroy(mapped instanceof Error ? mapped : new Error(String(mapped))));
    });
    out.once('close', () => body.destroy());
    body.pipe(out);
    return out;
  }

  /** The ids with a dump and with a manifest under the prefix. */
  private async scan(action: Action): Promise<{ dumps: Set<string>; manifests: Set<string> }> {
    const dumps = new Set<string>();
    const manifests = new Set<string>();
    let token: string | undefined;
    do {
      const page: ListObjectsV2CommandOutput = await this.send(action, this.where, (c) =>
        c.send(new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: this.config.prefix, ContinuationToken: token })),
      );
      for (const o of page.Contents ?? []) {
        const key = o.Key ?? '';
        const dump = this.idOf(key, DUMP);
        if (dump !== undefined) dumps.add(dump);
        const manifest = this.idOf(key, MANIFEST);
        if (manifest !== undefined) manifests.add(manifest);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return { dumps, manifests };
  }

  private async unfinishedUploads(): Promise<Array<{ key: string; uploadId: string }>> {
    const out: Array<{ key: string; uploadId: string }> = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page: ListMultipartUploadsCommandOutput = await this.send('clean', this.where, (c) =>
        c.send(
          new ListMultipartUploadsCommand({
            Bucket: this.config.bucket,
            Prefix: this.config.prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        ),
      );
      for (const u of page.Uploads ?? []) if (u.Key && u.UploadId) out.push({ key: u.Key, uploadId: u.UploadId });
      if (!page.IsTruncated) return out;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
      if (!keyMarker) return out;
    }
  }

  private async manifestOf(id: string, action: Action, where?: string): Promise<BackupMetadata | undefined> {
    const key = this.manifestKey(id);
    let text: string;
    try {
      const got = await this.send(action, where ?? this.url(key), (c) =>
        c.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key })),
      );
      text = (await got.Body?.transformToString('utf8')) ?? '';
    } catch (e) {
      if (e instanceof UserError && notFound(e.cause) && !bucketMissing(e.cause)) return undefined;
      throw e;
    }
    return trustedMetadata(text, id);
  }

  private describe(id: string, metadata: BackupMetadata): StoredBackup {
    return storedBackup(metadata, this.url(this.dumpKey(id)));
  }

  private idOf(key: string, name: string): string | undefined {
    const { prefix } = this.config;
    if (!key.startsWith(prefix) || !key.endsWith(`/${name}`)) return undefined;
    const id = key.slice(prefix.length, -name.length - 1);
    return isBackupId(id) ? id : undefined;
  }

  private dumpKey(id: string): string {
    checkId(id);
    return `${this.config.prefix}${id}/${DUMP}`;
  }

  private manifestKey(id: string): string {
    checkId(id);
    return `${this.config.prefix}${id}/${MANIFEST}`;
  }

  private url(key: string): string {
    return `s3://${this.config.bucket}/${key}${this.config.endpoint ? ` at ${this.config.endpoint}` : ''}`;
  }

  private connect(): Promise<{ client: S3Client; secret: string }> {
    this.connection ??= this.loadCredentials(this.config.credentials_file).then((credentials) => {
      // The SDK warns on every run that its 2027 releases need Node 22; the administrator can do nothing about it here.
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      const client = new S3Client({
        ...(this.config.endpoint ? { endpoint: this.config.endpoint } : {}),
        region: this.config.region,
        forcePathStyle: this.config.force_path_style,
        credentials,
        // The SDK's default CRC32 checksums (since 3.729) are refused by some S3-compatible
        // stores and cost CPU; the verify step checks the whole backup's SHA-256 anyway.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        requestHandler: { connectionTimeout: 15_000, socketTimeout: 300_000 },
      });
      return { client, secret: credentials.secretAccessKey };
    });
    const pending = this.connection;
    pending.catch(() => {
      if (this.connection === pending) this.connection = undefined;
    });
    return pending;
  }

  /** One request, with any failure turned into the target's error. */
  private async send<T>(action: Action, where: string, request: (client: S3Client) => Promise<T>): Promise<T> {
    const { client } = await this.connect();
    try {
      return await request(client);
    } catch (e) {
      throw await this.failure(e, action, where);
    }
  }

  private async failure(e: unknown, action: Action, where: string): Promise<unknown> {
    if (e instanceof UserError) return e;
    const secret = (await this.connection?.catch(() => undefined))?.secret;
    return describeS3Error(e, action, where, this.config, secret);
  }
}

/** What went wrong with an S3 request, in the administrator's words. Exported for tests. */
export function describeS3Error(e: unknown, action: Action, where: string, config: S3TargetConfig, secret?: string): UserError {
  const code = errorCode(e);
  const status = e instanceof S3ServiceException ? e.$metadata.httpStatusCode : undefined;
  const server = config.endpoint ?? `AWS S3 in ${config.region}`;
  const what = action === 'write' ? PARTIAL_DISCARDED : 'nothing was changed';
  const kept = EARLIER_KEPT;
  const said = clean(e instanceof Error ? e.message : String(e), secret);
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidSecurity', 'InvalidToken', 'ExpiredToken'].includes(code)) {
    return new UserError('target', `the S3 server refused the credentials (${code})`, {
      where,
      hint: `Check access_key_id and secret_access_key in ${config.credentials_file} for ${server}; ${kept}`,
      cause: e,
    });
  }
  if (['QuotaExceeded', 'InsufficientStorage', 'XMinioStorageFull', 'StorageFull'].includes(code) || status === 507) {
    return new UserError('target', `the target is full (${code || 'HTTP 507'}); ${what}`, {
      where,
      hint: `Free space in bucket ${config.bucket}, raise its quota, or lower target.retention.keep; ${kept}`,
      cause: e,
    });
  }
  if (code === 'AccessDenied' || code === 'AllAccessDisabled' || status === 403) {
    return new UserError('target', `the S3 server denied access (${code || 'HTTP 403'})`, {
      where,
      hint: `Check the keys in ${config.credentials_file} and that their user may list, read, write and delete in bucket ${config.bucket}; ${kept}`,
      cause: e,
    });
  }
  if (bucketMissing(e)) {
    return new UserError('target', `the bucket ${config.bucket} does not exist`, {
      where,
      hint: `Create the bucket on ${server} (e.g. "aws s3 mb s3://${config.bucket}" or "s3cmd mb s3://${config.bucket}"), or correct target.bucket`,
      cause: e,
    });
  }
  if (code === 'NoSuchKey' || (status === 404 && action === 'read')) {
    return new UserError('target', 'the backup object is not on the target', {
      where,
      hint: LIST_SHOWS,
      cause: e,
    });
  }
  const net = networkCode(e);
  if (net) {
    const lost = ['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'TimeoutError', 'ERR_STREAM_PREMATURE_CLOSE'].includes(net);
    const message =
      action === 'write'
        ? `the connection to the S3 server was lost during the upload (${net}); the backup was not stored`
        : action === 'read'
          ? `the connection to the S3 server was lost while reading the backup (${net})`
          : lost
            ? `the connection to the S3 server was lost (${net})`
            : `the S3 server cannot be reached (${net})`;
    return new UserError('target', message, {
      where,
      hint: `Check that the server at ${server} is running and reachable from this machine, then run again; ${kept}${action === 'write' ? ', and the next run removes what the interrupted upload left' : ''}`,
      cause: e,
    });
  }
  return new UserError('target', `the S3 request failed (${code || (status ? `HTTP ${status}` : 'error')}${said ? `: ${said}` : ''})`, {
    where,
    hint: `Check the server at ${server} and its logs, then run again; ${kept}`,
    cause: e,
  });
}

/**
 * Reads access_key_id = and secret_access_key = lines (aws_ prefixes and
 * "#" comments allowed) from a file that only its owner may read.
 */
export async function readS3Credentials(file: string): Promise<S3Credentials> {
  const text = await readSecretFile(file, {
    what: 'the S3 credentials file',
    secret: 'keys',
    missingHint:
      'Create it with the lines "access_key_id = ..." and "secret_access_key = ...", mode 0600 (chmod 600), or correct target.credentials_file',
  });
  const values = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith('[')) continue;
    const m = /^(?:aws_)?(access_key_id|secret_access_key)\s*=\s*(.*)$/i.exec(line);
    if (m) values.set(m[1]!.toLowerCase(), m[2]!.trim());
  }
  const accessKeyId = values.get('access_key_id');
  const secretAccessKey = values.get('secret_access_key');
  if (!accessKeyId || !secretAccessKey) {
    throw new UserError('config', `the S3 credentials file has no ${accessKeyId ? 'secret_access_key' : 'access_key_id'} line`, {
      where: file,
      hint: 'It needs the lines "access_key_id = ..." and "secret_access_key = ..."',
    });
  }
  return { accessKeyId, secretAccessKey };
}

function errorCode(e: unknown): string {
  if (e instanceof S3ServiceException) {
    const code = (e as { Code?: unknown }).Code;
    return typeof code === 'string' && code ? code : e.name;
  }
  if (e instanceof Error && typeof (e as { Code?: unknown }).Code === 'string') return (e as unknown as { Code: string }).Code;
  return '';
}

function isAbortError(e: unknown): boolean {
  return e instanceof Error && (e.name === 'AbortError' || (e as NodeJS.ErrnoException).code === 'ABORT_ERR');
}

function bucketMissing(e: unknown): boolean {
  return errorCode(e) === 'NoSuchBucket';
}

function notFound(e: unknown): boolean {
  const code = errorCode(e);
  return (
    code === 'NoSuchKey' ||
    code === 'NotFound' ||
    code === 'NoSuchUpload' ||
    (e instanceof S3ServiceException && e.$metadata.httpStatusCode === 404)
  );
}

const NETWORK_CODES = [
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
];

function networkCode(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    const c = cur as { code?: unknown; name?: unknown; errors?: unknown };
    if (typeof c.code === 'string' && NETWORK_CODES.includes(c.code)) return c.code;
    if (c.name === 'TimeoutError') return 'TimeoutError';
    if (Array.isArray(c.errors)) for (const inner of c.errors) if (networkCode(inner)) return networkCode(inner);
    if (cur instanceof Error && /socket hang up|aborted/i.test(cur.message) && !(cur instanceof S3ServiceException)) return 'ECONNRESET';
  }
  return undefined;
}

function clean(text: string, secret?: string): string {
  const one = text.split('\n')[0]!.trim().slice(0, 300);
  return redact(one, secret ? [secret] : []);
}

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}
