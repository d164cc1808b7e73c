/**
 * Records what is needed to rebuild /, /boot and /home on new disks: device,
 * file system type, UUID, label, size and, for XFS, the geometry (for /home
 * also the quotas it keeps); and the node's role in each DRBD resource, which
 * decides whether it comes back primary.
 */
import type { DrbdRoleAtBackup, FsIdentity, SystemLayout } from '../machines/types.js';
import { Drbd } from '../src/system/drbd.js';
import { UserError } from '../src/errors.js';
import { mountAt } from '../src/system/mounts.js';
import { run } from '../src/system/run.js';
import { quotaAccounting, quotaKinds } from '../src/system/xfs-quota.js';
import { readFile, realpath, stat } from 'node:fs/promises';
import { basename } from 'node:path';

export async function readLayout(paths: { root: string; boot: string; home: string }): Promise<SystemLayout> {
  const roles = { root: paths.root, boot: paths.boot, home: paths.home };
  const mounts = Object.fromEntries(
    Object.entries(roles).map(([role, mountPoint]) => {
      const mount = mountAt(mountPoint);
      if (!mount) {
        throw new UserError('config', `paths.${role} (${mountPoint}) is not a mount point`, {
          hint: `Each of /, /boot and /home must be its own file system so it can be rebuilt on a new disk; fix paths.${role}`,
        });
      }
      return [role, mount];
    }),
  );
  // One blkid for all devices and sizes from sysfs: this runs on every backup, and each
  // process start costs more than the answer (xfs_info alone is a script that starts four).
  const devices = Object.values(mounts)
    .map((m) => m.source)
    .filter((d) => d.startsWith('/dev/'));
  const probed = await blkid(devices);
  const identify = async (role: 'root' | 'boot' | 'home'): Promise<FsIdentity> => {
    const mount = mounts[role]!;
    const identity: FsIdentity = { mountPoint: roles[role], device: mount.source, fsType: mount.fsType };
    const p = probed.get(mount.source);
    if (p?.UUID) identity.uuid = p.UUID;
    if (p?.LABEL) identity.label = p.LABEL;
    const size = await sizeOf(mount.source);
    if (size) identity.sizeBytes = size;
    identity.mode = (await stat(roles[role])).mode & 0o7777;
    if (mount.fsType === 'xfs') identity.xfs = parseXfsInfo((await run('xfs_spaceman', ['-c', 'info', roles[role]])).stdout);
    // What the new /home is mounted with before it is refilled, so that its limits can be set again.
    const quota = quotaAccounting(mount.superOptions);
    if (role === 'home' && mount.fsType === 'xfs' && quotaKinds(quota).length) identity.quota = quota;
    return identity;
  };
  const [root, boot, home, drbd] = await Promise.all([identify('root'), identify('boot'), identify('home'), drbdRoles(paths.root)]);
  return { root, boot, home, ...(drbd.length ? { drbd } : {}) };
}

/** Whether this node is primary in each DRBD resource; a resource that is not up counts as secondary. */
async function drbdRoles(root: string): Promise<DrbdRoleAtBackup[]> {
  const drbd = await Drbd.of(root);
  if (!drbd) return [];
  const resources = await drbd.resources();
  return Promise.all(resources.map(async (resource) => ({ resource, role: (await drbd.role(resource)) ?? 'Secondary' })));
}

/** blkid -p -o export a b c: blocks of KEY=value lines, one per device, each starting with DEVNAME. */
async function blkid(devices: string[]): Promise<Map<string, Record<string, string>>> {
  const found = new Map<string, Record<string, string>>();
  if (!devices.length) return found;
  const { stdout } = await run('blkid', ['-p', '-o', 'export', ...new Set(devices)]).catch((e: { cause?: { stdout?: string } }) => ({
    stdout: e.cause?.stdout ?? '',
  }));
  for (const block of stdout.split(/\n\s*\n/)) {
    const fields = Object.fromEntries(
      block
        .split('\n')
        .map((l) => l.split('='))
        .filter((kv): kv is [string, string] => kv.length >= 2)
        .map(([k, ...v]) => [k, v.join('=')]),
    );
    if (fields.DEVNAME) found.set(fields.DEVNAME, fields);
  }
  return found;
}

async function sizeOf(device: string): Promise<number | undefined> {
  if (!device.startsWith('/dev/')) return undefined;
  try {
    const name = basename(await realpath(device));
    return Number((await readFile(`/sys/class/block/${name}/size`, 'utf8')).trim()) * 512;
  } catch {
    return undefined;
  }
}

/** "meta-data=/dev/loop0 isize=512 agcount=4, agsize=19200 blks" → { isize: 512, agcount: 4, … } per section. */
export function parseXfsInfo(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  let section = '';
  for (const line of text.split('\n')) {
    const head = /^(\S+?)\s*=/.exec(line);
    if (head && !line.startsWith(' ')) section = head[1]!.replace(/-/g, '_');
    for (const m of line.matchAll(/([a-z_0-9]+)=(\d+)/g)) out[`${section}.${m[1]}`] = Number(m[2]);
  }
  return out;
}
