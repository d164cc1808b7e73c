/**
 * XFS quotas through a fire, in both modes, in QEMU guests (this host's
 * kernel keeps no XFS quotas). The burning machine's /home is mounted with
 * user, group and project quotas: limits for two users (one over its soft
 * limit), two groups and a project directory named in /etc/projects and
 * /etc/projid. It backs up and burns; a fresh installation on new disks,
 * /home mounted plain as a new installer leaves it, is restored with the real
 * CLI (restore --confirm, resume --initrd, resume). The limits must then be
 * what was set, read with xfs_quota's own report, not with this program.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Guest, startGuest } from './guest.js';
import { installFresh, makeServer, MOUNTS, restoreFresh } from './restore-server.js';
import { SERVER } from './snapshot-server.js';

const MINUTES = 60_000;
const HOME = MOUNTS.home;
const QUOTAS = 'usrquota,grpquota,prjquota';
const SPOOL = `${HOME}/system/spool`;
const PROJECTS = '42:/srv/home/web\n';
const PROJID = 'web:42\n';

type Limits = { bsoft: number; bhard: number; isoft: number; ihard: number };
type Kind = 'u' | 'g' | 'p';

/** What the set-up below sets, by hand: blocks in KiB, as xfs_quota reports them. */
const SET: Record<Kind, Record<string, Limits>> = {
  u: { '1001': { bsoft: 2048, bhard: 10240, isoft: 50, ihard: 100 }, '1002': { bsoft: 51200, bhard: 61440, isoft: 0, ihard: 0 } },
  g: { '2001': { bsoft: 20480, bhard: 30720, isoft: 0, ihard: 0 }, '2002': { bsoft: 0, bhard: 0, isoft: 10, ihard: 20 } },
  p: { '42': { bsoft: 5120, bhard: 8192, isoft: 1000, ihard: 2000 } },
};

const SETUP = [
  `install -d -o 1001 -g 2001 ${HOME}/alice && head -c 3M /dev/urandom > ${HOME}/alice/mail && chown 1001:2001 ${HOME}/alice/mail`,
  `install -d -o 1002 -g 2002 ${HOME}/bob && head -c 1M /dev/urandom > ${HOME}/bob/notes && chown 1002:2002 ${HOME}/bob/notes`,
  `printf '${PROJECTS.trim()}\\n' > ${MOUNTS.root}/etc/projects && printf '${PROJID.trim()}\\n' > ${MOUNTS.root}/etc/projid`,
  `mkdir ${HOME}/web && xfs_quota -x -D ${MOUNTS.root}/etc/projects -P ${MOUNTS.root}/etc/projid -c 'project -s web' ${HOME} >/dev/null`,
  `head -c 1M /dev/urandom > ${HOME}/web/index.html`,
  `xfs_quota -x -c 'limit -u bsoft=2m bhard=10m isoft=50 ihard=100 1001' -c 'limit -u bsoft=50m bhard=60m 1002' ` +
    `-c 'limit -g bsoft=20m bhard=30m 2001' -c 'limit -g isoft=10 ihard=20 2002' ` +
    `-c 'limit -p bsoft=5m bhard=8m isoft=1000 ihard=2000 42' ${HOME}`,
].join(' && ');

const sh = (g: Guest, script: string, timeoutMs = 3 * MINUTES) => g.ok(['bash', '-euo', 'pipefail', '-c', script], { timeoutMs });
const cli = (g: Guest, args: string[]) =>
  g.ok(['syn3-backup', '--config', SERVER.config, '--log-format', 'text', ...args], { timeoutMs: 10 * MINUTES });

/** xfs_quota's report of one kind: "#1001  2932  2048  10240  00 [--------]  2  50  100  00 [--------]". */
async function report(g: Guest, kind: Kind): Promise<{ limits: Record<string, Limits>; usedKiB: Record<string, number> }> {
  const { stdout } = await sh(g, `xfs_quota -x -c 'report -${kind} -b -i -N -n' ${HOME}`);
  const limits: Record<string, Limits> = {};
  const usedKiB: Record<string, number> = {};
  for (const line of stdout.split('\n')) {
    const m = /^#(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\[[^\]]*\]\s+\d+\s+(\d+)\s+(\d+)/.exec(line);
    if (!m) continue;
    const [, id, used, bsoft, bhard, isoft, ihard] = m.map(Number) as number[];
    usedKiB[String(id)] = used!;
    if (bsoft || bhard || isoft || ihard) limits[String(id)] = { bsoft: bsoft!, bhard: bhard!, isoft: isoft!, ihard: ihard! };
  }
  return { limits, usedKiB };
}

const allLimits = async (g: Guest) =>
  Object.fromEntries(await Promise.all((['u', 'g', 'p'] as const).map(async (k) => [k, (await report(g, k)).limits]))) as Record<
    Kind,
    Record<string, Limits>
  >;

/** The quota files xfsdump, xfsrestore and snapshot mode use, wherever they may lie on /home. */
const quotaFilesOn = async (g: Guest) =>
  (await sh(g, `ls ${HOME}/xfsdump_quotas* ${SPOOL}/xfsdump_quotas* 2>/dev/null || true`)).stdout.trim();

