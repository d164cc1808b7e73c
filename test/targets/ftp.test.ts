/**
 * The FTP target against a real vsftpd on 127.0.0.1, plain and explicit FTPS:
 * the Target contract (contract.ts), its layout in the directory, and every
 * fault the issue lists, each with the error the administrator reads and the
 * earlier backup still there.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { FtpTarget, readPasswordFile } from '../../src/targets/ftp.js';
import { ftpTargetSchema } from '../../src/targets/ftp-config.js';
import type { BackupMetadata, Target } from '../../src/targets/target.js';
import { freePort, startFtpServer, type FtpServer } from '../support/servers/ftp.js';
import {
  expectIntact as expectListedAndIntact,
  MiB,
  metadataFor as anyMetadataFor,
  readAll,
  sha256,
  streamOf,
} from '../support/target-helpers.js';
import { describeTargetContract } from './contract.js';
// A missing prerequisite fails the run (startFtpServer throws and says what to install): never a skip.

interface Data {
  bytes: Buffer;
  sha256: string;
}

function randomData(size: number): Data {
  const bytes = randomBytes(size);
  return { bytes, sha256: sha256(bytes) };
}

function metadataFor(id: string, data: Data, created?: string): BackupMetadata {
  return anyMetadataFor(id, data.bytes, created === undefined ? {} : { created });
}

function ftpTarget(server: FtpServer, directory: string, extra: Record<string, unknown> = {}): FtpTarget {
  return new FtpTarget(
    ftpTargetSchema.parse({
      type: 'ftp',
      host: server.host,
      port: server.port,
      user: server.user,
      password_file: server.passwordFile,
      directory,
      timeout: '10s',
      ...(server.tls ? { secure: true, ca_file: server.certFile } : { secure: false }),
      ...extra,
    }),
  );
}

/** write + commit: a backup as a finished run leaves it. */
async function storeBackup(target: Target, id: string, size: number, created?: string): Promise<Data> {
  const data = randomData(size);
  await target.write(id, streamOf(data.bytes));
  await target.commit(id, metadataFor(id, data, created));
  return data;
}

/** The earlier backup is still listed, and reads back bit for bit (other backups may be listed beside it). */
async function expectIntact(target: Target, id: string, data: Data): Promise<void> {
  await expectListedAndIntact(target, id, data.bytes, { only: false });
}

async function failure(p: Promise<unknown>): Promise<UserError> {
  const e: unknown = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(UserError);
  return e as UserError;
}

function localFiles(server: FtpServer, directory: string): string[] {
  return readdirSync(join(server.root, directory)).sort();
}

describe('FTP target: the contract, on a real vsftpd (plain FTP)', () => {
  let server: FtpServer;
  let n = 0;
  const dirs = new WeakMap<Target, string>();
  describeTargetContract('ftp', {
    start: async () => {
      server = await startFtpServer();
    },
    stop: async () => {
      await server?.stop();
    },
    fresh: async () => {
      const dir = server.makeDirectory(`c${++n}`);
      const target = ftpTarget(server, dir);
      dirs.set(target, dir);
      return target;
    },
    tamper: async (target, id, change) => {
      const file = join(server.root, dirs.get(target)!, `${id}.meta.json`);
      const changed = change(JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>);
      writeFileSync(file, typeof changed === 'string' ? changed : JSON.stringify(changed));
    },
  });
});

