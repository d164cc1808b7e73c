/**
 * The file target, the default one: the Target contract on a directory of the
 * local disk, and what is particular to it (its layout, require_mount, a full
 * disk).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
