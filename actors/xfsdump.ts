/**
 * The seed's step 5: a level-0 xfsdump of /home, streamed straight to the
 * target (no staging copy), counted and hashed on the way so verification
 * can prove that what the target holds is what xfsdump wrote.
 * -J: the host's xfsdump inventory is not used (every dump is level 0, and a
 * restore on new disks has no inventory anyway).
 */
import type { DumpResult } from '../machines/types.js';
import type { Target } from '../src/targets/target.js';
import { Measure } from '../src/streams.js';
import { finish, start } from './run.js';

export interface DumpRequest {
  home: string;
  id: string;
  sessionLabel: string;
  mediaLabel: string;
  target: Target;
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal;
}

/** With no file, xfsdump writes the dump to stdout ("-" stands alone, not after -f). */
export function xfsdumpArgs(r: Pick<DumpRequest, 'home' | 'sessionLabel' | 'mediaLabel'>, file?: string): string[] {
  return ['-l', '0', '-J', '-F', '-L', r.sessionLabel, '-M', r.mediaLabel, ...(file ? ['-f', file] : ['-']), r.home];
}

export async function dumpHome(r: DumpRequest): Promise<DumpResult> {
  const startedAt = Date.now();
  const args = xfsdumpArgs(r);
  const child = start('xfsdump', args, { signal: r.signal });
  const measure = new Measure(r.onProgress);
  const stored = r.target.write(r.id, child.stdout!.pipe(measure));
  // If the target gives up (full, gone), xfsdump must not go on writing into a closed pipe.
  stored.catch(() => child.kill('SIGTERM'));
  const [dumped, written] = await Promise.allSettled([finish(child, 'xfsdump', args), stored]);
  if (written.status === 'rejected') throw written.reason;
  if (dumped.status === 'rejected') throw dumped.reason;
  return { bytes: measure.bytes, sha256: measure.digest(), startedAt, finishedAt: Date.now() };
}
