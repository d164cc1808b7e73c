// On a fresh systemd installation, /etc/fstab names /home by the UUID the restore's
// mkfs replaces. When udev drops that UUID, systemd unmounts /home (the drill saw it
// 0.3 s after the restore had mounted the new file system), and xfsrestore then filled
// the root file system's /home folder. The restore must notice and mount it again, and
// never write into /home unless it is the restored file system. Real XFS on loop
// devices; systemd itself is played by a STAND-IN that unmounts /home once, right after
// the restore mounts it, as systemd did in the drill.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureHomeMounted, formatHome, requireHomeMounted } from '../../actors/home-restore.js';
import type { RestorePlan } from '../../machines/restore-types.js';
import type { Config } from '../../src/config/schema.js';
import type { Target } from '../../src/targets/target.js';
import { homeOnlyPlan } from '../support/home-plan.js';
import { mount } from '../../src/system/mount.js';
import { mountAt } from '../../src/system/mounts.js';
import { createXfsVolume, destroyAll, type XfsVolume } from '../support/sandbox.js';

const RECORDED_UUID = '6f1d2c3b-4a5e-4f60-8b7a-9c0d1e2f3a4b';
const dirs: string[] = [];

afterAll(async () => {
  // The steps under test mount /home themselves, behind the volume's back (at most once more than it knows).
  for (const dir of dirs) if (mountAt(join(dir, 'home'))) await execa('umount', [join(dir, 'home')]);
  await destroyAll();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function freshHome(): Promise<{ volume: XfsVolume; config: Config; plan: RestorePlan }> {
  const dir = await mkdtemp(join(tmpdir(), 'syn3-home-mount-'));
  dirs.push(dir);
  const volume = await createXfsVolume(dir, 'home', 300);
  const uuidBefore = (await execa('blkid', ['-p', '-s', 'UUID', '-o', 'value', volume.device])).stdout.trim();
  const home = volume.mountPoint;
  // Only paths.home is read by these steps.
  const config = { paths: { home } } as unknown as Config;
  const plan = homeOnlyPlan(home, volume.device, uuidBefore, { uuid: RECORDED_UUID, label: 'home' });
  return { volume, config, plan };
}

/** The stand-in for systemd: once /home has been unmounted and mounted again, it unmounts it, once. */
function unmountOnceAfterRemount(home: string): { done: Promise<boolean>; stop(): void } {
  let sawUnmounted = false;
  let fired = false;
  let resolve: (fired: boolean) => void = () => undefined;
  const done = new Promise<boolean>((r) => {
    resolve = r;
  });
  const timer = setInterval(() => {
    const mounted = mountAt(home) !== undefined;
    if (!mounted) sawUnmounted = true;
    else if (sawUnmounted && !fired) {
      fired = true;
      void execa('umount', [home]).then(
        () => resolve(true),
        () => resolve(false),
      );
    }
  }, 5);
  return {
    done,
    stop: () => {
      clearInterval(timer);
      resolve(fired);
    },
  };
}

describe('the restored /home stays mounted', () => {
  it('the stand-in for systemd really unmounts: a plain mount after the format ends unmounted', async () => {
    const { volume } = await freshHome();
    await volume.unmount();
    const systemd = unmountOnceAfterRemount(volume.mountPoint);
    await new Promise((r) => setTimeout(r, 20));
    await mount(volume.device, volume.mountPoint, 'xfs');
    expect(await systemd.done).toBe(true);
    systemd.stop();
    expect(mountAt(volume.mountPoint)).toBeUndefined();
  }, 60_000);

  it('a /home unmounted right after the format is mounted again, with the recorded UUID, before anything is restored', async () => {
    const { volume, config, plan } = await freshHome();
    const systemd = unmountOnceAfterRemount(volume.mountPoint);
    const lines: string[] = [];
    // The plan was proven by a full read (no verifyWhileRestoring): the target is not asked again.
    await formatHome(config, {} as Target, plan, (m) => lines.push(m));
    systemd.stop();
    expect(await systemd.done).toBe(true);
    expect(lines.join('\n')).toMatch(/was unmounted behind our back after the format .*mounting it again/);
    expect(mountAt(volume.mountPoint)?.source).toBe(volume.device);
    expect((await execa('blkid', ['-p', '-s', 'UUID', '-o', 'value', volume.device])).stdout.trim()).toBe(RECORDED_UUID);
  }, 60_000);

  it('refuses to go on when another file system is mounted at /home, saying what to run', async () => {
    const { volume, config, plan } = await freshHome();
    await execa('mount', ['-t', 'tmpfs', 'tmpfs', volume.mountPoint]);
    try {
      expect(() => requireHomeMounted(config, plan, 'after xfsrestore')).toThrow(
        new RegExp(`is not the file system on ${volume.device} after xfsrestore \\(tmpfs is mounted there\\)`),
      );
      await expect(ensureHomeMounted(config, plan, () => undefined)).rejects.toMatchObject({
        hint: expect.stringMatching(/names the fresh installation's UUID.*Run "syn3-backup resume": it formats .* and restores it again/),
      });
    } finally {
      await execa('umount', [volume.mountPoint]);
    }
  }, 60_000);

  it('before the markers are written, an unmounted /home (a restart since its restore) is mounted from the restored device', async () => {
    const { volume, config, plan } = await freshHome();
    await volume.unmount();
    const lines: string[] = [];
    await ensureHomeMounted(config, plan, (m) => lines.push(m));
    expect(mountAt(volume.mountPoint)?.source).toBe(volume.device);
    expect(lines.join('\n')).toMatch(/is not mounted .*mounting the restored/);
  }, 60_000);
});
