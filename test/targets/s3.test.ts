/**
 * The s3 target against a real Ceph RADOS Gateway on 127.0.0.1 (one monitor,
 * one bluestore OSD on a sparse file, started under a temp dir on free
 * ports): the Target contract (contract.ts), its keys in the bucket, and every fault the issue names,
 * each with its message, the previous backup kept intact and nothing left
 * behind once the next run has cleaned up. Each test has a bucket of its own.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { s3TargetSchema, type S3TargetConfig } from '../../src/targets/s3-config.js';
import { S3Target } from '../../src/targets/s3.js';
import type { BackupMetadata, Target } from '../../src/targets/target.js';
import { acquireS3Server, freePorts, type S3Server } from '../support/servers/s3.js';
import { expectIntact, MiB, metadataFor, readAll, sha256 } from '../support/target-helpers.js';
import { describeTargetContract } from './contract.js';
const PREFIX = 'host1/';
// A missing prerequisite fails the run (startS3Server throws and says what to install): never a skip.

let server: S3Server;
let release: () => Promise<void> = async () => undefined;
let admin: S3Client;
let dir: string;
let credentials: string;
const opened: S3Target[] = [];

beforeAll(async () => {
  ({ server, release } = await acquireS3Server());
  admin = server.client();
  dir = await mkdtemp(join(tmpdir(), 'syn3-s3-test-'));
  credentials = join(dir, 's3.cred');
  await server.writeCredentialsFile(credentials);
});

afterAll(async () => {
  for (const t of opened) await t.close();
  admin?.destroy();
  await release();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A target on a fresh bucket (5 MiB parts, so a few MiB make a multipart upload). */
async function setUp(overrides: Partial<Record<keyof S3TargetConfig, unknown>> = {}): Promise<{ target: S3Target; bucket: string }> {
  const bucket = typeof overrides.bucket === 'string' ? overrides.bucket : await server.createBucket();
  const config = s3TargetSchema.parse({
    type: 's3',
    endpoint: server.endpoint,
    region: server.region,
    bucket,
    prefix: PREFIX,
    credentials_file: credentials,
    part_size: 5,
    queue_size: 2,
    ...overrides,
  });
  const target = new S3Target(config);
  opened.push(target);
  return { target, bucket };
}

/** `data` in 64 KiB pieces, as xfsdump's output arrives through a pipe. */
function streamOf(data: Buffer): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += 64 * 1024) yield data.subarray(i, i + 64 * 1024);
    })(),
  );
}

async function backUp(target: S3Target, id: string, data: Buffer): Promise<BackupMetadata> {
  const metadata = metadataFor(id, data);
  await target.write(id, streamOf(data));
  await target.commit(id, metadata);
  return metadata;
}

async function keys(bucket: string): Promise<string[]> {
  const out = await admin.send(new ListObjectsV2Command({ Bucket: bucket }));
  return (out.Contents ?? []).map((o) => o.Key ?? '').sort();
}

async function unfinishedUploads(bucket: string): Promise<string[]> {
  const out = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return (out.Uploads ?? []).map((u) => u.Key ?? '').sort();
}

/** The earlier backup is still listed and reads back byte for byte. */
async function expectKept(target: S3Target, id: string, data: Buffer): Promise<void> {
  await expectIntact(target, id, data, { only: false });
}

async function failure(p: Promise<unknown>): Promise<UserError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(UserError);
  return e as UserError;
}

const big = randomBytes(12 * MiB + 12345);
const previous = randomBytes(2 * MiB + 77);

describe('S3 target configuration', () => {
  it('has defaults for everything but the bucket', () => {
    expect(s3TargetSchema.parse({ type: 's3', bucket: 'backups' })).toEqual({
      type: 's3',
      region: 'us-east-1',
      bucket: 'backups',
      prefix: '',
      force_path_style: true,
      credentials_file: '/etc/syn3-backup/s3.cred',
      part_size: 64,
      queue_size: 4,
      retention: { keep: 7 },
    });
  });

  it.each([
    [{ prefix: 'host1' }, 'prefix'],
    [{ prefix: '/host1/' }, 'prefix'],
    [{ endpoint: 'http://127.0.0.1:7480/bucket' }, 'endpoint'],
    [{ endpoint: 'ftp://127.0.0.1' }, 'endpoint'],
    [{ part_size: 4 }, 'part_size'],
    [{ credentials_file: 's3.cred' }, 'credentials_file'],
    [{ secret_access_key: 'x' }, ''],
  ])('rejects %j', (bad, path) => {
    const r = s3TargetSchema.safeParse({ type: 's3', bucket: 'backups', ...bad });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path.join('.')).toBe(path);
  });
});

/** The bucket of each target of the contract. */
const bucketOf = new WeakMap<Target, string>();