describe.each(['spool', 'snapshot'] as const)('quotas through a fire, in %s mode (QEMU guests)', (mode) => {
  let work = '';
  let guest: Guest | undefined;
  let publicKey = '';
  let backupSaid = '';

  async function boot(name: string): Promise<Guest> {
    await guest?.stop();
    work ||= await mkdtemp(join(tmpdir(), `syn3-lane-quota-${mode}-`));
    guest = await startGuest({
      name,
      disks: [
        { serial: 'vg', sizeMiB: 512 },
        { serial: 'backup', sizeMiB: 512, file: join(work, 'backup.img') },
      ],
    });
    return guest;
  }

  afterAll(async () => {
    await guest?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  }, MINUTES);

  it('backs up a /home with user, group and project limits set', { timeout: 10 * MINUTES }, async () => {
    const g = await boot(`quota-${mode}`);
    ({ publicKey } = await makeServer(g, { host: 'quota', mode, homeOptions: QUOTAS }));
    await sh(g, SETUP);
    expect(await allLimits(g)).toEqual(SET);
    expect((await report(g, 'u')).usedKiB['1001']).toBeGreaterThan(SET.u['1001']!.bsoft);
    const backup = await cli(g, ['backup']);
    backupSaid = backup.stdout + backup.stderr;
    const meta = JSON.parse((await sh(g, 'cat /backup/*/meta.json')).stdout) as { layout: { home: { quota?: unknown } } };
    expect(meta.layout.home.quota).toEqual({ user: 'enforced', group: 'enforced', project: 'enforced' });
    // The live /home keeps nothing of the backup's quota files.
    expect(await quotaFilesOn(g)).toBe('');
  });

  if (mode === 'snapshot') {
    it('takes the limits from the live /home into the spool, since the read-only snapshot has no quotas', () => {
      for (const f of ['xfsdump_quotas', 'xfsdump_quotas_group', 'xfsdump_quotas_proj']) {
        expect(backupSaid).toContain(`kept in ${SPOOL}/${f} for the snapshot`);
      }
    });
  }

  it('a fresh installation gets the same limits back, the user over the soft limit still over it, the project directory still the project', {
    timeout: 15 * MINUTES,
  }, async () => {
    const g = await boot(`quota-${mode}-new`);
    await installFresh(g, { host: 'quota', mode, publicKey });
    expect((await sh(g, `grep ' ${HOME} ' /proc/mounts`)).stdout).toMatch(/noquota/);
    const { restore } = await restoreFresh(g, 'quota');
    expect(await allLimits(g)).toEqual(SET);
    const said = restore.stdout + restore.stderr;
    expect(said).toMatch(/quota: 2 user limit\(s\) set on \/srv\/home and read back/);
    expect(said).toMatch(/quota: 1 project limit\(s\) set on \/srv\/home and read back/);
    expect(restore.stdout).toMatch(
      /formatted, then filled from the backup; mounted with usrquota,grpquota,prjquota and its quota limits set again/,
    );
    expect((await sh(g, `grep ' ${HOME} ' /proc/mounts`)).stdout).toMatch(/usrquota,prjquota,grpquota/);
    expect((await report(g, 'u')).usedKiB['1001']).toBeGreaterThan(SET.u['1001']!.bsoft);
    expect((await report(g, 'p')).usedKiB['42']).toBeGreaterThanOrEqual(1024);
    expect((await sh(g, `xfs_io -c lsproj -c lsattr ${HOME}/web`)).stdout).toMatch(/projid = 42[\s\S]*P/);
    expect((await g.readFile(`${MOUNTS.root}/etc/projects`)).toString()).toBe(PROJECTS);
    expect((await g.readFile(`${MOUNTS.root}/etc/projid`)).toString()).toBe(PROJID);
    expect(await quotaFilesOn(g)).toBe('');
  });

  // The first boot's check reads the mount, the same in both modes: one run of it keeps the lane short.
  if (mode === 'spool') {
    it('a first boot whose /etc/fstab mounts /home without quotas says so and how to fix fstab; the limits wait on disk', {
      timeout: 15 * MINUTES,
    }, async () => {
      const g = await boot(`quota-${mode}-fstab`);
      await installFresh(g, { host: 'quota', mode, publicKey });
      const { firstBoot } = await restoreFresh(g, 'quota', {
        // What a boot with the restored fstab would do, were quotas missing from its /home line.
        beforeFirstBoot: async () => void (await sh(g, `umount ${HOME} && mount /dev/vg0/home ${HOME}`)),
      });
      const said = firstBoot.stdout + firstBoot.stderr;
      expect(said).toMatch(/\/srv\/home is mounted without user, group, project quotas, which it kept at backup time/);
      expect(said).toMatch(/Add usrquota,grpquota,prjquota to the options of the \/srv\/home line in \/etc\/fstab and reboot/);
      // Fixed as it says: mounted with quotas again, the limits are there.
      await sh(g, `umount ${HOME} && mount -o ${QUOTAS} /dev/vg0/home ${HOME}`);
      expect(await allLimits(g)).toEqual(SET);
    });
  }
});
