/**
 * The FTP target's configuration: an FTP or explicit-FTPS server, a user
 * whose password sits in a root-only file, and the directory the backups go to.
 */
import { z } from 'zod';
import { absolutePath, duration, retentionSchema } from '../config/fields.js';

/** Same as the file target's: how many backups of this host to keep. */

/** Nothing that could end an FTP command line or smuggle a second one in. */
const ftpText = z
  .string()
  .min(1)
  .refine((s) => !/[\r\n\0]/.test(s), { message: 'must not contain line breaks or NUL' });

export const ftpTargetSchema = z
  .strictObject({
    type: z.literal('ftp'),
    host: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.:-]*$/, 'must be a host name or an IP address'),
    port: z.number().int().min(1).max(65535).default(21),
    /**
     * Explicit FTPS (AUTH TLS): the login and the data are encrypted. No default: plain FTP sends the
     * password and the backups in clear, so it takes an explicit secure: false.
     */
    secure: z.boolean(),
    /** PEM file of the CA (or of the server's own self-signed certificate) to trust for FTPS, instead of the system's CAs. */
    ca_file: absolutePath.optional(),
    /** Accept any certificate (no verification): the password could be taken by a man in the middle. Prefer ca_file. */
    allow_self_signed: z.boolean().default(false),
    user: ftpText,
    /** Holds the password (one line); must be mode 0600 or stricter. */
    password_file: absolutePath,
    /** The directory on the server the backups go to; it must exist. */
    directory: ftpText,
    /** How long the server may stay silent before the run fails. */
    timeout: duration.default(30_000),
    retention: retentionSchema.default({ keep: 7 }),
  })
  .refine((t) => t.secure || (t.ca_file === undefined && !t.allow_self_signed), {
    message: 'ca_file and allow_self_signed apply to FTPS only: set secure: true as well',
    path: ['secure'],
  });

export type FtpTargetConfig = z.infer<typeof ftpTargetSchema>;
