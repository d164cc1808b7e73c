/**
 * The file target, the default one: the Target contract on a directory of the
 * local disk, and what is particular to it (its layout, require_mount, a full
 * disk).
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { FileTarget } from '../../src/targets/file.js';
import type { Target } from '../../src/targets/target.js';
import { backUp, expectIntact, failure, MiB, metadataFor, streamOf } from '../support/target-helpers.js';
import { describeTargetContract } from './contract.js';

const root = mkdtempSync(join(tmpdir(), 'syn3-file-target-'));
let n = 0;
const paths = new WeakMap<Target, string>();

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function fileTarget(path = join(root, `t${++n}`), requireMount = false): FileTarget {
  mkdirSync(path, { recursive: true });
  const target = new FileTarget({ type: 'file', path, require_mount: requireMount, retention: { keep: 7 } });
  paths.set(target, path);
  return target;
}

describeTargetContract('file', {
  fresh: async () => fileTarget(),
  tamper: async (target, id, change) => {
    const file = join(paths.get(target)!, id, 'meta.json');
    const changed = change(JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>);
    writeFileSync(file, typeof changed === 'string' ? changed : JSON.stringify(changed));
  },
});

describe('file target: its layout and faults', () => {
  it('writes under .incoming/<id>/ and publishes <id>/home.xfsdump with meta.json by a rename', async () => {
    const target = fileTarget();
    const dir = paths.get(target)!;
    const data = randomBytes(MiB);
    await target.write('b1', streamOf(data));
    expect(readdirSync(join(dir, '.incoming'))).toEqual(['b1']);
    const metadata = metadataFor('b1', data);
    const stored = await target.commit('b1', metadata);
    expect(stored.location).toBe(join(dir, 'b1', 'home.xfsdump'));
    expect(target.localPath('b1')).toBe(stored.location);
    expect(readdirSync(join(dir, 'b1')).sort()).toEqual(['home.xfsdump', 'meta.json']);
    expect(readdirSync(join(dir, '.incoming'))).toEqual([]);
    expect(JSON.parse(readFileSync(join(dir, 'b1', 'meta.json'), 'utf8'))).toEqual(metadata);
  });

  it('a directory without meta.json, or meta.json without its dump, is not a backup', async () => {
    const target = fileTarget();
    const dir = paths.get(target)!;
    const kept = await backUp(target, 'b1');
    mkdirSync(join(dir, 'b2'));
    writeFileSync(join(dir, 'b2', 'home.xfsdump'), 'a commit cut short');
    mkdirSync(join(dir, 'b3'));
    writeFileSync(join(dir, 'b3', 'meta.json'), JSON.stringify(metadataFor('b3', kept)));
    writeFileSync(join(dir, 'notes.txt'), 'not a backup');
    await expectIntact(target, 'b1', kept);
  });

  it('localWrite hands out a fresh file in .incoming, and fail() removes it', async () => {
    const target = fileTarget();
    const { file, fail } = await target.localWrite('b1');
    writeFileSync(file, 'partial');
    const e = (await fail(Object.assign(new Error('disk full'), { code: 'ENOSPC' }))) as Error;
    expect(e.message).toBe('the target is full; the partial backup was discarded');
    expect(existsSync(file)).toBe(false);
  });

  it('check refuses a missing directory, and one that is not a mount point when require_mount is true', async () => {
    const missing = new FileTarget({ type: 'file', path: join(root, 'not-there'), require_mount: false, retention: { keep: 7 } });
    expect((await failure(missing.check())).message).toBe('the target directory does not exist');
    const notMounted = fileTarget(undefined, true);
    expect((await failure(notMounted.check())).message).toBe('the target directory is not a mount point, and target.require_mount is true');
  });

  it('a full disk: the write fails as "full", the partial is removed, and the earlier backup is intact', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test mounts a small tmpfs as the backup disk: run it as root');
    const small = mkdtempSync(join(tmpdir(), 'syn3-file-full-'));
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', small]).status).toBe(0);
    try {
      const target = fileTarget(small, true);
      await target.check();
      const kept = await backUp(target, 'b1', randomBytes(MiB));
      const e = await failure(target.write('b2', streamOf(randomBytes(8 * MiB))));
      expect(e.kind).toBe('target');
      expect(e.message).toBe('the target is full; the partial backup was discarded');
      expect(readdirSync(join(small, '.incoming'))).toEqual([]);
      await expectIntact(target, 'b1', kept);
    } finally {
      spawnSync('umount', [small]);
      rmSync(small, { recursive: true, force: true });
    }
  });
});

const NOBODY = 65534;

/** A directory outside the target with a file in it: what a link planted in the target points at. */
function victim(): string {
  const dir = mkdtempSync(join(root, 'victim-'));
  writeFileSync(join(dir, 'precious.txt'), 'do not delete\n');
  return dir;
}