describe('FTP target on a real vsftpd (plain FTP)', () => {
  let server: FtpServer;
  let n = 0;
  /** A fresh, empty backup directory per test. */
  const fresh = () => server.makeDirectory(`t${++n}`);

  beforeAll(async () => {
    server = await startFtpServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('check passes on a writable directory and leaves nothing in it', async () => {
    const dir = fresh();
    await ftpTarget(server, dir).check();
    expect(localFiles(server, dir)).toEqual([]);
  });

  it('write stores a multi-MB stream under a temporary name that list does not show', async () => {
    const dir = fresh();
    const target = ftpTarget(server, dir);
    const data = randomData(6 * MiB);
    await target.write('host-1', streamOf(data.bytes));
    expect(localFiles(server, dir)).toEqual(['host-1.xfsdump.partial']);
    expect(statSync(join(server.root, dir, 'host-1.xfsdump.partial')).size).toBe(data.bytes.length);
    expect(await target.list()).toEqual([]);
  });

  it('commit publishes the dump and its metadata, and list shows it with the metadata', async () => {
    const dir = fresh();
    const target = ftpTarget(server, dir);
    const data = randomData(3 * MiB);
    await target.write('host-1', streamOf(data.bytes));
    const metadata = metadataFor('host-1', data);
    const stored = await target.commit('host-1', metadata);
    expect(stored).toEqual({
      id: 'host-1',
      created: metadata.created,
      size: data.bytes.length,
      location: `ftp://${server.user}@127.0.0.1:${server.port}${dir}/host-1.xfsdump`,
      metadata,
    });
    expect(localFiles(server, dir)).toEqual(['host-1.meta.json', 'host-1.xfsdump']);
    expect(await target.list()).toEqual([stored]);
  });

  it('a commit that broke off after renaming the dump is completed by committing again', async () => {
    const dir = fresh();
    const target = ftpTarget(server, dir);
    const data = randomData(MiB);
    await target.write('host-1', streamOf(data.bytes));
    const local = join(server.root, dir);
    renameSync(join(local, 'host-1.xfsdump.partial'), join(local, 'host-1.xfsdump'));
    writeFileSync(join(local, 'host-1.meta.json.partial'), '{"format"');
    chownSync(join(local, 'host-1.meta.json.partial'), server.uid, server.gid);
    expect(await target.list()).toEqual([]);
    await target.commit('host-1', metadataFor('host-1', data));
    await expectIntact(target, 'host-1', data);
    expect(localFiles(server, dir)).toEqual(['host-1.meta.json', 'host-1.xfsdump']);
  });

  it('commit of an id that was never uploaded is refused', async () => {
    const e = await failure(ftpTarget(server, fresh()).commit('host-1', metadataFor('host-1', randomData(10))));
    expect(e.message).toBe('there is no uploaded backup host-1 to publish');
  });

  it('list shows committed backups oldest first and ignores temporaries, dumps without metadata and metadata without a dump', async () => {
    const dir = fresh();
    const target = ftpTarget(server, dir);
    await storeBackup(target, 'host-b', MiB, '2030-01-02T00:00:00.000Z');
    await storeBackup(target, 'host-a', MiB, '2030-01-03T00:00:00.000Z');
    await storeBackup(target, 'host-c', MiB, '2030-01-01T00:00:00.000Z');
    await target.write('host-d', streamOf(randomBytes(MiB)));
    const local = join(server.root, dir);
    writeFileSync(join(local, 'host-e.xfsdump'), 'a dump whose commit broke off');
    writeFileSync(join(local, 'host-f.meta.json'), JSON.stringify(metadataFor('host-f', randomData(10))));
    writeFileSync(join(local, 'host-g.meta.json.partial'), '{');
    writeFileSync(join(local, 'notes.txt'), 'not a backup');
    expect((await target.list()).map((b) => b.id)).toEqual(['host-c', 'host-b', 'host-a']);
  });

  it('remove deletes the backup: it is no longer listed and its files are gone', async () => {
    const dir = fresh();
    const target = ftpTarget(server, dir);
    await storeBackup(target, 'host-1', MiB);
    const kept = await storeBackup(target, 'host-2', MiB);
    await target.remove('host-1');
    expect((await target.list()).map((b) => b.id)).toEqual(['host-2']);
    expect(localFiles(server, dir)).toEqual(['host-2.meta.json', 'host-2.xfsdump']);
    await expectIntact(target, 'host-2', kept);
    await target.remove('host-1'); // again: nothing left to do, no error
  });

  it('cleanPending removes leftover temporaries and orphaned dumps, except the one to keep', async () => {
    const dir = fresh();
    const target = ftpTarget(server, dir);
    const kept = await storeBackup(target, 'host-1', MiB);
    await target.write('host-2', streamOf(randomBytes(MiB)));
    await target.write('host-3', streamOf(randomBytes(MiB)));
    writeFileSync(join(server.root, dir, 'host-4.xfsdump'), 'a dump whose commit broke off');
    writeFileSync(join(server.root, dir, 'notes.txt'), 'not ours');
    expect((await target.cleanPending('host-3')).sort()).toEqual(['host-2', 'host-4']);
    expect(localFiles(server, dir)).toEqual(['host-1.meta.json', 'host-1.xfsdump', 'host-3.xfsdump.partial', 'notes.txt']);
    expect(await target.cleanPending()).toEqual(['host-3']);
    await expectIntact(target, 'host-1', kept);
  });

  it('a source stream that fails ends the write with its error and leaves no temporary behind', async () => {
    const dir = fresh();
    const target = ftpTarget(server, dir);
    const source = Readable.from(
      (async function* () {
        yield randomBytes(MiB);
        throw new Error('xfsdump went away');
      })(),
    );
    await expect(target.write('host-1', source)).rejects.toThrow('xfsdump went away');
    expect(localFiles(server, dir)).toEqual([]);
  });

  it('open of a backup that is not there says so', async () => {
    const dir = fresh();
    const e = await failure(ftpTarget(server, dir).open('host-9'));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `ftp://${server.user}@127.0.0.1:${server.port}${dir}/host-9.xfsdump: the backup file is not on the FTP server. "syn3-backup list" shows the backups that are there.`,
    );
  });

  it('wrong credentials: the login is refused with a clear error that names the password file but not the password', async () => {
    const dir = fresh();
    const good = ftpTarget(server, dir);
    const earlier = await storeBackup(good, 'host-1', 2 * MiB);
    const wrongFile = join(server.dir, 'wrong.pass');
    writeFileSync(wrongFile, 'not-the-password-7Qx\n', { mode: 0o600 });
    const bad = ftpTarget(server, dir, { password_file: wrongFile });
    const e = await failure(bad.write('host-2', streamOf(randomBytes(MiB))));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `127.0.0.1:${server.port}: the FTP server refused the login of user ${server.user} (530 Login incorrect.). Check target.user and the password in ${wrongFile}.`,
    );
    expect(e.paragraph()).not.toContain('not-the-password-7Qx');
    await expectIntact(good, 'host-1', earlier);
    expect(localFiles(server, dir)).toEqual(['host-1.meta.json', 'host-1.xfsdump']);
  });

  it('unreachable: nothing listens on the port', async () => {
    const port = await freePort();
    const target = ftpTarget(server, '/backups', { port });
    const e = await failure(target.write('host-1', streamOf(randomBytes(MiB))));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `127.0.0.1:${port}: cannot reach the FTP server (connect ECONNREFUSED 127.0.0.1:${port} (control socket)). Check that the server is running and reachable at 127.0.0.1:${port}, and target.host and target.port.`,
    );
    await expect(target.check()).rejects.toThrow('cannot reach the FTP server');
  });

  it('unreachable: a server that accepts but never answers fails after target.timeout', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const target = ftpTarget(server, '/backups', { port, timeout: '1s' });
      const started = Date.now();
      const e = await failure(target.check());
      expect(Date.now() - started).toBeLessThan(5000);
      expect(e.paragraph()).toBe(
        `127.0.0.1:${port}: cannot reach the FTP server (Timeout (control socket)). Check that the server is running and reachable at 127.0.0.1:${port}, and target.host and target.port.`,
      );
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('missing directory: the backup directory does not exist on the server', async () => {
    const target = ftpTarget(server, '/no-such-dir');
    const e = await failure(target.write('host-1', streamOf(randomBytes(MiB))));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `ftp://${server.user}@127.0.0.1:${server.port}/no-such-dir: the backup directory /no-such-dir does not exist on the FTP server (550 Failed to change directory.). Create it on the server (it is not created automatically) or correct target.directory.`,
    );
    await expect(target.check()).rejects.toThrow('does not exist on the FTP server');
    await expect(target.list()).rejects.toThrow('does not exist on the FTP server');
  });

  it('check refuses a directory the user may not write to', async () => {
    const dir = server.makeDirectory(`ro${++n}`, { writable: false });
    const e = await failure(ftpTarget(server, dir).check());
    expect(e.paragraph()).toBe(
      `ftp://${server.user}@127.0.0.1:${server.port}${dir}/syn3-backup-write-check.partial: the FTP server does not let user ${server.user} write there (553 Could not create file.). Give ${server.user} write permission in ${dir} on the server; the earlier backups were kept.`,
    );
  });

  it('secure: true against a server without FTPS says the server does not offer it', async () => {
    const e = await failure(ftpTarget(server, fresh(), { secure: true }).check());
    expect(e.message).toBe(
      'the FTP server does not offer explicit FTPS (AUTH TLS was answered with: 530 Please login with USER and PASS.)',
    );
  });

  it('connection dropped mid-download: the reader gets a clear error, not a short stream', async () => {
    const own = await startFtpServer();
    try {
      const target = ftpTarget(own, own.makeDirectory('b'));
      await storeBackup(target, 'host-1', 24 * MiB);
      const reader = await target.open('host-1');
      const it = reader[Symbol.asyncIterator]();
      await it.next(); // the transfer is under way; the rest waits in the server
      await own.crash();
      const e: unknown = await (async () => {
        for (let r = await it.next(); !r.done; r = await it.next());
      })().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(UserError);
      expect((e as UserError).message).toMatch(/^the connection to the FTP server was lost while downloading \(/);
      // A download leaves no partial upload to speak of.
      expect((e as UserError).hint).toBe('Check that the server is running and reachable, then run again; the earlier backups were kept');
    } finally {
      await own.stop();
    }
  });
});

