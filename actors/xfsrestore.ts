/**
 * The seed's restore step 3: xfsrestore /home from the target, streamed (from
 * the target's program with no copy through this process where it has one:
 * src/system/read-into.ts). The bytes are hashed on the way in and must match
 * what the backup recorded, and
 * xfsrestore's own messages must be clean: its exit status alone is not
 * trusted. -B brings back the owner and mode of /home itself.
 */
import { finished } from 'node:stream/promises';
import { UserError } from '../src/errors.js';
import type { Compression } from '../src/system/compression.js';
import { type BackupSource, readInto } from '../src/system/read-into.js';
import { run } from '../src/system/run.js';
import { XfsrestoreReport } from '../src/system/xfsrestore-report.js';
import { readFailure } from './verify.js';

export function xfsrestoreArgs(home: string, file?: string): string[] {
  // Like xfsdump, xfsrestore reads stdin from a lone "-", not from "-f -".
  return ['-F', '-J', '-B', ...(file ? ['-f', file] : ['-']), home];
}

export async function restoreHome(
  source: BackupSource,
  home: string,
  expected: { bytes: number; sha256: string },
  where: string,
  compression: Compression = 'none',
): Promise<{ entries: number }> {
  const report = new XfsrestoreReport();
  const fed = await readInto(source, ['xfsrestore', xfsrestoreArgs(home)], report, { compression });
  if (fed.readFailure) throw readFailure(fed.readFailure, where);
  if (fed.bytes !== expected.bytes || fed.sha256 !== expected.sha256) {
    throw new UserError(
      'restore',
      `the backup read from the target during the restore differs from what was recorded (${fed.bytes} of ${expected.bytes} bytes)`,
      {
        where,
        hint: 'The target changed or failed while reading; check it and run "syn3-backup resume" to format /home and restore again',
      },
    );
  }
  if (fed.consumerFailure) throw fed.consumerFailure;
  if (fed.unpackFailure) throw fed.unpackFailure;
  const trouble = report.trouble();
  if (trouble.length) {
    throw new UserError('restore', `xfsrestore reported problems: ${trouble.slice(0, 3).join(' / ')}`, {
      where,
      hint: 'Run "syn3-backup resume" to format /home and restore again; if it repeats, restore from an older backup',
    });
  }
  if (fed.reportFailure) throw fed.reportFailure;
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
