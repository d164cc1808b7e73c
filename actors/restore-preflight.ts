/**
 * Before anything is destroyed: the chosen backup is read back whole from the
 * target and proven intact against what was recorded when it was written,
 * and the devices this machine will rebuild are found from the mount table
 * and checked against what the backup recorded. The metadata's signature is
 * checked first, before a byte of the dump is read: only a trusted signature
 * makes the recorded length and sha256 worth comparing against.
 */
import { stat } from 'node:fs/promises';
import type { DeviceRef, RestorePlan } from '../machines/restore-types.js';
import type { FsIdentity } from '../machines/types.js';
import type { Config } from '../src/config/schema.js';
import { UserError } from '../src/errors.js';
import { mountAt } from '../src/system/mounts.js';
import type { StoredBackup, Target } from '../src/targets/target.js';
import { probeUuid } from '../src/system/mkfs.js';
import { run } from '../src/system/run.js';
import { requireTools } from '../src/system/tools.js';
import { requireTrustedSignature } from '../src/signing/require-signed.js';
import { freshHome } from '../src/system/fresh-home.js';
import { verifyStream } from './verify.js';

export async function findBackup(target: Target, id: string): Promise<StoredBackup> {
  const backup = (await target.list()).find((b) => b.id === id);
  if (!backup) {
    throw new UserError('restore', `backup ${id} is not on the target`, {
      where: target.description,
      hint: 'Run "syn3-backup list" to see the backups there, and pass one with --from ID',
    });
  }
  return backup;
}

export async function planRestore(
  config: Config,
  target: Target,
  backupId: string,
  log: (m: string) => void = () => undefined,
): Promise<RestorePlan> {
  await requireTools(['xfsrestore', 'mkfs.xfs', 'rsync', 'blkid', 'mount', 'umount']);
  const backup = await findBackup(target, backupId);
  requireTrustedSignature(config, backup, `${target.description}: backup ${backupId}`);
  const recorded = backup.metadata.layout;
  const devices = {
    root: await deviceAt('root', config.paths.root, recorded.root),
    boot: await deviceAt('boot', config.paths.boot, recorded.boot),
    home: await deviceAt('home', config.paths.home, recorded.home),
  };
  const grubDisks = config.restore.grub_devices ?? (await parentDisk(devices.boot.device));
  const compression = backup.metadata.compression ?? 'none';
  const local = target.localPath?.(backupId);
  const fresh = local ? undefined : await freshHome(config);
  if (fresh) {
    log(
      `${config.paths.home} holds only what a fresh installation puts there (${fresh.holds}): the backup is verified while it is restored`,
    );
  } else {
    await proveReadable(target, { backupId, size: backup.size, sha256: backup.metadata.sha256, compression });
  }
  const st = local ? await stat(local) : undefined;
  return {
    ...(fresh ? { verifyWhileRestoring: { holds: fresh.holds } } : {}),
    ...(local && st
      ? { localFile: { path: local, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs } }
      : {}),
    backupId,
    host: backup.metadata.host,
    created: backup.created,
    size: backup.size,
    sha256: backup.metadata.sha256,
    compression,
    recorded,
    ...(backup.metadata.unkeptTimes ? { unkeptTimes: backup.metadata.unkeptTimes } : {}),
    devices,
    grubDisks,
  };
}

/** The whole backup read back from the target and compared with what was recorded when it was written. */
export async function proveReadable(target: Target, b: Pick<RestorePlan, 'backupId' | 'size' | 'sha256' | 'compression'>): Promise<void> {
  await verifyStream(
    () => target.open(b.backupId),
    { bytes: b.size, sha256: b.sha256 },
    `${target.description}: backup ${b.backupId}`,
    b.compression ?? 'none',
  );
}

async function deviceAt(role: DeviceRef['role'], mountPoint: string, recorded: FsIdentity): Promise<DeviceRef> {
  const m = mountAt(mountPoint);
  if (!m?.source.startsWith('/dev/')) {
    throw new UserError('restore', `paths.${role} (${mountPoint}) is not a mounted block device on this machine`, {
      hint: `Install a minimal system with / , /boot and /home on their own file systems (as the backup had them), then restore`,
    });
  }
  // The initrd mounts / with the type it found before the restore formatted it: it must stay the same.
  if (role !== 'home' && m.fsType !== recorded.fsType) {
    throw new UserError('restore', `${mountPoint} is ${m.fsType} here but was ${recorded.fsType} in the backup`, {
      hint: `Reinstall with ${mountPoint} as ${recorded.fsType}, so the initrd can rebuild it in place`,
    });
  }
  const size = await run('blockdev', ['--getsize64', m.source]).then(
    (r) => Number(r.stdout.trim()),
    () => undefined,
  );
  const uuid = await probeUuid(m.source);
  return {
    role,
    mountPoint,
    device: m.source,
    fsType: m.fsType,
    ...(uuid ? { uuidBefore: uuid } : {}),
    ...(size ? { sizeBytes: size } : {}),
  };
}

async function parentDisk(device: string): Promise<string[]> {
  const { stdout } = await run('lsblk', ['-n', '-d', '-o', 'PKNAME', device]).catch(() => ({ stdout: '' }));
  const parent = stdout.trim();
  return parent ? [`/dev/${parent}`] : [];
}
