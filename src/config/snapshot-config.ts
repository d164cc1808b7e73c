/**
 * The snapshot section: how big the LVM snapshot of /home is, and how long a
 * freezer may take to say "frozen". The size is what the copy-on-write area
 * can absorb while the dump runs: a percentage of the origin volume, or bytes.
 */
import { z } from 'zod';
import { duration } from './fields.js';

export type SnapshotSize = { percent: number } | { bytes: number };

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

export function parseSnapshotSize(text: string): SnapshotSize | undefined {
  const percent = /^(\d+(?:\.\d+)?)\s*%$/.exec(text.trim());
  if (percent) {
    const p = Number(percent[1]);
    return p > 0 && p <= 100 ? { percent: p } : undefined;
  }
  const size = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!size) return undefined;
  const bytes = Math.ceil(Number(size[1]) * UNITS[size[2]!.toLowerCase()]!);
  return bytes >= 1024 ** 2 ? { bytes } : undefined;
}

const snapshotSize = z
  .union([z.string(), z.number()])
  .transform((v) => String(v))
  .refine((v) => parseSnapshotSize(v) !== undefined, {
    message: 'must be a percentage of /home\'s volume (such as "20%") or a size of at least 1M (such as "4G")',
  })
  .transform((v) => parseSnapshotSize(v)!);

export const snapshotSchema = z.strictObject({
  size: snapshotSize.default(parseSnapshotSize('20%')!),
  freeze_timeout: duration.default(60_000),
});

export type SnapshotConfig = z.infer<typeof snapshotSchema>;

/** The snapshot's size in bytes for an origin of this size, rounded up to whole extents. */
export function snapshotBytes(size: SnapshotSize, originBytes: number, extentBytes: number): number {
  const wanted = 'percent' in size ? Math.ceil((originBytes * size.percent) / 100) : size.bytes;
  return Math.ceil(wanted / extentBytes) * extentBytes;
}

export function describeSnapshotSize(size: SnapshotSize): string {
  return 'percent' in size ? `${size.percent}% of /home's volume` : `${size.bytes} bytes`;
}
