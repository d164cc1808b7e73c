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
 *     changer: /dev/sch0     # a tape library's changer (mtx); then:
 *     slots: [1, 2, 3]       #   the slots (mtx's numbering) holding this server's tapes,
 *                            #   and retention.keep may be up to one backup per slot
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
  keep: z.number().int().min(1, 'must keep at least 1 backup'),
});

/** A slot number as mtx numbers storage elements (from 1). */
const slot = z.number().int('must be a whole number').min(1, 'slots are numbered from 1, as "mtx status" shows them');

export const tapeTargetSchema = z
  .strictObject({
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
    /** A tape library's changer device (mtx -f); with it the target picks and loads tapes itself (library.ts). */
    changer: absolutePath.optional(),
    /** The changer's slots holding this server's tapes, in rotation order. */
    slots: z.array(slot).optional(),
  })
  .superRefine((t, ctx) => {
    // One paragraph each, on the line of the field to fix.
    const keep = t.retention.keep;
    if (!t.changer) {
      if (t.slots)
        ctx.addIssue({
          code: 'custom',
          path: ['slots'],
          message: 'is read only with target.changer: add changer (e.g. /dev/sch0) or remove slots',
        });
      if (keep > 1) {
        ctx.addIssue({
          code: 'custom',
          path: ['retention', 'keep'],
          message:
            'must be 1 without a tape library: a tape holds one backup, so keep must be 1 unless target.changer and target.slots name a library; or rotate tapes by hand to keep more generations',
        });
      }
      return;
    }
    if (!t.slots) {
      ctx.addIssue({
        code: 'custom',
        path: ['changer'],
        message: "needs target.slots too: the changer slots holding this server's tapes, such as slots: [1, 2, 3]",
      });
      return;
    }
    if (new Set(t.slots).size !== t.slots.length) {
      ctx.addIssue({ code: 'custom', path: ['slots'], message: "names a slot twice: list each slot holding this server's tapes once" });
    }
    if (t.slots.length < 2) {
      ctx.addIssue({
        code: 'custom',
        path: ['slots'],
        message:
          'needs at least 2 slots: the tape holding the newest backup is never overwritten, so a library of one tape could back up only once',
      });
    } else if (keep > t.slots.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['retention', 'keep'],
        message: `can be at most ${t.slots.length} with ${t.slots.length} slots: a tape holds one backup`,
      });
    }
  });

export type TapeTargetConfig = z.infer<typeof tapeTargetSchema>;
