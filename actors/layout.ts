/**
 * Records what is needed to rebuild /, /boot and /home on new disks: device,
 * file system type, UUID, label, size and, for XFS, the geometry.
 */
import type { FsIdentity, SystemLayout } from '../machines/types.js';
import { UserError } from '../src/errors.js';
import { mountAt } from '../src/mounts.js';
import { run } from './run.js';

export async function readLayout(paths: { root: string; boot: string; home: string }): Promise<SystemLayout> {
  const [root, boot, home] = await Promise.all([identify(paths.root, 'root'), identify(paths.boot, 'boot'), identify(paths.home, 'home')]);
  return { root, boot, home };
}

async function identify(mountPoint: string, role: string): Promise<FsIdentity> {
  const mount = mountAt(mountPoint);
  if (!mount) {
    throw new UserError('config', `paths.${role} (${mountPoint}) is not a mount point`, {
      hint: `Each of /, /boot and /home must be its own file system so it can be rebuilt on a new disk; fix paths.${role}`,
    });
  }
  const identity: FsIdentity = { mountPoint, device: mount.source, fsType: mount.fsType };
  if (mount.source.startsWith('/dev/')) {
    const probe = await blkid(mount.source);
    if (probe.UUID) identity.uuid = probe.UUID;
    if (probe.LABEL) identity.label = probe.LABEL;
    const size = await run('blockdev', ['--getsize64', mount.source]).catch(() => undefined);
    if (size) identity.sizeBytes = Number(size.stdout.trim());
  }
  if (mount.fsType === 'xfs') identity.xfs = parseXfsInfo((await run('xfs_info', [mountPoint])).stdout);
  return identity;
}

async function blkid(device: string): Promise<Record<string, string>> {
  const { stdout } = await run('blkid', ['-p', '-o', 'export', device]).catch(() => ({ stdout: '' }));
  return Object.fromEntries(
    stdout
      .split('\n')
      .map((l) => l.split('='))
      .filter((kv): kv is [string, string] => kv.length >= 2)
      .map(([k, ...v]) => [k, v.join('=')]),
  );
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
