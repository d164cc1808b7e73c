/**
 * What may differ between the machine as it was backed up and the machine
 * after the restore and two reboots: the explicit, short list the drill
 * allows. Anything else that differs fails the drill.
 */
import type { Allowance } from './fingerprint.js';

export const ALLOWED_DIFFERENCES: readonly Allowance[] = [
  { path: '/var/log/', why: 'the logs of the boots after the backup' },
  { path: '/var/lib/postgresql/', why: 'the cluster was reloaded from the spool dump by the restore module' },
  { path: '/var/lib/syn3-backup/', why: "syn3-backup's own state records the restore" },
  { path: '/var/lib/systemd/', why: "systemd's timer stamps and random seed change at every boot" },
  { path: '/boot/grub/', why: 'post.restore reinstalled GRUB and regenerated grub.cfg' },
  { path: '/var/tmp/', why: "services' private temporary folders of the later boots" },
  {
    path: '/etc/syn3-backup/signing.key',
    why: 'the signing key never enters the system copy (a dump on the target must not hold it): the restored server makes a new one with "syn3-backup key init"',
  },
  { path: '/var/lib/xfsdump', why: 'an empty folder xfsdump makes at its first run, after / was copied into the backup' },
];
