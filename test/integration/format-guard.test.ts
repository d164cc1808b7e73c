// Formatting is the one step that destroys data: it runs only on the device
// the plan named, holding the file system the plan recorded, and nothing from
// a backup's metadata can become an mkfs option. Real loop devices.
import { describe, expect, it, afterAll } from 'vitest';
import { checkSafeToFormat, mkfsArgs } from '../../src/system/mkfs.js';
import { createXfsVolume, destroyAll } from '../support/sandbox.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const UUID = '0b3c5a1e-2f6d-4c8b-9a7e-1d2c3b4a5f60';

const dirs: string[] = [];
async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'syn3-format-guard-'));
  dirs.push(dir);
  return dir;
}

afterAll(async () => {
  await destroyAll();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('the format guard', () => {
  it('refuses a plan that records no UUID for the device, whatever the device holds', async () => {
    const dir = await scratch();
    const volume = await createXfsVolume(dir, 'spare', 300);
    await volume.unmount();
    await expect(checkSafeToFormat({ device: volume.device, fsType: 'xfs', expectUuids: [undefined, undefined] })).rejects.toThrow(
      /records no file system UUID/,
    );
  }, 60_000);

  it('refuses a device whose UUID is not the planned one', async () => {
    const dir = await scratch();
    const volume = await createXfsVolume(dir, 'other', 300);
    await volume.unmount();
    await expect(checkSafeToFormat({ device: volume.device, fsType: 'xfs', expectUuids: [UUID] })).rejects.toThrow(
      /holds a file system with UUID .*, not the one the restore plan expected/,
    );
  }, 60_000);

  it('accepts the device holding the planned UUID', async () => {
    const dir = await scratch();
    const volume = await createXfsVolume(dir, 'planned', 300, { uuid: UUID });
    await volume.unmount();
    await expect(checkSafeToFormat({ device: volume.device, fsType: 'xfs', expectUuids: [UUID] })).resolves.toBeUndefined();
  }, 60_000);

  it('turns no recorded UUID or label into an mkfs option', () => {
    expect(() => mkfsArgs({ device: '/dev/x', fsType: 'xfs', uuid: `${UUID},crc=0`, expectUuids: [] })).toThrow(/is not a UUID/);
    expect(() => mkfsArgs({ device: '/dev/x', fsType: 'xfs', label: '-n', expectUuids: [] })).toThrow(/is not a plain label/);
    expect(() => mkfsArgs({ device: '/dev/x', fsType: 'ext4', label: 'a\nb', expectUuids: [] })).toThrow(/is not a plain label/);
    expect(mkfsArgs({ device: '/dev/x', fsType: 'xfs', uuid: UUID, label: 'home disk', expectUuids: [] })).toEqual([
      'mkfs.xfs',
      ['-f', '-q', '-L', 'home disk', '-m', `uuid=${UUID}`, '/dev/x'],
    ]);
  });
});