describeTargetContract('s3', {
  fresh: async () => {
    const { target, bucket } = await setUp();
    bucketOf.set(target, bucket);
    return target;
  },
  tamper: async (target, id, change) => {
    const Bucket = bucketOf.get(target)!;
    const Key = `${PREFIX}${id}/manifest.json`;
    const got = await admin.send(new GetObjectCommand({ Bucket, Key }));
    const changed = change(JSON.parse((await got.Body?.transformToString('utf8')) ?? '') as Record<string, unknown>);
    await admin.send(new PutObjectCommand({ Bucket, Key, Body: typeof changed === 'string' ? changed : JSON.stringify(changed) }));
  },
});

describe('S3 target on a real Ceph RADOS Gateway: its keys and behaviour of its own', () => {
  it('check accepts a bucket it can list with its keys', async () => {
    const { target } = await setUp();
    await expect(target.check()).resolves.toBeUndefined();
  });

  it('write streams a multi-MB backup up in parts, and openPending reads back the same bytes', async () => {
    const { target, bucket } = await setUp();
    await target.write('b1', streamOf(big));
    const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: `${PREFIX}b1/home.xfsdump` }));
    expect(head.ContentLength).toBe(big.length);
    expect(head.ETag).toMatch(/-3"?$/); // three 5 MiB parts: a multipart upload
    expect(sha256(await readAll(await target.openPending('b1')))).toBe(sha256(big));
  });

  it('a backup smaller than one part is stored with a single PUT', async () => {
    const { target } = await setUp();
    const small = randomBytes(100_000);
    await target.write('small', streamOf(small));
    expect(sha256(await readAll(await target.openPending('small')))).toBe(sha256(small));
  });

  it('commit writes the manifest last: the backup is listed with its metadata and location', async () => {
    const { target, bucket } = await setUp();
    await target.write('b1', streamOf(previous));
    const metadata = metadataFor('b1', previous);
    const stored = await target.commit('b1', metadata);
    expect(stored).toEqual({
      id: 'b1',
      created: metadata.created,
      size: previous.length,
      location: `s3://${bucket}/${PREFIX}b1/home.xfsdump at ${server.endpoint}`,
      metadata,
    });
    expect(await target.list()).toEqual([stored]);
    expect(await keys(bucket)).toEqual([`${PREFIX}b1/home.xfsdump`, `${PREFIX}b1/manifest.json`]);
  });

  it('commit refuses a dump whose size is not what was written', async () => {
    const { target } = await setUp();
    await target.write('b1', streamOf(previous));
    const e = await failure(target.commit('b1', { ...metadataFor('b1', previous), size: previous.length + 1 }));
    expect(e.message).toBe(`the uploaded backup is ${previous.length} bytes, not ${previous.length + 1}, so it was not committed`);
    expect(await target.list()).toEqual([]);
  });

  it('write refuses an id that is already committed, and that backup stays intact', async () => {
    const { target } = await setUp();
    await backUp(target, 'b1', previous);
    const e = await failure(target.write('b1', streamOf(big)));
    expect(e.message).toBe('a backup with id b1 is already committed on the target');
    await expectKept(target, 'b1', previous);
  });

  it('list is oldest first and shows only dumps with a manifest under the prefix', async () => {
    const { target, bucket } = await setUp();
    const put = (Key: string) => admin.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'x' }));
    await backUp(target, 'older', previous);
    await backUp(target, 'newer', previous);
    await target.write('pending', streamOf(previous));
    await put(`${PREFIX}orphan/manifest.json`);
    await put(`${PREFIX}notes.txt`);
    await put(`${PREFIX}deep/er/home.xfsdump`);
    await put('other-host/x1/home.xfsdump');
    expect((await target.list()).map((b) => b.id)).toEqual(['older', 'newer']);
  });

  it('remove deletes the backup, manifest and dump', async () => {
    const { target, bucket } = await setUp();
    await backUp(target, 'gone', previous);
    await backUp(target, 'kept', previous);
    await target.remove('gone');
    expect((await target.list()).map((b) => b.id)).toEqual(['kept']);
    expect(await keys(bucket)).toEqual([`${PREFIX}kept/home.xfsdump`, `${PREFIX}kept/manifest.json`]);
  });

  it('a dump whose manifest is gone (a removal cut short) is not listed, and cleanPending removes it', async () => {
    const { target, bucket } = await setUp();
    await backUp(target, 'half', previous);
    await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${PREFIX}half/manifest.json` }));
    expect(await target.list()).toEqual([]);
    expect(await target.cleanPending()).toEqual(['half']);
    expect(await keys(bucket)).toEqual([]);
  });

  it('cleanPending removes dumps without a manifest and aborts unfinished multipart uploads, except keep', async () => {
    const { target, bucket } = await setUp();
    await backUp(target, 'done', previous);
    await target.write('left', streamOf(previous));
    await target.write('current', streamOf(previous));
    const { UploadId } = await admin.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: `${PREFIX}crashed/home.xfsdump` }));
    await admin.send(
      new UploadPartCommand({ Bucket: bucket, Key: `${PREFIX}crashed/home.xfsdump`, UploadId, PartNumber: 1, Body: randomBytes(5 * MiB) }),
    );
    expect((await target.cleanPending('current')).sort()).toEqual(['crashed', 'left']);
    expect(await unfinishedUploads(bucket)).toEqual([]);
    expect(await keys(bucket)).toEqual([`${PREFIX}current/home.xfsdump`, `${PREFIX}done/home.xfsdump`, `${PREFIX}done/manifest.json`]);
    expect(await target.cleanPending('current')).toEqual([]);
  });

  it('a source that fails mid-stream fails the write with its own error and leaves no upload behind', async () => {
    const { target, bucket } = await setUp();
    const broken = new Error('xfsdump died');
    const source = Readable.from(
      (async function* () {
        for (let i = 0; i < 8; i++) yield randomBytes(MiB);
        throw broken;
      })(),
    );
    await expect(target.write('b1', source)).rejects.toBe(broken);
    expect(await unfinishedUploads(bucket)).toEqual([]);
    expect(await keys(bucket)).toEqual([]);
  });

  it('open of a backup that is not there says so', async () => {
    const { target, bucket } = await setUp();
    const e = await failure(target.open('absent'));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `s3://${bucket}/${PREFIX}absent/home.xfsdump at ${server.endpoint}: the backup object is not on the target. "syn3-backup list" shows the backups that are there.`,
    );
  });

  it('refuses a credentials file that group or others can read, before any request', async () => {
    const loose = join(dir, 'loose.cred');
    await server.writeCredentialsFile(loose, server.credentials, 0o640);
    await chmod(loose, 0o640);
    const { target } = await setUp({ credentials_file: loose });
    const e = await failure(target.check());
    expect(e.kind).toBe('config');
    expect(e.paragraph()).toBe(
      `${loose}: the S3 credentials file is open to its group (mode 0640). Make it readable by root only: chmod 600 ${loose} (and, as its group could read it, consider changing the keys).`,
    );
  });

  it('refuses a missing credentials file, saying what it must hold', async () => {
    const { target } = await setUp({ credentials_file: join(dir, 'absent.cred') });
    const e = await failure(target.check());
    expect(e.kind).toBe('config');
    expect(e.message).toBe('the S3 credentials file does not exist');
    expect(e.hint).toContain('"access_key_id = ..." and "secret_access_key = ..."');
  });
});

