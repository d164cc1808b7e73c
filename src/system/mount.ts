/** Mounting and unmounting, with the kernel's mount table as the truth. */
import { mkdir } from 'node:fs/promises';
import { mountAt, readMounts } from './mounts.js';
import { run } from './run.js';

export async function mount(device: string, dir: string, fsType?: string, options?: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (mountAt(dir)?.source === device) return;
  await run('mount', [...(fsType ? ['-t', fsType] : []), ...(options ? ['-o', options] : []), device, dir]);
}

/** Unmounts `dir` if something is mounted there; a busy mount is retried briefly, then reported. */
export async function unmount(dir: string): Promise<void> {
  for (let attempt = 0; mountAt(dir); attempt++) {
    try {
      await run('umount', [dir]);
    } catch (e) {
      if (attempt >= 5) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Where a device is mounted now (all mount points). */
export function mountPointsOf(device: string): string[] {
  return readMounts()
    .filter((m) => m.source === device)
    .map((m) => m.mountPoint);
}
