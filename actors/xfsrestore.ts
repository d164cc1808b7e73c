/**
 * The seed's restore step 3: xfsrestore /home from the target, streamed. The
 * bytes are hashed on the way in and must match what the backup recorded, and
 * xfsrestore's own messages must be clean: its exit status alone is not
 * trusted. -B brings back the owner and mode of /home itself.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../src/errors.js';
import { Measure } from '../src/system/streams.js';
import { decompressingInto, type Compression } from '../src/system/compression.js';
import { finished } from 'node:stream/promises';
import { finish, run, start } from '../src/system/run.js';
import { XfsrestoreReport } from '../src/system/xfsrestore-report.js';
import { readFailure } from './verify.js';

export function xfsrestoreArgs(home: string, file?: string): string[] {
  // Like xfsdump, xfsrestore reads stdin from a lone "-", not from "-f -".
  return ['-F', '-J', '-B', ...(file ? ['-f', file] : ['-']), home];
}

export async function restoreHome(
  source: Readable,
  home: string,
  expected: { bytes: number; sha256: string },
  where: string,
  compression: Compression = 'none',
): Promise<{ entries: number }> {
  const args = xfsrestoreArgs(home);
  const child = start('xfsrestore', args, { stdin: 'pipe', stdout: 'pipe' });
  const measure = new Measure();
  const report = new XfsrestoreReport();
  const unpacked = decompressingInto(child.stdin!, compression);
  const [piped, restored, reported, unpackedDone] = await Promise.allSettled([
    pipeline(source, measure, unpacked.input),
    finish(child, 'xfsrestore', args),
    pipeline(child.stdout!, report),
    unpacked.done,
  ]);
  if (piped.status === 'rejected') throw readFailure(piped.reason, where);
  if (measure.bytes !== expected.bytes || measure.digest() !== expected.sha256) {
    throw new UserError(
      'restore',
      `the backup read from the target during the restore differs from what was recorded (${measure.bytes} of ${expected.bytes} bytes)`,
      {
        where,
        hint: 'The target changed or failed while reading; check it and run "syn3-backup resume" to format /home and restore again',
      },
    );
  }
  if (restored.status === 'rejected') throw restored.reason;
  if (unpackedDone.status === 'rejected') throw unpackedDone.reason;
  const trouble = report.trouble();
  if (trouble.length) {
    throw new UserError('restore', `xfsrestore reported problems: ${trouble.slice(0, 3).join(' / ')}`, {
      where,
      hint: 'Run "syn3-backup resume" to format /home and restore again; if it repeats, restore from an older backup',
    });
  }
  if (reported.status === 'rejected') throw reported.reason;
  return { entries: report.entries };
}

/** xfsrestore reading a local dump file itself; its messages are judged as for a stream. */
export async function restoreHomeFromFile(file: string, home: string, where: string): Promise<{ entries: number }> {
  const { stdout } = await run('xfsrestore', xfsrestoreArgs(home, file));
  const report = new XfsrestoreReport();
  report.end(stdout);
  await finished(report);
  const trouble = report.trouble();
  if (trouble.length) {
    throw new UserError('restore', `xfsrestore reported problems: ${trouble.slice(0, 3).join(' / ')}`, {
      where,
      hint: 'Run "syn3-backup resume" to format /home and restore again; if it repeats, restore from an older backup',
    });
  }
  return { entries: report.entries };
}
