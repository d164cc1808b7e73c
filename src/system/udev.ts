/**
 * Waiting for udev. A mkfs that changes a file system's UUID makes udev drop the
 * old /dev/disk/by-uuid link a moment later; systemd then stops the fstab mount
 * unit that named it, and so unmounts whatever is mounted there by then. Waiting
 * for udev's queue first lets that happen before the new file system is mounted.
 */
import { existsSync } from 'node:fs';
import { run } from './run.js';
import { which } from './tools.js';

/** Returns once udev has handled every event queued so far; at once where no udev runs (initrd, test guests). */
export async function settleUdev(): Promise<void> {
  if (!existsSync('/run/udev/control') || !(await which('udevadm'))) return;
  await run('udevadm', ['settle', '--timeout=30']).catch(() => undefined);
}