describe('FTP target faults that need a server of their own', () => {
  it('full: the upload fails as "full", the partial is removed, the earlier backup is intact', async () => {
    const own = await startFtpServer({ tmpfsMiB: 12 });
    try {
      const dir = own.makeDirectory('b');
      const target = ftpTarget(own, dir);
      const earlier = await storeBackup(target, 'host-1', 4 * MiB);
      const chunk = randomBytes(MiB);
      const endless = Readable.from(
        (function* () {
          for (let i = 0; i < 256; i++) yield chunk;
        })(),
      );
      const e = await failure(target.write('host-2', endless));
      expect(e.kind).toBe('target');
      expect(e.message).toMatch(
        /^the FTP server is full: it stopped taking the backup after [\d.]+ MiB had been sent \(451 Failure writing to local file\.\); the partial upload was removed$/,
      );
      expect(e.where).toBe(`ftp://${own.user}@127.0.0.1:${own.port}/b/host-2.xfsdump.partial`);
      expect(e.hint).toBe(
        `Free space on the FTP server (or raise the quota of ${own.user}) or lower target.retention.keep; the earlier backups were kept`,
      );
      expect(localFiles(own, dir)).toEqual(['host-1.meta.json', 'host-1.xfsdump']);
      await expectIntact(target, 'host-1', earlier);
      // The space is back: the next run can write.
      const next = await storeBackup(target, 'host-3', 4 * MiB);
      await expectIntact(target, 'host-3', next);
    } finally {
      await own.stop();
    }
  });

  it('connection dropped mid-upload: a clear error, the earlier backup intact after a restart, the partial removed by cleanPending', async () => {
    const own = await startFtpServer();
    try {
      const dir = own.makeDirectory('b');
      const target = ftpTarget(own, dir, { timeout: '3s' });
      const earlier = await storeBackup(target, 'host-1', 4 * MiB);
      const partial = join(own.root, dir, 'host-2.xfsdump.partial');
      let crashed!: () => void;
      const afterCrash = new Promise<void>((resolve) => (crashed = resolve));
      const source = Readable.from(
        (async function* () {
          for (let i = 0; i < 8; i++) yield randomBytes(MiB);
          await afterCrash;
          for (let i = 0; i < 8; i++) yield randomBytes(MiB);
        })(),
      );
      const writing = failure(target.write('host-2', source));
      while (!existsSync(partial) || statSync(partial).size < 4 * MiB) await new Promise((r) => setTimeout(r, 20));
      await own.crash();
      crashed();
      const e = await writing;
      expect(e.kind).toBe('target');
      expect(e.message).toMatch(/^the connection to the FTP server was lost while uploading after [\d.]+ MiB had been sent \(.+\)$/);
      expect(e.hint).toBe(
        'Check that the server is running and reachable, then run again; the earlier backups were kept, and the next successful run removes the partial upload',
      );
      expect(existsSync(partial)).toBe(true);

      await own.restart();
      expect((await target.list()).map((b) => b.id)).toEqual(['host-1']);
      await expectIntact(target, 'host-1', earlier);
      expect(await target.cleanPending()).toEqual(['host-2']);
      expect(localFiles(own, dir)).toEqual(['host-1.meta.json', 'host-1.xfsdump']);
    } finally {
      await own.stop();
    }
  });
});