describe('S3 target faults: a clear error, a failed run, the previous backup kept, nothing left after the next run', () => {
  /** A bucket holding one committed backup, and the target that made it. */
  async function withPrevious(overrides: Partial<Record<keyof S3TargetConfig, unknown>> = {}) {
    const setup = await setUp(overrides);
    await backUp(setup.target, 'prev', previous);
    return setup;
  }

  async function expectCleanAfterNextRun(target: S3Target, bucket: string, removed: string[] = []): Promise<void> {
    expect((await target.cleanPending()).sort()).toEqual(removed);
    expect(await unfinishedUploads(bucket)).toEqual([]);
    expect(await keys(bucket)).toEqual([`${PREFIX}prev/home.xfsdump`, `${PREFIX}prev/manifest.json`]);
    await expectKept(target, 'prev', previous);
  }

  it('a wrong secret key: the server refused the credentials (SignatureDoesNotMatch)', async () => {
    const { target, bucket } = await withPrevious();
    const wrong = join(dir, 'wrong-secret.cred');
    await server.writeCredentialsFile(wrong, { accessKeyId: server.credentials.accessKeyId, secretAccessKey: 'not-the-secret-4711' });
    const { target: bad } = await setUp({ bucket, credentials_file: wrong });
    const e = await failure(bad.write('b2', streamOf(big)));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `s3://${bucket}/${PREFIX}b2/home.xfsdump at ${server.endpoint}: the S3 server refused the credentials (SignatureDoesNotMatch). ` +
        `Check access_key_id and secret_access_key in ${wrong} for ${server.endpoint}; the earlier backups were kept.`,
    );
    expect(JSON.stringify([e.message, e.hint])).not.toContain('not-the-secret-4711');
    await expect(bad.check()).rejects.toThrow('the S3 server refused the credentials (SignatureDoesNotMatch)');
    await expectCleanAfterNextRun(target, bucket);
  });

  it('an unknown access key: the server refused the credentials (InvalidAccessKeyId)', async () => {
    const { target, bucket } = await withPrevious();
    const wrong = join(dir, 'wrong-key.cred');
    await server.writeCredentialsFile(wrong, { accessKeyId: 'NOSUCHACCESSKEY00000', secretAccessKey: 'whatever-secret' });
    const { target: bad } = await setUp({ bucket, credentials_file: wrong });
    const e = await failure(bad.check());
    expect(e.kind).toBe('target');
    expect(e.message).toBe('the S3 server refused the credentials (InvalidAccessKeyId)');
    expect(e.where).toBe(`s3://${bucket}/${PREFIX} at ${server.endpoint}`);
    await expect(bad.write('b2', streamOf(big))).rejects.toThrow('the S3 server refused the credentials (InvalidAccessKeyId)');
    await expectCleanAfterNextRun(target, bucket);
  });

  it('an unreachable server: it cannot be reached (ECONNREFUSED)', async () => {
    const { target, bucket } = await withPrevious();
    const [closed] = await freePorts(1);
    const endpoint = `http://127.0.0.1:${closed}`;
    const { target: bad } = await setUp({ bucket, endpoint });
    const e = await failure(bad.write('b2', streamOf(big)));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `s3://${bucket}/${PREFIX}b2/home.xfsdump at ${endpoint}: the S3 server cannot be reached (ECONNREFUSED). ` +
        `Check that the server at ${endpoint} is running and reachable from this machine, then run again; the earlier backups were kept.`,
    );
    await expect(bad.check()).rejects.toThrow('the S3 server cannot be reached (ECONNREFUSED)');
    await expectCleanAfterNextRun(target, bucket);
  });

  it('a missing bucket: the bucket does not exist (NoSuchBucket)', async () => {
    const { target, bucket } = await withPrevious();
    const { target: bad } = await setUp({ bucket: 'no-such-bucket-here' });
    const e = await failure(bad.check());
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `s3://no-such-bucket-here/${PREFIX} at ${server.endpoint}: the bucket no-such-bucket-here does not exist. ` +
        `Create the bucket on ${server.endpoint} (e.g. "aws s3 mb s3://no-such-bucket-here" or "s3cmd mb s3://no-such-bucket-here"), or correct target.bucket.`,
    );
    await expect(bad.write('b2', streamOf(big))).rejects.toThrow('the bucket no-such-bucket-here does not exist');
    await expect(bad.list()).rejects.toThrow('the bucket no-such-bucket-here does not exist');
    await expectCleanAfterNextRun(target, bucket);
  });

  it('a full bucket: the target is full (QuotaExceeded) and the partial upload is aborted', async () => {
    const { target, bucket } = await withPrevious();
    await server.setBucketQuota(bucket, 6 * MiB);
    const e = await failure(target.write('b2', streamOf(big)));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `s3://${bucket}/${PREFIX}b2/home.xfsdump at ${server.endpoint}: the target is full (QuotaExceeded); the partial backup was discarded. ` +
        `Free space in bucket ${bucket}, raise its quota, or lower target.retention.keep; the earlier backups were kept.`,
    );
    expect(await unfinishedUploads(bucket)).toEqual([]);
    await expectCleanAfterNextRun(target, bucket);
  });

  it('the connection dropped mid-stream (radosgw killed): the write fails, and cleanPending aborts the unfinished upload', async () => {
    const { target, bucket } = await withPrevious();
    const key = `${PREFIX}b2/home.xfsdump`;
    let sent = 0;
    const endless = new Readable({
      read() {
        sent += MiB;
        this.push(sent > 512 * MiB ? null : randomBytes(MiB));
      },
    });
    const writing = target.write('b2', endless).then(
      () => undefined,
      (err: unknown) => err,
    );
    // Wait until at least one part is stored, so the upload really is half done.
    await expect.poll(() => partsStored(bucket, key), { timeout: 30_000, interval: 100 }).toBeGreaterThan(0);
    await server.killGateway();
    let e: unknown;
    try {
      e = await writing;
    } finally {
      await server.startGateway();
    }
    expect(e).toBeInstanceOf(UserError);
    const err = e as UserError;
    expect(err.kind).toBe('target');
    expect(err.message).toMatch(
      /^the connection to the S3 server was lost during the upload \((ECONNREFUSED|ECONNRESET|EPIPE)\); the backup was not stored$/,
    );
    expect(err.hint).toBe(
      `Check that the server at ${server.endpoint} is running and reachable from this machine, then run again; the earlier backups were kept, and the next run removes what the interrupted upload left`,
    );
    expect(await unfinishedUploads(bucket)).toEqual([key]);
    await expectCleanAfterNextRun(target, bucket, ['b2']);
  });
});

async function partsStored(bucket: string, key: string): Promise<number> {
  const uploads = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  const upload = uploads.Uploads?.find((u) => u.Key === key);
  if (!upload?.UploadId) return 0;
  const parts = await admin.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: upload.UploadId }));
  return parts.Parts?.length ?? 0;
}
