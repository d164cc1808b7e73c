// Proves the test helpers themselves: sandboxes leave nothing behind, the rich
// tree survives faithful copies, and the comparator notices every kind of loss.
import { existsSync } from 'node:fs';
import { chown, mkdir, open, readFile, rename, copyFile, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { createSandbox, createTargetVolume, destroyAll, type Sandbox, type XfsVolume } from '../support/sandbox.js';
import {
  KERNEL_VERSION,
  ORPHAN_UID,
  populateBootTree,
  populateRichTree,
  populateSystemTree,
  SYSTEM_JUNK,
  SYSTEM_VOLATILE_DIRS,
} from '../support/rich-tree.js';
import { diffTrees, snapshotTree, XFSRESTORE_LOSSES, type Snapshot } from '../support/tree-compare.js';

const TIMEOUT = 60_000;

async function loopBackingFiles(): Promise<string[]> {
  const { stdout } = await execa('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE']);
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

async function mountedUnder(dir: string): Promise<string[]> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  return mounts
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(`${dir}/`));
}

async function labelOf(device: string): Promise<string> {
  const { stdout } = await execa('blkid', ['-p', '-o', 'value', '-s', 'LABEL', device]);
  return stdout.trim();
}

/** Paths of "<path>: mtime ..." lines; any other kind of difference is kept whole so it shows up. */
function pathsWithOtherMtime(diffs: string[]): string[] {
  return diffs.map((d) => {
    const match = /^(".*"): mtime /.exec(d);
    return match?.[1] ? (JSON.parse(match[1]) as string) : d;
  });
}

afterAll(destroyAll);

describe('sandbox', () => {
  it(
    'mounts labelled XFS volumes for root, boot and home and cleanup detaches their loop devices',
    async () => {
      const sandbox = await createSandbox();
      try {
        const volumes = [sandbox.root, sandbox.boot, sandbox.home];
        expect(await mountedUnder(sandbox.dir)).toHaveLength(3);
        expect(await Promise.all(volumes.map((v) => labelOf(v.device)))).toEqual(['sbroot', 'sbboot', 'sbhome']);
        expect((await loopBackingFiles()).filter((f) => f.startsWith(`${sandbox.dir}/`))).toHaveLength(3);
      } finally {
        await sandbox.cleanup();
      }
      await sandbox.cleanup(); // idempotent
      expect((await loopBackingFiles()).filter((f) => f.startsWith(`${sandbox.dir}/`))).toEqual([]);
      expect(await mountedUnder(sandbox.dir)).toEqual([]);
      expect(existsSync(sandbox.dir)).toBe(false);
    },
    TIMEOUT,
  );
});

