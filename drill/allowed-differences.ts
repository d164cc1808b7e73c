/**
 * What may differ between the machine as it was backed up and the machine
 * after the restore and two reboots: the explicit, short list the drill
 * allows. Anything else that differs fails the drill.
 */
import type { Allowance } from './fingerprint.js';

export const ALLOWED_DIFFERENCES: readonly Allowance[] = [
  { path: '/var/log/', why: 'the logs of the boots after the backup' },
  { path: '/var/lib/postgresql/', why: "the postgres account's home: psql's history and the server's state of the later boots" },
  {
    path: '/home/pgdata/',
    why: 'the cluster: the snapshot holds it as it was at the freeze while the client went on committing, it replayed its WAL at the first start and the restore module reloaded "shop" (its content is checked through PostgreSQL instead)',
  },
  { path: '/var/lib/syn3-backup/', why: "syn3-backup's own state records the restore" },
  { path: '/var/lib/systemd/', why: "systemd's timer stamps and random seed change at every boot" },
  { path: '/boot/grub/', why: 'post.restore reinstalled GRUB and regenerated grub.cfg' },
  { path: '/var/tmp/', why: "services' private temporary folders of the later boots" },
  {
    path: '/etc/syn3-backup/signing.key',
    why: 'the signing key never enters the system copy (a dump on the target must not hold it): the restored server makes a new one with "syn3-backup key init"',
  },
  {
    path: '/etc/lvm/archive/',
    why: "LVM's archive of the volume group's metadata: the snapshot's lvcreate and lvremove add to it after / was copied into the backup",
  },
  { path: '/etc/lvm/backup/', why: "LVM's backup of the volume group's metadata, rewritten by the same lvcreate and lvremove" },
  { path: '/var/lib/xfsdump', why: 'an empty folder xfsdump makes at its first run, after / was copied into the backup' },
];
