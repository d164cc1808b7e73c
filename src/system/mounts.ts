/** The mount table as the kernel sees it (/proc/self/mountinfo). */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  /** The file system's own options, as the kernel shows them (for XFS, e.g. usrquota, prjquota). */
  superOptions: string[];
}

export function readMounts(): MountEntry[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [left, right] = line.split(' - ') as [string, string];
      const fields = left.split(' ');
      const [fsType, source, superOptions] = right.split(' ');
      return {
        mountPoint: unescapeOctal(fields[4] ?? ''),
        fsType: fsType ?? '',
        source: unescapeOctal(source ?? ''),
        superOptions: (superOptions ?? '').split(',').filter(Boolean),
      };
    });
}

export function isMountPoint(path: string): boolean {
  const p = resolve(path);
  return readMounts().some((m) => m.mountPoint === p);
}

/** The last-mounted entry at exactly this mount point. */
export function mountAt(path: string): MountEntry | undefined {
  const p = resolve(path);
  return readMounts()
    .filter((m) => m.mountPoint === p)
    .at(-1);
}

function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