describe('FTP target on a real vsftpd (explicit FTPS, self-signed certificate)', () => {
  let server: FtpServer;
  let n = 0;
  const fresh = () => server.makeDirectory(`s${++n}`);

  beforeAll(async () => {
    server = await startFtpServer({ tls: true });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('write, openPending, commit, list, open, remove and cleanPending work over FTPS, trusting the certificate through ca_file', async () => {
    const dir = fresh();
    const target = ftpTarget(server, dir);
    await target.check();
    const data = randomData(6 * MiB);
    await target.write('host-1', streamOf(data.bytes));
    expect(sha256(await readAll(await target.openPending('host-1')))).toBe(data.sha256);
    await target.commit('host-1', metadataFor('host-1', data));
    await target.write('host-2', streamOf(randomBytes(MiB)));
    expect((await target.list()).map((b) => b.id)).toEqual(['host-1']);
    expect(sha256(await readAll(await target.open('host-1')))).toBe(data.sha256);
    expect(await target.cleanPending()).toEqual(['host-2']);
    await target.remove('host-1');
    expect(await target.list()).toEqual([]);
    expect(localFiles(server, dir)).toEqual([]);
  });

  it('the self-signed certificate is refused without ca_file', async () => {
    const target = ftpTarget(server, fresh(), { ca_file: undefined });
    const e = await failure(target.check());
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `127.0.0.1:${server.port}: the FTP server's TLS certificate is not trusted (self-signed certificate). Set target.ca_file to a PEM file with the server's certificate or the CA that signed it.`,
    );
  });

  it('allow_self_signed accepts the certificate without a CA file', async () => {
    const target = ftpTarget(server, fresh(), { ca_file: undefined, allow_self_signed: true });
    const data = await storeBackup(target, 'host-1', MiB);
    await expectIntact(target, 'host-1', data);
  });

  it('secure: false against a server that requires FTPS says to turn it on', async () => {
    const e = await failure(ftpTarget(server, fresh(), { secure: false, ca_file: undefined }).check());
    expect(e.paragraph()).toBe(
      `127.0.0.1:${server.port}: the FTP server requires FTPS (530 Non-anonymous sessions must use encryption.). Set target.secure: true.`,
    );
  });
});

describe('FTP target configuration', () => {
  const minimal = {
    type: 'ftp',
    host: 'ftp.example.org',
    user: 'backup',
    password_file: '/etc/syn3-backup/ftp.pass',
    directory: '/backups/host',
    secure: true,
  };

  it('fills in port 21, verified certificates, a 30 s timeout and keep 7', () => {
    expect(ftpTargetSchema.parse(minimal)).toEqual({
      ...minimal,
      port: 21,
      allow_self_signed: false,
      timeout: 30_000,
      retention: { keep: 7 },
    });
  });

  it('has no default for secure: plain FTP (password and data in clear) takes an explicit secure: false', () => {
    const { secure: _secure, ...unsaid } = minimal;
    const r = ftpTargetSchema.safeParse(unsaid);
    expect(r.error?.issues.map((i) => `${i.path.join('.')}: ${i.code}`)).toEqual(['secure: invalid_type']);
    expect(ftpTargetSchema.parse({ ...minimal, secure: false }).secure).toBe(false);
  });

  it('refuses ca_file without secure: true', () => {
    const r = ftpTargetSchema.safeParse({ ...minimal, secure: false, ca_file: '/etc/ssl/ftp-ca.pem' });
    expect(r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'secure: ca_file and allow_self_signed apply to FTPS only: set secure: true as well',
    ]);
  });

  it('refuses unknown keys and a relative password_file', () => {
    expect(ftpTargetSchema.safeParse({ ...minimal, pasword: 'x' }).success).toBe(false);
    expect(ftpTargetSchema.safeParse({ ...minimal, password_file: 'ftp.pass' }).success).toBe(false);
  });
});

