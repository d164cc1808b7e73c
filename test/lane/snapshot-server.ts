/**
 * A small server in a lane guest, as snapshot mode needs one: / and /boot
 * small ext4 file systems and /home an XFS on the logical volume vg0/home
 * (on the guest disk "vg"), the file target's disk at /backup (disk
 * "backup"), a snapshot-mode configuration and a signing key. Shared by the
 * snapshot-mode specs and the lane bench.
 */
import type { Guest } from './guest.js';

export const SERVER = {
  root: '/srv/root',
  home: '/srv/root/home',
  state: '/var/lib/syn3-backup',
  modules: '/etc/syn3-backup/modules',
  config: '/etc/syn3-backup/config.yaml',
} as const;

export interface SnapshotConfigOptions {
  size?: string;
  freezeTimeout?: string;
  home?: string;
  keep?: number;
}

export function snapshotConfig(o: SnapshotConfigOptions = {}): string {
  return [
    'host: lane',
    'schedule:',
    '  every: 1d',
    'mode: snapshot',
    'snapshot:',
    `  size: ${o.size ?? '64M'}`,
    `  freeze_timeout: ${o.freezeTimeout ?? '60s'}`,
    'paths:',
    `  root: ${SERVER.root}`,
    `  boot: ${SERVER.root}/boot`,
    `  home: ${o.home ?? SERVER.home}`,
    `  state: ${SERVER.state}`,
    `  modules: ${SERVER.modules}`,
    'target:',
    '  type: file',
    '  path: /backup',
    '  retention:',
    `    keep: ${o.keep ?? 10}`,
    'restore:',
    '  update_grub: false',
    '  update_initramfs: false',
    '',
  ].join('\n');
}

export async function makeSnapshotServer(g: Guest, o: { homeMiB: number; config?: SnapshotConfigOptions }): Promise<void> {
  await makeServerDisks(g, { homeMiB: o.homeMiB, backupDisk: 'new' });
  await g.writeFile(SERVER.config, snapshotConfig(o.config), 0o600);
  await g.ok(['syn3-backup', 'key', 'init', '--config', SERVER.config], { timeoutMs: 5 * 60_000 });
}

/**
 * / and /boot small ext4 file systems and /home an XFS, all on the volume
 * group vg0 (disk "vg"), mounted at SERVER.root (or where mounts says); the backup disk (disk
 * "backup") at /backup: a new one is formatted, a carried one only mounted.
 */
export async function makeServerDisks(
  g: Guest,
  o: {
    homeMiB: number;
    backupDisk: 'new' | 'carried';
    mounts?: { root: string; boot: string; home: string };
    /** Mount options of /home (e.g. its quotas). */
    homeOptions?: string;
  },
): Promise<void> {
  const { root, boot, home } = o.mounts ?? { root: SERVER.root, boot: `${SERVER.root}/boot`, home: SERVER.home };
  const { state, modules } = SERVER;
  const backup = g.disk('backup');
  await g.ok(
    [
      'bash',
      '-euo',
      'pipefail',
      '-c',
      [
        `pvcreate -q ${g.disk('vg')} && vgcreate -q vg0 ${g.disk('vg')}`,
        `lvcreate -q -y -L 64M -n root vg0 && lvcreate -q -y -L 32M -n boot vg0 && lvcreate -q -y -L ${o.homeMiB}M -n home vg0`,
        // mkfs.xfs wants 300 MB at least: / and /boot are small ext4 here, as the layout allows.
        'mkfs.ext4 -q -L root /dev/vg0/root && mkfs.ext4 -q -L boot /dev/vg0/boot && mkfs.xfs -q -L home /dev/vg0/home',
        `mkdir -p ${root} && mount /dev/vg0/root ${root} && mkdir -p ${boot} ${home} ${root}/etc ${root}/usr/bin`,
        `mount /dev/vg0/boot ${boot} && mount ${o.homeOptions ? `-o ${o.homeOptions} ` : ''}/dev/vg0/home ${home}`,
        `echo server > ${root}/etc/hostname && cp /bin/true ${root}/usr/bin/ && echo kernel > ${boot}/vmlinuz`,
        `${o.backupDisk === 'new' ? `mkfs.xfs -q -L backup ${backup} && ` : ''}mkdir -p /backup && mount ${backup} /backup`,
        `install -d -m 0700 /etc/syn3-backup ${state} ${modules}`,
      ].join(' && '),
    ],
    { timeoutMs: 5 * 60_000 },
  );
}
