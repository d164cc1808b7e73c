/**
 * The smb target against a real smbd on 127.0.0.1 (its own port, smb.conf and
 * shares under a temp dir): the Target contract (contract.ts), its layout on
 * the share, and every fault the issue names, each with its message and the
 * previous backup kept.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { smbTargetSchema, type SmbTargetConfig } from '../../src/targets/smb-config.js';
import { classifySmbFailure, parseSmbListing, SmbTarget } from '../../src/targets/smb.js';
import type { Target } from '../../src/targets/target.js';
import { freePort, startSmbServer, type SmbServer } from '../support/servers/smb.js';
import { expectIntact, MiB, metadataFor, readAll, sha256, streamOf } from '../support/target-helpers.js';
import { describeTargetContract } from './contract.js';
// A missing prerequisite fails the run (startSmbServer throws and says what to install): never a skip.

let server: SmbServer;
let folders = 0;

beforeAll(async () => {
  server = await startSmbServer({ shares: [{ name: 'backups' }, { name: 'small', tmpfsMiB: 20 }, { name: 'readonly', readOnly: true }] });
});

afterAll(async () => {
  await server?.stop();
});

interface Setup {
  target: SmbTarget;
  config: SmbTargetConfig;
  /** The target's directory as smbd serves it, to look at what is really there. */
  local: string;
}

/** A target on a fresh folder of a share (so tests never see each other's files). */
function setUp(overrides: Partial<Record<keyof SmbTargetConfig, unknown>> = {}, share = 'backups'): Setup {
  const directory = `hosts/h${++folders}`;
  const local = join(server.path(share), directory);
  mkdirSync(local, { recursive: true });
  const config = smbTargetSchema.parse({
    type: 'smb',
    share: server.unc(share),
    port: server.port,
    directory,
    credentials_file: server.credentialsFile,
    ...overrides,
  });
  return { target: new SmbTarget(config), config, local };
}

/** Writes and commits a backup; returns its bytes. */
async function backUp(target: SmbTarget, id: string, bytes: number): Promise<Buffer> {
  const data = randomBytes(bytes);
  await target.write(id, streamOf(data));
  await target.commit(id, metadataFor(id, data));
  return data;
}

async function failure(promise: Promise<unknown>): Promise<UserError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UserError);
  const e = error as UserError;
  // The password never shows, whatever went wrong.
  expect(`${e.paragraph()} ${e.stack ?? ''}`).not.toContain(server.password);
  return e;
}

