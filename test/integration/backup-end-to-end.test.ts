// The whole backup on real XFS: `syn3-backup tick` on a sandbox whose root,
// boot and home are loop-device XFS file systems full of awkward metadata;
// the dump is restored with plain xfsrestore and compared with the original.
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import {
  incomingLeftovers,
  listBackups,
  logEntries,
  runCli,
  sha256File,
  statusJson,
  writeSandboxConfig,
  type CliResult,
  type ListedBackup,
} from '../support/cli.js';
import { populateBootTree, populateRichTree, populateSystemTree, SYSTEM_VOLATILE_DIRS } from '../support/rich-tree.js';
import { createSandbox, createXfsVolume, destroyAll, type Sandbox } from '../support/sandbox.js';
import { diffTrees, snapshotTree, XFSRESTORE_LOSSES, type Snapshot } from '../support/tree-compare.js';

const TIMEOUT = 180_000;
const SYSTEM_COPY = '.syn3systembackup';
/** What the backup itself adds to home: the system copy and the spool. */
const ADDED_TO_HOME = [SYSTEM_COPY, 'system'];
const MODULE = `#!/bin/sh
set -e
printf 'spooled by %s\\n' "$SYN3_BACKUP_ID" > "$SYN3_SPOOL/x-module.txt"
`;

interface Fixture {
  sandbox: Sandbox;
  config: string;
  state: string;
  target: string;
  homeBefore: Snapshot;
  firstTick: CliResult;
  first: ListedBackup;
  /** The first backup's dump, restored with plain xfsrestore into a fresh XFS file system. */
  restored: string;
}

let pending: Promise<Fixture> | undefined;

// Built on first use, not in beforeAll, so a missing tool fails every test instead of skipping them.
function fixture(): Promise<Fixture> {
  pending ??= buildFixture();
  return pending;
}

async function buildFixture(): Promise<Fixture> {
  const sandbox = await createSandbox();
  await populateSystemTree(sandbox.root.mountPoint);
  await populateBootTree(sandbox.boot.mountPoint);
  await populateRichTree(sandbox.home.mountPoint);
  const target = join(sandbox.dir, 'target');
  const modules = join(sandbox.dir, 'modules');
  const state = join(sandbox.dir, 'state');
  await mkdir(target);
  await mkdir(modules);
  await writeFile(join(modules, '10-x.backup'), MODULE);
  await chmod(join(modules, '10-x.backup'), 0o755);
  const config = await writeSandboxConfig(sandbox, { target, modules, state, keep: 2 });
  const homeBefore = await snapshotTree(sandbox.home.mountPoint);
  const firstTick = await runCli(config, ['tick']);
  const listed = await listBackups(config);
  if (listed.length !== 1)
    throw new Error(
      `the first tick should have made one backup; list shows ${JSON.stringify(listed)}; tick said ${JSON.stringify(firstTick)}`,
    );
  const first = listed[0]!;
  // Restored now, before later tests make more backups and retention deletes this one.
  const volume = await createXfsVolume(sandbox.dir, 'restore', 300, { label: 'sbrestore' });
  // -B: the top directory takes the dumped owner and mode, not mkfs's.
  await execa('xfsrestore', ['-B', '-J', '-f', first.location, volume.mountPoint]);
  return { sandbox, config, state, target, homeBefore, firstTick, first, restored: volume.mountPoint };
}

afterAll(destroyAll);

