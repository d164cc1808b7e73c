/**
 * The smb target's configuration: a Samba or Windows share reached through
 * smbclient. The credentials stay in their own 0600 file (username=,
 * password=, domain= lines), handed to smbclient -A as is.
 */
import { z } from 'zod';
import { absolutePath, retentionSchema } from '../config/fields.js';

/** //server/share: a host name or IPv4 address, and one share name (no subfolders: those go in directory). */
const share = z.string().regex(/^\/\/[A-Za-z0-9._-]+\/[^/\\:*?"<>|;\s][^/\\:*?"<>|;]*$/, {
  message: 'must be //server/share (a subfolder goes in target.directory)',
});

/** backups/host: a folder inside the share, without leading slash, "." or ".." parts. */
const directory = z
  .string()
  .transform((d) => d.replace(/\\/g, '/').replace(/^\/+|\/+$/g, ''))
  .refine((d) => d.split('/').every((part) => part !== '' && part !== '.' && part !== '..' && !/[:*?"<>|;]/.test(part)), {
    message: 'must be a folder inside the share such as backups/host (no "..", no :*?"<>|; characters)',
  });

export const smbTargetSchema = z.strictObject({
  type: z.literal('smb'),
  share,
  port: z.number().int().min(1).max(65535).default(445),
  directory: directory.optional(),
  credentials_file: absolutePath.default('/etc/syn3-backup/smb.cred'),
  /**
   * SMB3 encryption of the login and the data: desired (used wherever the server offers it),
   * required (refuse a server that does not), off (never, even where offered).
   */
  encryption: z.enum(['desired', 'required', 'off']).default('desired'),
  retention: retentionSchema.default({ keep: 7 }),
});

export type SmbTargetConfig = z.infer<typeof smbTargetSchema>;