function incoming(local: string): string[] {
  const dir = join(local, '.incoming');
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Where each target of the contract keeps its files, as smbd serves them. */
const folderOf = new WeakMap<Target, string>();

describeTargetContract('smb', {
  fresh: async () => {
    const { target, local } = setUp();
    folderOf.set(target, local);
    return target;
  },
  tamper: async (target, id, change) => {
    const file = join(folderOf.get(target)!, `${id}.meta.json`);
    const changed = change(JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>);
    writeFileSync(file, typeof changed === 'string' ? changed : JSON.stringify(changed));
  },
});

describe('smb target: configuration', () => {
  it('takes //server/share, a folder in it and a credentials file, with defaults for the rest', () => {
    expect(smbTargetSchema.parse({ type: 'smb', share: '//nas.lan/backup', directory: '/backups\\host1/' })).toEqual({
      type: 'smb',
      share: '//nas.lan/backup',
      port: 445,
      directory: 'backups/host1',
      credentials_file: '/etc/syn3-backup/smb.cred',
      encryption: 'desired',
      retention: { keep: 7 },
    });
  });

  it('refuses a share path with a folder in it, a folder with "..", and unknown keys', () => {
    expect(smbTargetSchema.safeParse({ type: 'smb', share: '//nas/backup/host1' }).success).toBe(false);
    expect(smbTargetSchema.safeParse({ type: 'smb', share: 'nas/backup' }).success).toBe(false);
    expect(smbTargetSchema.safeParse({ type: 'smb', share: '//nas/backup', directory: 'a/../b' }).success).toBe(false);
    expect(smbTargetSchema.safeParse({ type: 'smb', share: '//nas/backup', password: 'x' }).success).toBe(false);
  });
});

describe('smb target: reading what smbclient says', () => {
  it('parses the files and folders of an ls listing', () => {
    const out = [
      '  .                                   D        0  Thu Nov 26 03:58:26 2026',
      '  ..                                  D        0  Thu Nov 26 03:58:26 2026',
      '  b1.xfsdump                          A  3000000  Thu Nov 26 03:58:25 2026',
      '  .incoming                          DH        0  Thu Nov  6 03:58:26 2026',
      '',
      '\t\t264212084 blocks of size 1024. 75047404 blocks available',
    ].join('\n');
    expect(parseSmbListing(out)).toEqual([
      { name: 'b1.xfsdump', directory: false, size: 3000000 },
      { name: '.incoming', directory: true, size: 0 },
    ]);
  });

  it('tells a full share from a dropped connection, past the harmless mkdir message', () => {
    const said =
      'NT_STATUS_OBJECT_NAME_COLLISION making remote directory \\.incoming\nNT_STATUS_INVALID_NETWORK_RESPONSE closing remote file \\x\ncli_push returned NT_STATUS_DISK_FULL';
    expect(classifySmbFailure(said)).toEqual({ failure: 'full', status: 'NT_STATUS_DISK_FULL' });
    expect(classifySmbFailure('', 'SIGPIPE')).toEqual({ failure: 'dropped' });
    expect(classifySmbFailure('session setup failed: NT_STATUS_LOGON_FAILURE')).toEqual({
      failure: 'credentials',
      status: 'NT_STATUS_LOGON_FAILURE',
    });
    expect(classifySmbFailure('cd \\a\\b\\: NT_STATUS_OBJECT_PATH_NOT_FOUND')).toEqual({
      failure: 'directory',
      status: 'NT_STATUS_OBJECT_PATH_NOT_FOUND',
    });
    expect(classifySmbFailure('protocol negotiation failed: NT_STATUS_IO_TIMEOUT')).toEqual({
      failure: 'unreachable',
      status: 'NT_STATUS_IO_TIMEOUT',
    });
  });
});

describe('smb target: its layout on the share', () => {
  it('stores a multi-MB stream under a temporary name that openPending reads back byte for byte', async () => {
    const { target, local } = setUp();
    const data = randomBytes(24 * MiB);
    await target.write('b1', streamOf(data));
    expect(incoming(local)).toEqual(['b1.xfsdump']);
    const back = await readAll(await target.openPending('b1'));
    expect(back.length).toBe(data.length);
    expect(sha256(back)).toBe(sha256(data));
  });

  it('commit publishes the dump with its metadata beside it, and open reads it back', async () => {
    const { target, local, config } = setUp();
    const data = randomBytes(5 * MiB + 123);
    await target.write('b1', streamOf(data));
    const metadata = metadataFor('b1', data);
    const stored = await target.commit('b1', metadata);
    expect(stored).toEqual({
      id: 'b1',
      created: metadata.created,
      size: data.length,
      location: `${config.share}/${config.directory}/b1.xfsdump`,
      metadata,
    });
    expect(readdirSync(local).sort()).toEqual(['.incoming', 'b1.meta.json', 'b1.xfsdump']);
    expect(incoming(local)).toEqual([]);
    expect(JSON.parse(readFileSync(join(local, 'b1.meta.json'), 'utf8'))).toEqual(metadata);
    expect(await target.list()).toEqual([stored]);
    expect(sha256(await readAll(await target.open('b1')))).toBe(sha256(data));
  });

  it('commit completes a commit that was cut short after the rename', async () => {
    const { target, local } = setUp();
    const data = randomBytes(MiB);
    await target.write('b1', streamOf(data));
    renameSync(join(local, '.incoming', 'b1.xfsdump'), join(local, 'b1.xfsdump'));
    expect(await target.list()).toEqual([]);
    await target.commit('b1', metadataFor('b1', data));
    await expectIntact(target, 'b1', data);
  });

  it('commit replaces a leftover dump of the same id that has no metadata', async () => {
    const { target, local } = setUp();
    const data = randomBytes(MiB);
    await target.write('b1', streamOf(data));
    writeFileSync(join(local, 'b1.xfsdump'), 'left behind by an interrupted run');
    await target.commit('b1', metadataFor('b1', data));
    await expectIntact(target, 'b1', data);
  });

  it('lists committed backups oldest first, ignoring temporaries, dumps without metadata and unreadable metadata', async () => {
    const { target, local } = setUp();
    // Made second, listed first: the order is by time, not by name.
    const second = await backUp(target, 'b2', MiB);
    const first = await backUp(target, 'b1', MiB);
    await target.write('b3', streamOf(randomBytes(1000)));
    writeFileSync(join(local, 'b4.xfsdump'), 'a dump whose commit was cut short');
    writeFileSync(join(local, 'b5.xfsdump'), 'x');
    writeFileSync(join(local, 'b5.meta.json'), '{"format":1,"id":"b5",'); // cut short
    writeFileSync(join(local, 'b6.meta.json'), JSON.stringify(metadataFor('b6', first))); // its dump is gone
    writeFileSync(join(local, 'notes.txt'), 'not a backup');
    const listed = await target.list();
    expect(listed.map((b) => b.id)).toEqual(['b2', 'b1']);
    expect(listed.map((b) => b.metadata.sha256)).toEqual([sha256(second), sha256(first)]);
  });

  it('remove deletes the dump and its metadata', async () => {
    const { target, local } = setUp();
    await backUp(target, 'b1', MiB);
    const kept = await backUp(target, 'b2', MiB);
    await target.remove('b1');
    expect(readdirSync(local).sort()).toEqual(['.incoming', 'b2.meta.json', 'b2.xfsdump']);
    await expectIntact(target, 'b2', kept);
    await target.remove('b1'); // already gone: nothing to do
  });

  it('cleanPending removes the leftovers of interrupted runs, except the one kept', async () => {
    const { target, local } = setUp();
    const kept = await backUp(target, 'b1', MiB);
    await target.write('b2', streamOf(randomBytes(MiB)));
    await target.write('b3', streamOf(randomBytes(MiB)));
    writeFileSync(join(local, 'b4.xfsdump'), 'renamed, but its metadata never came');
    writeFileSync(join(local, '.incoming', 'b5.meta.json'), '{}');
    expect((await target.cleanPending('b3')).sort()).toEqual(['b2', 'b4', 'b5']);
    expect(incoming(local)).toEqual(['b3.xfsdump']);
    expect(readdirSync(local).sort()).toEqual(['.incoming', 'b1.meta.json', 'b1.xfsdump']);
    expect(await target.cleanPending()).toEqual(['b3']);
    expect(await target.cleanPending()).toEqual([]);
    await expectIntact(target, 'b1', kept);
  });

  it('a source that fails mid-stream fails the write and leaves no partial file', async () => {
    const { target, local } = setUp();
    const source = new Readable({ read() {} });
    source.push(randomBytes(2 * MiB));
    setTimeout(() => source.destroy(new Error('xfsdump went away')), 200);
    await expect(target.write('b1', source)).rejects.toThrow('xfsdump went away');
    expect(incoming(local)).toEqual([]);
  });

  it('check passes on a reachable share with the directory present', async () => {
    const { target } = setUp();
    await target.check();
    expect(target.description).toMatch(/^smb target \/\/127\.0\.0\.1\/backups\/hosts\/h\d+ \(port \d+\)$/);
  });

  it('check refuses a share the user may not write to', async () => {
    const { target, config } = setUp({}, 'readonly');
    const e = await failure(target.check());
    expect(e.kind).toBe('target');
    expect(e.message).toMatch(/^the share refused access \(NT_STATUS_(ACCESS_DENIED|MEDIA_WRITE_PROTECTED)\)$/);
    expect(e.hint).toBe(`Give the user named in ${config.credentials_file} write access to ${config.share}/${config.directory}`);
    expect((await failure(target.write('b1', streamOf(randomBytes(MiB))))).message).toMatch(/^the share refused access/);
  });

  it('open of a backup that is not there says so', async () => {
    const { target, config } = setUp();
    const e = await failure(target.open('nothere'));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `${config.share}/${config.directory}/nothere.xfsdump: the backup file is not on the share (NT_STATUS_OBJECT_NAME_NOT_FOUND). "syn3-backup list" shows the backups that are there.`,
    );
  });
});

