/**
 * The one way this program writes state: write-file-atomic (temp file, fsync,
 * rename) and then an fsync of the directory, so the rename itself survives a
 * power cut. write-file-atomic is used for its temp naming and cleanup on
 * failure; it does not sync the directory, hence the second step.
 */
import { closeSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import writeFileAtomic from 'write-file-atomic';

/** dirMode applies to directories this creates: 0700 for state, 0755 for system places like /etc/postinst.d. */
export function writeDurable(file: string, data: string, mode = 0o600, dirMode = 0o700): void {
  mkdirSync(dirname(file), { recursive: true, mode: dirMode });
  writeFileAtomic.sync(file, data, { mode, fsync: true });
  syncDirectory(dirname(file));
}

export function writeJsonDurable(file: string, value: unknown, mode = 0o600, dirMode = 0o700): void {
  writeDurable(file, `${JSON.stringify(value, null, 2)}\n`, mode, dirMode);
}

export function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
