/**
 * The files whose times xfsdump cannot keep. It stores an mtime and an atime
 * as 32-bit seconds: a file dated 2100 comes back dated 1963, one second past
 * 2038-01-19T03:14:07Z comes back in 1901. Sub-seconds are lost for every
 * file (that is not counted here); anything outside the signed 32-bit range
 * of whole seconds comes back as another date. Found by find-unkept-times.ts;
 * here what a backup records of them and the one sentence that names them.
 */
import { join } from 'node:path';
import type { UnkeptTimes } from '../../machines/types.js';

export const OLDEST_KEPT_TIME = '1901-12-13T20:45:52Z';
export const NEWEST_KEPT_TIME = '2038-01-19T03:14:07Z';
/** How many of them a warning and the metadata name; the log has every one. */
export const UNKEPT_TIMES_SHOWN = 5;

/** What a backup records of them: how many, and the first few. */
export function unkeptTimesOf(paths: readonly string[]): UnkeptTimes | undefined {
  return paths.length ? { count: paths.length, first: paths.slice(0, UNKEPT_TIMES_SHOWN) } : undefined;
}

/**
 * The one wording, for the backup's warning, the restore's plan ("will come back") and its summary
 * once /home is restored ("came back"); `home` is where the dumped tree is (or goes).
 */
export function unkeptTimesSentence(u: UnkeptTimes, home: string, when: 'ahead' | 'done' = 'ahead'): string {
  const more = u.count > u.first.length ? ` and ${u.count - u.first.length} more` : '';
  return (
    `${u.count} ${u.count === 1 ? 'file' : 'files'} ${when === 'ahead' ? 'will come' : 'came'} back with other times ` +
    `(xfsdump keeps whole seconds from ${OLDEST_KEPT_TIME} to ${NEWEST_KEPT_TIME} only): ` +
    `${u.first.map((p) => join(home, p)).join(', ')}${more}`
  );
}