describe('smb target: the credentials file', () => {
  it('is refused when others can read it, before anything is sent', async () => {
    const file = server.writeCredentials(join(server.dir, 'open.cred'), { mode: 0o644 });
    const { target } = setUp({ credentials_file: file });
    const e = await failure(target.write('b1', streamOf(randomBytes(10))));
    expect(e.kind).toBe('config');
    expect(e.paragraph()).toBe(
      `${file}: the SMB credentials file is open to other users (mode 0644). Make it readable by root only: chmod 600 ${file} (and, as other users could read it, consider changing the password).`,
    );
  });

  it('is refused when it does not exist', async () => {
    const file = join(server.dir, 'nothere.cred');
    const { target } = setUp({ credentials_file: file });
    const e = await failure(target.check());
    expect(e.kind).toBe('config');
    expect(e.message).toBe('the SMB credentials file does not exist');
    expect(e.hint).toContain('chmod 600');
  });
});

describe('smb target: the password stays in the credentials file', () => {
  it('smbclient gets the credentials file on its command line, never the password', async () => {
    const { target } = setUp();
    const seen: string[][] = [];
    let writing = true;
    const watch = (async () => {
      while (writing) {
        for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
          let argv: string[];
          try {
            argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
          } catch {
            continue;
          }
          if (argv[0]?.endsWith('smbclient') && argv.includes(String(server.port))) seen.push(argv);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const slow = new Readable({ read() {} });
    const feed = setInterval(() => slow.push(randomBytes(256 * 1024)), 10);
    setTimeout(() => {
      clearInterval(feed);
      slow.push(null);
    }, 1500);
    await target.write('b1', slow);
    writing = false;
    await watch;
    expect(seen.length).toBeGreaterThan(0);
    for (const argv of seen) {
      expect(argv.join(' ')).not.toContain(server.password);
      expect(argv[argv.indexOf('-A') + 1]).toBe(server.credentialsFile);
    }
  });
});

describe('smb target: faults fail the run with a clear error and keep the previous backup', () => {
  /** A target with one committed backup, as before a failing run. */
  async function withPrevious(share = 'backups', bytes = 2 * MiB): Promise<Setup & { previous: Buffer }> {
    const setup = setUp({}, share);
    return { ...setup, previous: await backUp(setup.target, 'prev', bytes) };
  }

  it('wrong credentials: the server refuses the login, and the message names the credentials file', async () => {
    const { config, target, previous } = await withPrevious();
    const wrong = server.writeCredentials(join(server.dir, 'wrong.cred'), { password: 'not-the-password' });
    const bad = new SmbTarget({ ...config, credentials_file: wrong });
    const e = await failure(bad.write('next', streamOf(randomBytes(4 * MiB))));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `${config.share}: the SMB server refused the login (NT_STATUS_LOGON_FAILURE). Check the username, password and domain lines in ${wrong}; the earlier backups were kept.`,
    );
    expect((await failure(bad.check())).message).toBe('the SMB server refused the login (NT_STATUS_LOGON_FAILURE)');
    expect(e.paragraph()).not.toContain('not-the-password');
    await expectIntact(target, 'prev', previous);
  });

  it('unreachable server: nothing answers on the port', async () => {
    const { config, target, previous } = await withPrevious();
    const port = await freePort();
    const gone = new SmbTarget({ ...config, port });
    const e = await failure(gone.write('next', streamOf(randomBytes(4 * MiB))));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `127.0.0.1 port ${port}: cannot reach the SMB server (NT_STATUS_CONNECTION_REFUSED). Check that the server is running and reachable from this host, and that target.share and target.port are right; the earlier backups were kept.`,
    );
    expect((await failure(gone.list())).message).toBe('cannot reach the SMB server (NT_STATUS_CONNECTION_REFUSED)');
    await expectIntact(target, 'prev', previous);
  });

  it('missing share: the server has no share by that name', async () => {
    const { config, target, previous } = await withPrevious();
    const share = '//127.0.0.1/nosuchshare';
    const none = new SmbTarget({ ...config, share });
    const e = await failure(none.write('next', streamOf(randomBytes(4 * MiB))));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `${share}: the share does not exist on the server (NT_STATUS_BAD_NETWORK_NAME). Create the share on the server or correct target.share (smbclient -L //127.0.0.1 -A ${config.credentials_file} lists the shares); the earlier backups were kept.`,
    );
    await expectIntact(target, 'prev', previous);
  });

  it('missing directory: the folder is not on the share', async () => {
    const { config, target, previous } = await withPrevious();
    const directory = `${config.directory}/not-made-yet`;
    const none = new SmbTarget({ ...config, directory });
    const e = await failure(none.check());
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `${config.share}/${directory}: the directory does not exist on the share (NT_STATUS_OBJECT_NAME_NOT_FOUND). Create it on the share, or correct target.directory.`,
    );
    const w = await failure(none.write('next', streamOf(randomBytes(4 * MiB))));
    expect(w.message).toBe('the directory does not exist on the share (NT_STATUS_OBJECT_NAME_NOT_FOUND)');
    await expectIntact(target, 'prev', previous);
  });

  it('full share: the write fails, the partial is discarded at once, and the space is free again', async () => {
    const { config, target, local, previous } = await withPrevious('small');
    const e = await failure(target.write('next', streamOf(randomBytes(40 * MiB))));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `${config.share}/${config.directory}/.incoming/next.xfsdump: the share is full; the partial backup was discarded (NT_STATUS_DISK_FULL). Free space on the share or lower target.retention.keep; the earlier backups were kept.`,
    );
    expect(incoming(local)).toEqual([]);
    await expectIntact(target, 'prev', previous);
    // The space the partial held is back: a backup that fits goes through.
    await target.write('fits', streamOf(randomBytes(8 * MiB)));
  });

  it('connection dropped mid-stream: smbd dies during the upload; the next run removes the partial', async () => {
    const { config, target, local, previous } = await withPrevious();
    let sent = 0;
    let crashed: Promise<void> | undefined;
    // An endless dump: once 6 MiB have gone, the server is killed, and the stream goes on.
    const source = new Readable({
      read() {
        if (sent >= 6 * MiB && !crashed) crashed = server.crash();
        if (crashed && sent >= 6 * MiB + 256 * 1024) {
          void crashed.then(() => {
            sent += MiB;
            this.push(randomBytes(MiB));
          });
          return;
        }
        sent += 256 * 1024;
        this.push(randomBytes(256 * 1024));
      },
    });
    const e = await failure(target.write('next', source));
    await crashed;
    expect(e.kind).toBe('target');
    expect(e.message).toMatch(
      /^the connection to the SMB server was lost during the transfer; the partial backup was discarded \((NT_STATUS_[A-Z_]+|smbclient was killed by SIGPIPE)\)$/,
    );
    expect(e.where).toBe(`${config.share}/${config.directory}/.incoming/next.xfsdump`);
    expect(e.hint).toBe('Check the server and the network, then run again; the earlier backups were kept');
    await server.restart();
    await expectIntact(target, 'prev', previous);
    // The server died before the partial could be deleted: the next run's cleanPending takes it.
    expect(incoming(local)).toEqual(['next.xfsdump']);
    expect(await target.cleanPending()).toEqual(['next']);
    expect(incoming(local)).toEqual([]);
  });

  it('connection dropped while a backup is read back: the stream fails instead of ending short', async () => {
    const { target, previous } = await withPrevious('backups', 16 * MiB);
    const stream = await target.open('prev');
    const first = await new Promise<Buffer>((resolve) => stream.once('data', resolve));
    stream.pause();
    await server.crash();
    stream.resume();
    const e = await failure(readAll(stream));
    expect(first.length).toBeLessThan(previous.length);
    expect(e.message).toMatch(/^the connection to the SMB server was lost during the read/);
    await server.restart();
    await expectIntact(target, 'prev', previous);
  });
});