describe('syn3-backup tick on a sandbox with XFS root, boot and home', () => {
  it(
    'makes the first backup silently, as cron wants it: exit 0, nothing on stdout or stderr',
    async () => {
      const { firstTick } = await fixture();
      expect(firstTick).toEqual({ exitCode: 0, stdout: '', stderr: '' });
    },
    TIMEOUT,
  );

  it(
    'writes a dump that plain xfsrestore restores into a fresh XFS identical to home: content, modes, owners, ACLs, xattrs, hard links, sparseness, mtimes',
    async () => {
      const { sandbox, restored } = await fixture();
      const restoredHome = await snapshotTree(restored);
      const home = await snapshotTree(sandbox.home.mountPoint);
      expect(diffTrees(home, restoredHome, XFSRESTORE_LOSSES)).toEqual([]);
      // The comparison is only as good as what it saw: the rich tree, with the system copy inside.
      expect(restoredHome.get('acl/inherit')?.defaultAcl.length).toBeGreaterThan(0);
      expect(restoredHome.get('sparse/holes.img')?.sparse).toBe(true);
      expect(restoredHome.get('hardlinks/second')?.linkGroup).toBe('elsewhere/third');
      expect(restoredHome.get(`${SYSTEM_COPY}/usr/bin/syn3-ping`)?.xattrs['security.capability']).toBeDefined();
    },
    TIMEOUT,
  );

  it(
    'leaves the data in home as it was, adding only the system copy and the spool',
    async () => {
      const { sandbox, homeBefore } = await fixture();
      const homeAfter = await snapshotTree(sandbox.home.mountPoint, { exclude: ADDED_TO_HOME });
      expect(diffTrees(homeBefore, homeAfter, { ignoreRootMtime: true })).toEqual([]);
      expect((await readdir(sandbox.home.mountPoint)).filter((n) => ADDED_TO_HOME.includes(n)).sort()).toEqual([...ADDED_TO_HOME].sort());
    },
    TIMEOUT,
  );

  it(
    'copies root into home/.syn3systembackup exactly, keeping proc, sys, dev, run and tmp as empty directories, its top closed (0700)',
    async () => {
      const { sandbox } = await fixture();
      const root = sandbox.root.mountPoint;
      const copy = join(sandbox.home.mountPoint, SYSTEM_COPY);
      const runtimeContent = (
        await Promise.all(SYSTEM_VOLATILE_DIRS.map(async (d) => (await readdir(join(root, d))).map((n) => `${d}/${n}`)))
      ).flat();
      expect(runtimeContent.length).toBeGreaterThan(0); // the sandbox's root has junk there to leave behind
      const rootTree = await snapshotTree(root, { exclude: ['boot', ...runtimeContent] });
      const copyTree = await snapshotTree(copy, { exclude: ['boot'] });
      // The copy's top alone differs from /: it is root's only, and the restore puts /'s mode back.
      expect(diffTrees(rootTree, copyTree)).toEqual([
        `".": mode 0${((await stat(root)).mode & 0o7777).toString(8).padStart(4, '0')} != 00700`,
      ]);
      expect((await stat(copy)).mode & 0o7777).toBe(0o700);
      for (const dir of SYSTEM_VOLATILE_DIRS) {
        expect((await stat(join(copy, dir))).isDirectory()).toBe(true);
        expect(await readdir(join(copy, dir)), `${SYSTEM_COPY}/${dir}`).toEqual([]);
      }
    },
    TIMEOUT,
  );

  it(
    'copies boot into home/.syn3systembackup/boot exactly',
    async () => {
      const { sandbox } = await fixture();
      const bootTree = await snapshotTree(sandbox.boot.mountPoint);
      const copyTree = await snapshotTree(join(sandbox.home.mountPoint, SYSTEM_COPY, 'boot'));
      expect(diffTrees(bootTree, copyTree)).toEqual([]);
      expect(copyTree.get('vmlinuz')?.type).toBe('symlink');
    },
    TIMEOUT,
  );

  it(
    'puts what a spool module wrote into $SYN3_SPOOL in the dump, under system/spool',
    async () => {
      const { first, restored } = await fixture();
      const spooled = join(restored, 'system', 'spool', 'x-module.txt');
      expect(await readFile(spooled, 'utf8')).toBe(`spooled by ${first.id}\n`);
    },
    TIMEOUT,
  );

  it(
    'lists the backup with list --json: id, ISO creation time, size in bytes and the absolute path of a dump file of that size',
    async () => {
      const { config, target } = await fixture();
      const listed = await listBackups(config);
      expect(listed.length).toBeGreaterThan(0);
      for (const b of listed) {
        expect(b).toMatchObject({
          id: expect.any(String),
          created: expect.any(String),
          size: expect.any(Number),
          location: expect.any(String),
        });
        expect(new Date(b.created).toISOString()).toBe(b.created);
        expect(isAbsolute(b.location)).toBe(true);
        expect(b.location.startsWith(`${target}/`)).toBe(true);
        expect((await stat(b.location)).size).toBe(b.size);
        expect(await sha256File(b.location)).toBe(b.sha256);
      }
    },
    TIMEOUT,
  );

  it(
    'shows the last success in status --json',
    async () => {
      const { config } = await fixture();
      const newest = (await listBackups(config)).at(-1)!;
      const { exitCode, report } = await statusJson(config);
      expect(exitCode).toBe(0);
      expect(report.state).toBe('idle');
      expect(report.lastSuccess).toMatchObject({ id: newest.id, result: 'success', size: newest.size });
      expect(report.lastFailure).toBeNull();
    },
    TIMEOUT,
  );

  it(
    'does nothing on a second tick right after, when no backup is due: exit 0 and nothing on stdout or stderr',
    async () => {
      const { config, state } = await fixture();
      const before = await listBackups(config);
      const stateBefore = await readFile(join(state, 'backup-state.json'), 'utf8');
      expect(await runCli(config, ['tick'])).toEqual({ exitCode: 0, stdout: '', stderr: '' });
      expect(await listBackups(config)).toEqual(before);
      expect(await readFile(join(state, 'backup-state.json'), 'utf8')).toBe(stateBefore);
    },
    TIMEOUT,
  );

  it(
    'makes a new backup on `backup` although none is due',
    async () => {
      const { config } = await fixture();
      const before = (await listBackups(config)).map((b) => b.id);
      const r = await runCli(config, ['backup']);
      expect(r).toMatchObject({ exitCode: 0, stderr: '' });
      const after = await listBackups(config);
      const added = after.filter((b) => !before.includes(b.id));
      expect(added).toHaveLength(1);
      expect(after.at(-1)?.id).toBe(added[0]!.id);
    },
    TIMEOUT,
  );

  it(
    'keeps the newest 2 of 3 backups with retention.keep 2, deleting the oldest only after the newest is published',
    async () => {
      const { config, state, target } = await fixture();
      while ((await listBackups(config)).length < 2) expect((await runCli(config, ['backup'])).exitCode).toBe(0);
      const before = await listBackups(config);
      expect(before).toHaveLength(2);
      expect((await runCli(config, ['backup'])).exitCode).toBe(0);
      const after = await listBackups(config);
      const newest = after.at(-1)!;
      expect(after.map((b) => b.id)).toEqual([before[1]!.id, newest.id]);
      expect(before.map((b) => b.id)).not.toContain(newest.id);
      const oldest = before[0]!;
      await expect(stat(join(target, oldest.id))).rejects.toThrow(/ENOENT/);
      expect(await incomingLeftovers(target)).toEqual([]);
      const log = await logEntries(state);
      const published = log.findIndex((e) => /published/i.test(e.msg) && e.msg.includes(newest.id));
      const removed = log.findIndex((e) => /removed/i.test(e.msg) && e.msg.includes(oldest.id));
      expect(published).toBeGreaterThanOrEqual(0);
      expect(removed).toBeGreaterThan(published);
    },
    TIMEOUT,
  );
});
