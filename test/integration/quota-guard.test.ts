// The restore's quota steps where quotas cannot be on: real XFS on loop devices, on this host's
// kernel, which keeps no XFS quotas (mount -o usrquota fails here). The lane spec
// test/lane/quotas.lane.test.ts restores real limits in a guest whose kernel keeps them.
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { formatHome } from '../../actors/home-restore.js';
import { applyQuotaLimits, quotasAtBoot } from '../../actors/quota-limits.js';
import type { RestorePlan } from '../../machines/restore-types.js';
import type { QuotaAccounting } from '../../machines/types.js';
import type { Config } from '../../src/config/schema.js';
import type { Target } from '../../src/targets/target.js';
import { homeOnlyPlan } from '../support/home-plan.js';
import { mountAt } from '../../src/system/mounts.js';
import { createXfsVolume, destroyAll } from '../support/sandbox.js';

const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) if (mountAt(join(dir, 'home'))) await execa('umount', [join(dir, 'home')]);
  await destroyAll();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** A /home mounted plain, and a plan whose backup kept these quotas. */
async function homeWithout(quota?: QuotaAccounting): Promise<{ home: string; config: Config; plan: RestorePlan }> {
  const dir = await mkdtemp(join(tmpdir(), 'syn3-quota-guard-'));
  dirs.push(dir);
  const volume = await createXfsVolume(dir, 'home', 300);
  const home = volume.mountPoint;
  const uuidBefore = (await execa('blkid', ['-p', '-s', 'UUID', '-o', 'value', volume.device])).stdout.trim();
  // Only these paths are read by the steps under test.
  const config = { paths: { home, spool: join(home, 'system', 'spool') } } as unknown as Config;
  const plan = homeOnlyPlan(home, volume.device, uuidBefore, quota ? { quota } : {});
  return { home, config, plan };
}

describe('quota limits on a /home without quotas', () => {
  it('a restore onto a /home mounted without the quotas the backup kept stops, naming them and how to fix fstab', async () => {
    const { home, config, plan } = await homeWithout({ user: 'enforced', project: 'enforced' });
    writeFileSync(join(home, 'xfsdump_quotas'), 'fs = /dev/old\n1001 4096 20480 0 0\n', { mode: 0o600 });
    const failed = applyQuotaLimits(config, plan, () => undefined);
    await expect(failed).rejects.toThrow(
      new RegExp(`the backup kept user, project quota limits for ${home}, but ${home} is mounted without those quotas \\(rw,.*\\)`),
    );
    await expect(failed).rejects.toMatchObject({
      hint: expect.stringMatching(
        new RegExp(
          `Mount it with usrquota,prjquota: add them to the options of the ${home} line in /etc/fstab, run "umount ${home} && mount ${home}"`,
        ),
      ),
    });
  }, 60_000);

  it('a backup that kept no quotas sets none and leaves /home as xfsrestore left it', async () => {
    const { home, config, plan } = await homeWithout();
    writeFileSync(join(home, 'xfsdump_quotas'), 'a file of the same name\n', { mode: 0o600 });
    expect(await applyQuotaLimits(config, plan, () => undefined)).toEqual({});
    expect(existsSync(join(home, 'xfsdump_quotas'))).toBe(true);
  }, 60_000);

  it('on a kernel without XFS quotas, the new /home is not used without them: the restore stops after the format, saying why', async () => {
    const { home, config, plan } = await homeWithout({ user: 'enforced', group: 'enforced', project: 'enforced' });
    const failed = formatHome(config, {} as Target, plan, () => undefined);
    await expect(failed).rejects.toThrow(/cannot be mounted with usrquota,grpquota,prjquota, the quotas it kept at backup time/);
    await expect(failed).rejects.toMatchObject({ hint: expect.stringMatching(/CONFIG_XFS_QUOTA.*"syn3-backup resume"/) });
    expect(mountAt(home)).toBeUndefined();
  }, 60_000);

  it('the first boot warns when /home came up without a quota it kept, with the fstab fix', async () => {
    const { home, config, plan } = await homeWithout({ user: 'enforced' });
    const warned: string[] = [];
    quotasAtBoot(config, plan, (m) => warned.push(m));
    expect(warned).toEqual([
      `${home} is mounted without user quotas, which it kept at backup time: the restored limits are on disk but not kept or enforced. ` +
        `Add usrquota to the options of the ${home} line in /etc/fstab and reboot (XFS turns quotas on only when it mounts, not on a remount)`,
    ]);
  }, 60_000);

  it('the first boot says nothing of quotas when the backup kept none', async () => {
    const { config, plan } = await homeWithout();
    const warned: string[] = [];
    quotasAtBoot(config, plan, (m) => warned.push(m));
    expect(warned).toEqual([]);
  }, 60_000);
});