describe('file target: the trust rule where it deletes and renames (issue 10, finding 1)', () => {
  it('check says a target.path that is a regular file is not a directory (it said "does not exist")', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'not a disk');
    const target = new FileTarget({ type: 'file', path: file, require_mount: false, retention: { keep: 7 } });
    const e = await failure(target.check());
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `${file}: the target path is not a directory. Point target.path at the directory where the backup disk is mounted (or move this file aside).`,
    );
  });

  it('check refuses a target.path that is a link, or that nobody owns', async () => {
    const real = fileTarget();
    const link = join(root, `link${++n}`);
    symlinkSync(paths.get(real)!, link);
    const linked = new FileTarget({ type: 'file', path: link, require_mount: false, retention: { keep: 7 } });
    const e = await failure(linked.check());
    expect(e.kind).toBe('trust');
    expect(e.message).toMatch(/^the target directory \(target\.path\) is a symbolic link;/);
    const theirs = fileTarget();
    chownSync(paths.get(theirs)!, NOBODY, NOBODY);
    expect((await failure(theirs.check())).message).toMatch(/is owned by uid 65534/);
  });

  it('creates .incoming 0700 when it is missing', async () => {
    const target = fileTarget();
    await target.write('b1', streamOf(randomBytes(100)));
    expect(lstatSync(join(paths.get(target)!, '.incoming')).mode & 0o7777).toBe(0o700);
  });

  it('cleanPending refuses a .incoming that is a link, and the directory it names keeps its files', async () => {
    const target = fileTarget();
    const elsewhere = victim();
    symlinkSync(elsewhere, join(paths.get(target)!, '.incoming'));
    const e = await failure(target.cleanPending());
    expect(e.kind).toBe('trust');
    expect(e.paragraph()).toBe(
      `${join(paths.get(target)!, '.incoming')}: the target's .incoming directory is a symbolic link; this program runs as root and trusts only what root alone can change. ` +
        `Fix it with: rm ${join(paths.get(target)!, '.incoming')} (the link; the program then makes a real directory).`,
    );
    expect(readdirSync(elsewhere)).toEqual(['precious.txt']);
  });

  it('write and localWrite refuse a linked .incoming: nothing is written or removed through it', async () => {
    const target = fileTarget();
    const elsewhere = victim();
    mkdirSync(join(elsewhere, 'b1'));
    writeFileSync(join(elsewhere, 'b1', 'keep.txt'), 'mine');
    symlinkSync(elsewhere, join(paths.get(target)!, '.incoming'));
    expect((await failure(target.write('b1', streamOf(randomBytes(100))))).kind).toBe('trust');
    expect((await failure(target.localWrite('b1'))).kind).toBe('trust');
    expect(readdirSync(elsewhere).sort()).toEqual(['b1', 'precious.txt']);
    expect(readdirSync(join(elsewhere, 'b1'))).toEqual(['keep.txt']);
  });

  it('refuses a .incoming that nobody owns, or that others can write', async () => {
    const theirs = fileTarget();
    const incoming = join(paths.get(theirs)!, '.incoming');
    mkdirSync(incoming, { mode: 0o700 });
    chownSync(incoming, NOBODY, NOBODY);
    expect((await failure(theirs.cleanPending())).paragraph()).toMatch(/is owned by uid 65534, mode 0700;.*Fix it with: chown root:root /);
    expect((await failure(theirs.write('b1', streamOf(randomBytes(10))))).kind).toBe('trust');
    const open = fileTarget();
    const openIncoming = join(paths.get(open)!, '.incoming');
    mkdirSync(openIncoming);
    chmodSync(openIncoming, 0o777);
    expect((await failure(open.cleanPending())).message).toMatch(/mode 0777 \(group or others can write it\)/);
  });

  it('commit refuses a pending directory that was replaced by a link', async () => {
    const target = fileTarget();
    const dir = paths.get(target)!;
    const data = randomBytes(100);
    await target.write('b1', streamOf(data));
    const elsewhere = victim();
    rmSync(join(dir, '.incoming', 'b1'), { recursive: true });
    symlinkSync(elsewhere, join(dir, '.incoming', 'b1'));
    const e = await failure(target.commit('b1', metadataFor('b1', data)));
    expect(e.kind).toBe('trust');
    expect(e.message).toMatch(/^the pending backup directory \.incoming\/b1 is a symbolic link;/);
    expect(readdirSync(elsewhere)).toEqual(['precious.txt']);
    expect(existsSync(join(dir, 'b1'))).toBe(false);
  });

  it("remove refuses a backup directory that is a link, and leaves the linked directory's meta.json and dump", async () => {
    const target = fileTarget();
    const dir = paths.get(target)!;
    const elsewhere = victim();
    writeFileSync(join(elsewhere, 'meta.json'), '{}');
    writeFileSync(join(elsewhere, 'home.xfsdump'), 'someone else');
    symlinkSync(elsewhere, join(dir, 'b9'));
    const e = await failure(target.remove('b9'));
    expect(e.kind).toBe('trust');
    expect(e.message).toMatch(/^the backup directory b9 is a symbolic link;/);
    expect(readdirSync(elsewhere).sort()).toEqual(['home.xfsdump', 'meta.json', 'precious.txt']);
  });

  it('remove refuses to delete in a target directory that others can write', async () => {
    const target = fileTarget();
    const kept = await backUp(target, 'b1');
    chmodSync(paths.get(target)!, 0o777);
    expect((await failure(target.remove('b1'))).message).toMatch(/^the target directory \(target\.path\) is owned by root, mode 0777/);
    chmodSync(paths.get(target)!, 0o755);
    await expectIntact(target, 'b1', kept);
  });
});
