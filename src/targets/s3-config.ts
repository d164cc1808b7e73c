/**
 * The s3 target's configuration: any S3-compatible store (AWS, Ceph RGW,
 * MinIO, ...). The keys live in a 0600 file, never in the configuration.
 */
import { z } from 'zod';
import { absolutePath, retentionSchema } from '../config/fields.js';

export const S3_DEFAULT_CREDENTIALS_FILE = '/etc/syn3-backup/s3.cred';

export const s3TargetSchema = z.strictObject({
  type: z.literal('s3'),
  /** The server's URL; leave out for AWS itself (the region then picks the endpoint). */
  endpoint: z
    .string()
    .refine((u) => /^https?:\/\/[^/?#\s]+\/?$/.test(u), {
      message: 'must be an http:// or https:// URL with a host and no path, such as http://127.0.0.1:7480',
    })
    .optional(),
  region: z.string().min(1).default('us-east-1'),
  bucket: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/, 'must be a bucket name (letters, digits, ".", "_", "-")'),
  /** Keys go under this prefix, e.g. "host1/"; empty for the bucket's root. */
  prefix: z
    .string()
    .refine(
      (p) =>
        p === '' ||
        (p.endsWith('/') &&
          !p.startsWith('/') &&
          !p
            .split('/')
            .slice(0, -1)
            .some((s) => s === '' || s === '.' || s === '..')),
      {
        message: 'must be empty or like "host1/" (ending in /, no leading /, no empty, "." or ".." parts)',
      },
    )
    .default(''),
  /** https://host/bucket/key rather than https://bucket.host/key: what Ceph and MinIO need. */
  force_path_style: z.boolean().default(true),
  /** access_key_id = ... and secret_access_key = ... lines; mode 0600. */
  credentials_file: absolutePath.default(S3_DEFAULT_CREDENTIALS_FILE),
  /** Multipart part size in MiB: a backup can be up to 10,000 parts. */
  part_size: z
    .number()
    .int()
    .min(5, 'must be at least 5 (MiB), the S3 minimum')
    .max(5120, 'must be at most 5120 (MiB), the S3 maximum')
    .default(64),
  /** Parts uploaded at once; memory use is about part_size x (queue_size + 1). */
  queue_size: z.number().int().min(1).max(16).default(4),
  retention: retentionSchema.default({ keep: 7 }),
});

export type S3TargetConfig = z.infer<typeof s3TargetSchema>;