describe('FTP password file', () => {
  it('is read without its trailing newline', async () => {
    const file = join(tmpDir(), 'ok.pass');
    writeFileSync(file, 'pw with spaces\n', { mode: 0o600 });
    expect(await readPasswordFile(file)).toBe('pw with spaces');
  });

  it('is refused when group or others can read it', async () => {
    const file = join(tmpDir(), 'open.pass');
    writeFileSync(file, 'secret\n');
    chmodSync(file, 0o644);
    const e = await failure(readPasswordFile(file));
    expect(e.kind).toBe('config');
    expect(e.paragraph()).toBe(
      `${file}: the FTP password file is open to other users (mode 0644). Make it readable by root only: chmod 600 ${file} (and, as other users could read it, consider changing the password).`,
    );
    chmodSync(file, 0o640);
    await expect(readPasswordFile(file)).rejects.toThrow('the FTP password file is open to its group (mode 0640)');
  });

  it('is refused when it does not exist, before any connection is made', async () => {
    const file = join(tmpDir(), 'missing.pass');
    const target = new FtpTarget(
      ftpTargetSchema.parse({ type: 'ftp', host: '127.0.0.1', port: 9, secure: false, user: 'u', password_file: file, directory: '/b' }),
    );
    const e = await failure(target.check());
    expect(e.paragraph()).toBe(
      `${file}: the FTP password file does not exist. Put the password on one line in it (chmod 600), or correct target.password_file.`,
    );
  });
});

let scratch: string | undefined;
/** A private scratch dir for the password-file specs, removed after them. */
function tmpDir(): string {
  scratch ??= mkdtempSync(join(tmpdir(), 'syn3-ftp-pass-'));
  return scratch;
}
afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});
