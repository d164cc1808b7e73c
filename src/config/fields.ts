/** Value schemas every part of the configuration shares (the main schema and each target's). */
import { z } from 'zod';
import { parseDuration } from './duration.js';

export const absolutePath = z.string().refine((p) => p.startsWith('/'), { message: 'must be an absolute path (starting with /)' });

export const duration = z
  .string()
  .refine((d) => parseDuration(d) !== undefined, { message: 'must be a duration such as 90s, 30m, 6h or 1d' })
  .transform((d) => parseDuration(d)!);

export const retentionSchema = z.strictObject({
  keep: z.number().int().min(1, 'must keep at least 1 backup').max(1000),
});
