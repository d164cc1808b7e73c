// Signed backups (issue 10, item 3). Every backup's metadata is signed with
// the server's Ed25519 key; a restore accepts it only when a trusted key
// signed it and the signature holds, before a byte of the dump is read, and
// then the read-back must match the sha256 the signed metadata names. Each
// forgery here is refused before /home is formatted: the machine is the
// backed-up sandbox itself, and its /home (tree and UUID) must stay as it was.
import { generateKeyPairSync } from 'node:crypto';
import { copyFile, lstat, mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { signMetadata } from '../../src/signing/signature.js';
import type { BackupMetadata } from '../../src/targets/target.js';
import {
  ensureSigningKey,
  listBackups,
  looksLikeStackTrace,
  publicKeyOf,
  runCli,
  SANDBOX_HOST,
  sandboxConfigText,
  writeSandboxConfig,
  type CliResult,
  type ListedBackup,
} from '../support/cli.js';
import { probeFs, type FsIdentity } from '../support/partitioned-disk.js';
import { RESTORE_SECTION, restoreStatus } from '../support/restore-machines.js';
import { populateBootTree, populateSystemTree } from '../support/rich-tree.js';
import { createSandbox, createTargetVolume, destroyAll, type Sandbox, type XfsVolume } from '../support/sandbox.js';
import { diffTrees, snapshotTree, type Snapshot } from '../support/tree-compare.js';

const TIMEOUT = 180_000;
const EXIT = { ok: 0, failed: 1, usage: 2, config: 3 };

type Listed = ListedBackup & { signature: string; signedBy?: string };

interface Fixture {
  sandbox: Sandbox;
  target: XfsVolume;
  config: string;
  /** The public key of the sandbox's signing key, derived here from the key file, not by the program. */
  publicKey: string;
  /** Signed by the trusted key. */
  first: Listed;
  /** Made later, with another signing key (on the sandbox's root, so the system copy must leave it out). */
  second: Listed;
  secondConfig: string;
  rootKey: string;
  home: Snapshot;
  homeId: FsIdentity;
}

let pending: Promise<Fixture> | undefined;
function fixture(): Promise<Fixture> {
  pending ??= buildFixture();
  return pending;
}

async function listed(config: string): Promise<Listed[]> {
  return (await listBackups(config)) as Listed[];
}

async function buildFixture(): Promise<Fixture> {
  const sandbox = await createSandbox();
  const target = await createTargetVolume(sandbox.dir);
  await populateSystemTree(sandbox.root.mountPoint);
  await populateBootTree(sandbox.boot.mountPoint);
  await mkdir(join(sandbox.home.mountPoint, 'alice'));
  await execa('dd', ['if=/dev/urandom', `of=${join(sandbox.home.mountPoint, 'alice', 'photo.raw')}`, 'bs=1M', 'count=2', 'status=none']);
  await mkdir(join(sandbox.dir, 'modules'));
  const config = await writeSandboxConfig(sandbox, { target: target.mountPoint, requireMount: true, extra: RESTORE_SECTION });
  const tick = await runCli(config, ['tick']);
  if (tick.exitCode !== 0) throw new Error(`the first backup failed: ${JSON.stringify(tick)}`);
  await writeFile(join(sandbox.home.mountPoint, 'alice', 'later.txt'), 'written after the first backup\n');
  const rootKey = join(sandbox.root.mountPoint, 'etc/syn3-backup/signing.key');
  const secondConfig = await writeSandboxConfig(sandbox, {
    file: join(sandbox.dir, 'second.yaml'),
    target: target.mountPoint,
    requireMount: true,
    signingKey: rootKey,
    extra: RESTORE_SECTION,
  });
  const backup = await runCli(secondConfig, ['backup']);
  if (backup.exitCode !== 0) throw new Error(`the second backup failed: ${JSON.stringify(backup)}`);
  const all = await listed(config);
  if (all.length !== 2) throw new Error(`expected two backups: ${JSON.stringify(all)}`);
  return {
    sandbox,
    target,
    config,
    publicKey: publicKeyOf(join(sandbox.dir, 'signing.key')),
    first: all[0]!,
    second: all[1]!,
    secondConfig,
    rootKey,
    home: await snapshotTree(sandbox.home.mountPoint),
    homeId: await probeFs(sandbox.home.device),
  };
}

afterAll(destroyAll);

const metaFile = (f: Fixture, b: Listed) => join(f.target.mountPoint, b.id, 'meta.json');

async function readMeta(f: Fixture, b: Listed): Promise<BackupMetadata> {
  return JSON.parse(await readFile(metaFile(f, b), 'utf8')) as BackupMetadata;
}

/** /home as it is now: its tree compared with the one at backup time, and its file system's identity. */
async function homeNow(f: Fixture): Promise<{ tree: string[]; id: FsIdentity }> {
  return { tree: diffTrees(f.home, await snapshotTree(f.sandbox.home.mountPoint)), id: await probeFs(f.sandbox.home.device) };
}

/**
 * Restores the first backup with its files on the target changed by `damage`,
 * then puts them back and gives up the failed restore, so the next case starts clean.
 */
async function restoreDamaged(f: Fixture, damage: () => Promise<void>, extraArgs: string[] = []): Promise<CliResult & { home: unknown }> {
  const dir = join(f.target.mountPoint, f.first.id);
  const saved = join(f.sandbox.dir, 'saved-backup');
  await rm(saved, { recursive: true, force: true });
  await mkdir(saved);
  for (const name of ['meta.json', 'home.xfsdump']) await copyFile(join(dir, name), join(saved, name));
  try {
    await damage();
    const r = await runCli(f.config, ['restore', '--from', f.first.id, '--confirm', SANDBOX_HOST, ...extraArgs]);
    return { ...r, home: await homeNow(f) };
  } finally {
    for (const name of ['meta.json', 'home.xfsdump']) await copyFile(join(saved, name), join(dir, name));
    const status = await restoreStatus(f.config);
    if (status && status.state !== 'idle') await runCli(f.config, ['abort']);
  }
}

function expectRefusedBeforeFormat(f: Fixture, r: CliResult & { home: unknown }, reason: RegExp): void {
  expect(r.exitCode).toBe(EXIT.failed);
  expect(r.stderr).toMatch(/failed at preflight/);
  expect(r.stderr).toMatch(reason);
  expect(r.stderr).toMatch(/nothing was destroyed/i);
  expect(looksLikeStackTrace(r.stderr)).toBe(false);
  expect(r.home).toEqual({ tree: [], id: f.homeId });
}

describe('every backup is signed, and list says by whom', () => {
  it(
    "list shows the first backup signed by the server's own key, and the second by a key this configuration does not know",
    async () => {
      const f = await fixture();
      expect(f.first.signature).toBe('trusted');
      expect(f.first.signedBy).toBe(f.publicKey);
      expect(f.second.signature).toBe('untrusted');
      expect(f.second.signedBy).toBe(publicKeyOf(f.rootKey));
      const text = await runCli(f.config, ['list']);
      expect(text.stdout).toMatch(new RegExp(`${f.first.id}.*signed, trusted key`));
      expect(text.stdout).toMatch(new RegExp(`${f.second.id}.*signed by an UNKNOWN key`));
    },
    TIMEOUT,
  );

  it(
    'a configuration holding only the public key (no signing key), as on a fresh installation, trusts those backups',
    async () => {
      const f = await fixture();
      const config = await writeSandboxConfig(f.sandbox, {
        file: join(f.sandbox.dir, 'public-only.yaml'),
        target: f.target.mountPoint,
        signingKey: false,
        publicKeys: [f.publicKey],
      });
      expect((await listed(config)).map((b) => b.signature)).toEqual(['trusted', 'untrusted']);
    },
    TIMEOUT,
  );

  it(
    'the signing key on the root file system is not in the system copy, so no dump on the target holds it',
    async () => {
      const f = await fixture();
      expect((await stat(f.rootKey)).isFile()).toBe(true);
      const copy = join(f.sandbox.home.mountPoint, '.syn3systembackup', 'etc/syn3-backup');
      expect((await stat(copy)).isDirectory()).toBe(true);
      await expect(lstat(join(copy, 'signing.key'))).rejects.toThrow(/ENOENT/);
    },
    TIMEOUT,
  );
});

describe('restore refuses a forged or damaged backup before anything is formatted', () => {
  it(
    'a tampered meta.json (its creation time changed, still well-formed) is refused: the signature does not match',
    async () => {
      const f = await fixture();
      const r = await restoreDamaged(f, async () => {
        const meta = await readMeta(f, f.first);
        await writeFile(metaFile(f, f.first), JSON.stringify({ ...meta, created: '2001-01-01T00:00:00.000Z' }, null, 2));
      });
      expectRefusedBeforeFormat(f, r, /signature does not match its metadata/);
    },
    TIMEOUT,
  );

  it(
    'a tampered meta.json whose size and sha256 name a swapped dump is refused by the signature',
    async () => {
      const f = await fixture();
      const r = await restoreDamaged(f, async () => {
        const meta = await readMeta(f, f.first);
        const other = await readMeta(f, f.second);
        await copyFile(join(f.target.mountPoint, f.second.id, 'home.xfsdump'), join(f.target.mountPoint, f.first.id, 'home.xfsdump'));
        await writeFile(metaFile(f, f.first), JSON.stringify({ ...meta, size: other.size, sha256: other.sha256 }));
      });
      expectRefusedBeforeFormat(f, r, /signature does not match/);
    },
    TIMEOUT,
  );

  it(
    "a swapped dump (another real backup's) under intact signed metadata is refused by the read-back: its sha256 differs",
    async () => {
      const f = await fixture();
      const r = await restoreDamaged(f, async () => {
        await copyFile(join(f.target.mountPoint, f.second.id, 'home.xfsdump'), join(f.target.mountPoint, f.first.id, 'home.xfsdump'));
      });
      expectRefusedBeforeFormat(f, r, /differs from what was written/);
    },
    TIMEOUT,
  );

  it(
    'an unsigned backup (its signature removed) is refused, naming --allow-unsigned',
    async () => {
      const f = await fixture();
      const r = await restoreDamaged(f, async () => {
        const { signature: _gone, ...meta } = await readMeta(f, f.first);
        await writeFile(metaFile(f, f.first), JSON.stringify(meta));
      });
      expectRefusedBeforeFormat(f, r, /is not signed/);
      expect(r.stderr).toContain(`--from ${f.first.id} --allow-unsigned`);
    },
    TIMEOUT,
  );

  it(
    'a backup re-signed by another key (metadata changed, signature valid for that key) is refused: the key is not trusted',
    async () => {
      const f = await fixture();
      const { privateKey } = generateKeyPairSync('ed25519');
      const r = await restoreDamaged(f, async () => {
        const meta = await readMeta(f, f.first);
        await writeFile(metaFile(f, f.first), JSON.stringify(signMetadata({ ...meta, created: '2001-01-01T00:00:00.000Z' }, privateKey)));
      });
      expectRefusedBeforeFormat(f, r, /signed by ed25519:\S+, a key this configuration does not trust/);
    },
    TIMEOUT,
  );

  it(
    '--allow-unsigned never lets a wrong signature through',
    async () => {
      const f = await fixture();
      const r = await restoreDamaged(f, async () => {
        const meta = await readMeta(f, f.first);
        await writeFile(metaFile(f, f.first), JSON.stringify({ ...meta, host: SANDBOX_HOST, created: '2001-01-01T00:00:00.000Z' }));
      }, ['--allow-unsigned']);
      expectRefusedBeforeFormat(f, r, /signature does not match/);
    },
    TIMEOUT,
  );

  it(
    '--allow-unsigned lets an unsigned backup past the signature check, and the read-back still guards its dump',
    async () => {
      const f = await fixture();
      const r = await restoreDamaged(f, async () => {
        const { signature: _gone, ...meta } = await readMeta(f, f.first);
        await writeFile(metaFile(f, f.first), JSON.stringify(meta));
        await copyFile(join(f.target.mountPoint, f.second.id, 'home.xfsdump'), join(f.target.mountPoint, f.first.id, 'home.xfsdump'));
      }, ['--allow-unsigned']);
      expectRefusedBeforeFormat(f, r, /differs from what was written/);
    },
    TIMEOUT,
  );

  it(
    'metadata whose UUID would add mkfs options (<uuid>,crc=0) is not a backup at all: not listed, not restorable',
    async () => {
      const f = await fixture();
      const saved = await readFile(metaFile(f, f.first), 'utf8');
      const meta = JSON.parse(saved) as BackupMetadata;
      const home = { ...meta.layout.home, uuid: `${meta.layout.home.uuid},crc=0` };
      await writeFile(metaFile(f, f.first), JSON.stringify({ ...meta, layout: { ...meta.layout, home } }));
      try {
        expect((await listed(f.config)).map((b) => b.id)).toEqual([f.second.id]);
        const r = await runCli(f.config, ['restore', '--from', f.first.id, '--confirm', SANDBOX_HOST]);
        expect(r.exitCode).toBe(EXIT.usage);
        expect(r.stderr).toMatch(/is not on/);
        expect(await homeNow(f)).toEqual({ tree: [], id: f.homeId });
      } finally {
        await writeFile(metaFile(f, f.first), saved);
      }
    },
    TIMEOUT,
  );
});

describe('the signing key', () => {
  it(
    'a backup without a signing key fails its preflight with the command that makes one, and writes nothing',
    async () => {
      const f = await fixture();
      const config = await writeSandboxConfig(f.sandbox, {
        file: join(f.sandbox.dir, 'no-key.yaml'),
        target: f.target.mountPoint,
        signingKey: false,
        state: join(f.sandbox.dir, 'no-key-state'),
      });
      const r = await runCli(config, ['backup']);
      expect(r.exitCode).toBe(EXIT.config);
      expect(r.stderr).toContain('syn3-backup key init');
      expect(r.stderr).toContain('/nonexistent/syn3-backup-signing.key');
      expect((await listBackups(f.config)).map((b) => b.id)).toEqual([f.first.id, f.second.id]);
    },
    TIMEOUT,
  );

  it(
    'a signing key that group or others can read is refused, with the chmod that fixes it',
    async () => {
      const f = await fixture();
      const key = join(f.sandbox.dir, 'readable.key');
      ensureSigningKey(key);
      await execa('chmod', ['0644', key]);
      const config = await writeSandboxConfig(f.sandbox, {
        file: join(f.sandbox.dir, 'readable.yaml'),
        target: f.target.mountPoint,
        signingKey: key,
        state: join(f.sandbox.dir, 'readable-state'),
      });
      const r = await runCli(config, ['backup']);
      expect(r.exitCode).toBe(EXIT.config);
      expect(r.stderr).toContain(`chmod 600 ${key}`);
    },
    TIMEOUT,
  );

  it(
    'key init makes a 0600 key and prints its public key; key show prints the same; a second key init refuses to overwrite',
    async () => {
      const f = await fixture();
      const key = join(f.sandbox.dir, 'keys', 'made-by-init.key');
      const config = join(f.sandbox.dir, 'key-init.yaml');
      await writeFile(config, sandboxConfigText(f.sandbox, { target: f.target.mountPoint, signingKey: key }));
      const init = await runCli(config, ['key', 'init']);
      expect(init.exitCode).toBe(EXIT.ok);
      const publicKey = publicKeyOf(key);
      expect(init.stdout.split('\n')).toContain(publicKey);
      expect(init.stdout).toMatch(/trust\.public_keys/);
      expect(init.stdout).toMatch(/disaster-recovery papers/);
      expect((await stat(key)).mode & 0o777).toBe(0o600);
      const show = await runCli(config, ['key', 'show']);
      expect(show).toMatchObject({ exitCode: EXIT.ok, stdout: `${publicKey}\n` });
      const pem = await readFile(key, 'utf8');
      const again = await runCli(config, ['key', 'init']);
      expect(again.exitCode).toBe(EXIT.usage);
      expect(again.stderr).toMatch(/already there; it is not replaced/);
      expect(await readFile(key, 'utf8')).toBe(pem);
    },
    TIMEOUT,
  );

  it(
    'key init does not write through a symbolic link',
    async () => {
      const f = await fixture();
      const aim = join(f.sandbox.dir, 'aimed-at');
      const key = join(f.sandbox.dir, 'link.key');
      await symlink(aim, key);
      const config = join(f.sandbox.dir, 'key-link.yaml');
      await writeFile(config, sandboxConfigText(f.sandbox, { target: f.target.mountPoint, signingKey: key }));
      const r = await runCli(config, ['key', 'init']);
      expect(r.exitCode).not.toBe(EXIT.ok);
      await expect(lstat(aim)).rejects.toThrow(/ENOENT/);
    },
    TIMEOUT,
  );
});