describe('rich tree', () => {
  interface Fixture {
    sandbox: Sandbox;
    target: XfsVolume;
    source: Snapshot;
  }
  let pending: Promise<Fixture> | undefined;
  let copies = 0;

  // Built on first use, not in beforeAll, so a missing tool fails every test instead of skipping them.
  function fixture(): Promise<Fixture> {
    pending ??= buildFixture();
    return pending;
  }

  async function buildFixture(): Promise<Fixture> {
    const sandbox = await createSandbox();
    const target = await createTargetVolume(sandbox.dir);
    await populateRichTree(sandbox.home.mountPoint);
    return { sandbox, target, source: await snapshotTree(sandbox.home.mountPoint) };
  }

  afterAll(async () => {
    const built = await pending?.catch(() => undefined);
    await built?.target.destroy();
    await built?.sandbox.cleanup();
  });

  async function rsyncCopy(): Promise<string> {
    const { sandbox, target } = await fixture();
    const dest = join(target.mountPoint, `copy-${++copies}`);
    await execa('rsync', ['-aHAXS', '--numeric-ids', `${sandbox.home.mountPoint}/`, `${dest}/`]);
    return dest;
  }

  async function diffAfter(mutate: (copy: string) => Promise<unknown>): Promise<string[]> {
    const { source } = await fixture();
    const copy = await rsyncCopy();
    await mutate(copy);
    return diffTrees(source, await snapshotTree(copy));
  }

  it(
    'holds every kind of entry the backup must keep',
    async () => {
      const { source } = await fixture();
      const types = new Set([...source.values()].map((e) => e.type));
      expect([...types].sort()).toEqual(['block', 'char', 'dir', 'fifo', 'file', 'symlink']);
      expect(source.get('sparse/holes.img')?.sparse).toBe(true);
      expect(source.get('elsewhere/third')?.linkGroup).toBe('elsewhere/third');
      expect(source.get('hardlinks/first')?.linkGroup).toBe('elsewhere/third');
      expect(source.get('acl/inherit/child')?.acl).toContain(`user:${ORPHAN_UID}:rwx`);
      expect(source.get('acl/inherit')?.defaultAcl.length).toBeGreaterThan(0);
      expect(source.get('xattr/file')?.xattrs['user.empty']).toBe('0s');
      expect(source.get('xattr/link')?.xattrs['trusted.on-link']).toBeDefined();
      expect(source.get('names/new\nline')?.xattrs['user.odd']).toBeDefined();
      expect(source.get('names/back\\slash')?.acl).toContain(`user:${ORPHAN_UID}:r--`);
      expect(source.get('names/sub dir\nü/inner file')?.xattrs['trusted.odd']).toBeDefined();
      expect(source.get('xattr/capable')?.xattrs['security.capability']).toBeDefined();
      expect(source.size).toBeGreaterThan(300);
    },
    TIMEOUT,
  );

  it(
    'is identical after rsync -aHAXS --numeric-ids onto another XFS volume',
    async () => {
      const { source } = await fixture();
      const copy = await rsyncCopy();
      expect(diffTrees(source, await snapshotTree(copy))).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'is generated identically from the same seed',
    async () => {
      const { source, target } = await fixture();
      const again = join(target.mountPoint, 'same-seed');
      await mkdir(again);
      await populateRichTree(again);
      expect(diffTrees(source, await snapshotTree(again))).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'reports a changed xattr in the copy',
    async () => {
      const diffs = await diffAfter((c) => execa('setfattr', ['-n', 'user.comment', '-v', 'changed', join(c, 'xattr/file')]));
      expect(diffs).toEqual([expect.stringMatching(/^"xattr\/file": xattr user\.comment: /)]);
    },
    TIMEOUT,
  );

  it(
    'reports a changed ACL in the copy',
    async () => {
      const diffs = await diffAfter((c) => execa('setfacl', ['-m', `u:${ORPHAN_UID}:r--`, join(c, 'acl/access')]));
      expect(diffs).toContainEqual(expect.stringMatching(/^"acl\/access": acl \[/));
      // The group bits shown by ls are the ACL mask, so the mode changes along with it.
      expect(diffs.every((d) => d.startsWith('"acl/access": '))).toBe(true);
    },
    TIMEOUT,
  );

  it(
    'reports a broken hard link in the copy',
    async () => {
      const diffs = await diffAfter(async (c) => {
        const name = join(c, 'hardlinks/second');
        const { mtime } = await stat(name);
        await copyFile(name, `${name}.tmp`);
        await utimes(`${name}.tmp`, mtime, mtime);
        await rename(`${name}.tmp`, name);
      });
      expect(diffs).toContainEqual(expect.stringMatching(/^"hardlinks\/second": nlink 3 != 1/));
      expect(diffs).toContainEqual(expect.stringMatching(/^"hardlinks\/second": linkGroup /));
    },
    TIMEOUT,
  );

  it(
    'reports a changed mtime in the copy',
    async () => {
      const diffs = await diffAfter((c) => utimes(join(c, 'files/small-2.bin'), 1_000_000_000, 1_000_000_000));
      expect(diffs).toEqual([expect.stringMatching(/^"files\/small-2\.bin": mtime /)]);
    },
    TIMEOUT,
  );

  it(
    'reports changed content of the same size and mtime in the copy',
    async () => {
      const diffs = await diffAfter(async (c) => {
        const file = join(c, 'files/small-3.bin');
        const { mtime } = await stat(file);
        const handle = await open(file, 'r+');
        const [byte] = (await handle.read(Buffer.alloc(1), 0, 1, 0)).buffer;
        await handle.write(Buffer.from([(byte ?? 0) ^ 0xff]), 0, 1, 0);
        await handle.close();
        await utimes(file, mtime, mtime);
      });
      expect(diffs).toEqual([expect.stringMatching(/^"files\/small-3\.bin": sha256 /)]);
    },
    TIMEOUT,
  );

  it(
    'reports a changed owner in the copy',
    async () => {
      const diffs = await diffAfter((c) => chown(join(c, 'owners/orphan-file'), 0, 0));
      expect(diffs).toEqual([expect.stringMatching(/^"owners\/orphan-file": uid /), expect.stringMatching(/^"owners\/orphan-file": gid /)]);
    },
    TIMEOUT,
  );

  it(
    'is identical after a level 0 xfsdump and xfsrestore -B, except what xfsrestore never restores',
    async () => {
      const { source, sandbox, target } = await fixture();
      const dumpFile = join(sandbox.dir, 'home.xfsdump');
      const dest = join(target.mountPoint, 'restored');
      await mkdir(dest);
      await execa('xfsdump', ['-l0', '-J', '-L', 's', '-M', 'm', '-f', dumpFile, sandbox.home.mountPoint]);
      // -B: without it the top directory keeps the owner and mode mkdir gave it.
      await execa('xfsrestore', ['-B', '-J', '-f', dumpFile, dest]);
      const restored = await snapshotTree(dest);
      expect(diffTrees(source, restored, XFSRESTORE_LOSSES)).toEqual([]);
      const symlinks = [...source].filter(([, e]) => e.type === 'symlink').map(([path]) => path);
      expect(pathsWithOtherMtime(diffTrees(source, restored))).toEqual(['.', ...symlinks].sort());
    },
    TIMEOUT,
  );

  it(
    'builds a fake / whose junk an exclude list removes, and a fake /boot',
    async () => {
      const { target } = await fixture();
      const [system, boot] = [join(target.mountPoint, 'system'), join(target.mountPoint, 'boot')];
      await mkdir(system);
      await mkdir(boot);
      await populateSystemTree(system);
      await populateBootTree(boot);
      const snapshot = await snapshotTree(system, { exclude: [...SYSTEM_JUNK, 'run/lock'] });
      expect(SYSTEM_VOLATILE_DIRS.map((d) => snapshot.get(d)?.type)).toEqual(SYSTEM_VOLATILE_DIRS.map(() => 'dir'));
      expect([...snapshot.keys()].filter((k) => /^(tmp|run)\//.test(k))).toEqual(['tmp/cache']);
      expect(snapshot.get('usr/bin/syn3-tool-alias')?.linkGroup).toBe('usr/bin/syn3-tool');
      expect(snapshot.get('usr/bin/syn3-ping')?.xattrs['security.capability']).toBeDefined();
      expect((await snapshotTree(boot)).get('vmlinuz')?.target).toBe(`vmlinuz-${KERNEL_VERSION}`);
    },
    TIMEOUT,
  );
});
