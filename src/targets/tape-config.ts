/**
 * The tape target's configuration. Its own module so the target and the main
 * schema can both import it without a cycle.
 *
 *   target:
 *     type: tape
 *     device: /dev/nst0      # the NON-rewinding device
 *     block_size: 256KiB     # bytes, or a string with B, K/KiB, M/MiB
 *     eject: false           # unload the tape once the backup is committed
 *     overwrite: false       # write over a tape that holds a committed backup
 *     retention: { keep: 1 } # a tape holds one backup: rotate tapes to keep more
 */
import { z } from 'zod';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const MIN_BLOCK_SIZE = 512;
export const MAX_BLOCK_SIZE = 16 * MiB;
export const DEFAULT_BLOCK_SIZE = 256 * KiB;

const UNIT: Record<string, number> = { '': 1, b: 1, k: KiB, kib: KiB, m: MiB, mib: MiB };

/** "256KiB", "1M", "65536" or 65536 → bytes; undefined when it is not such a size. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  const m = /^\s*(\d+)\s*([A-Za-z]*)\s*$/.exec(value);
  const unit = m ? UNIT[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const bytes = Number(m[1]) * unit;
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

const blockSize = z
  .union([z.number(), z.string()])
  .refine(
    (v) => {
      const bytes = parseSize(v);
      return bytes !== undefined && bytes >= MIN_BLOCK_SIZE && bytes <= MAX_BLOCK_SIZE && bytes % MIN_BLOCK_SIZE === 0;
    },
    { message: 'must be a size such as 262144, "256KiB" or "1MiB": a multiple of 512 bytes, from 512 bytes to 16MiB' },
  )
  .transform((v) => parseSize(v)!);

const absolutePath = z
  .string()
  .refine((p) => p.startsWith('/'), { message: 'must be an absolute path (starting with /), such as /dev/nst0' });

const tapeRetentionSchema = z.strictObject({
  keep: z
    .number()
    .int()
    .min(1, 'must keep at least 1 backup')
    .max(1, 'a tape holds one backup, so keep must be 1: rotate tapes to keep more generations'),
});

export const tapeTargetSchema = z.strictObject({
  type: z.literal('tape'),
  /** The non-rewinding tape device (/dev/nst0, /dev/nsa0 …). */
  device: absolutePath.default('/dev/nst0'),
  /** Every block written to the tape has exactly this size; the last one is padded. */
  block_size: blockSize.default(DEFAULT_BLOCK_SIZE),
  /** Unload the tape once the backup is committed (so the next run needs a fresh tape). */
  eject: z.boolean().default(false),
  /**
   * Write over a tape that holds a committed backup (or data that is not a
   * syn3-backup backup). Off by default: with one backup per tape, writing
   * destroys that backup before the new one is verified.
   */
  overwrite: z.boolean().default(false),
  retention: tapeRetentionSchema.default({ keep: 1 }),
});

export type TapeTargetConfig = z.infer<typeof tapeTargetSchema>;
