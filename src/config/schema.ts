/**
 * The configuration file's shape. zod gives typed parsing and issue paths that
 * the loader maps back to YAML lines; strict objects reject unknown keys so a
 * typo never silently falls back to a default.
 */
import { z } from 'zod';
import { absolutePath, duration, retentionSchema } from './fields.js';
import { Cron } from 'croner';
import { ftpTargetSchema } from '../targets/ftp-config.js';
import { tapeTargetSchema } from '../targets/tape-config.js';
import { smbTargetSchema } from '../targets/smb-config.js';
import { s3TargetSchema } from '../targets/s3-config.js';
import { trustSchema, type TrustConfig } from './trust-config.js';
import { snapshotSchema, type SnapshotConfig } from './snapshot-config.js';
import type { Schedule } from '../../machines/schedule.js';

export type { Schedule };

const dailyTime = z.string().refine((t) => /^([01]\d|2[0-3]):[0-5]\d$/.test(t), {
  message: 'must be a time of day as HH:MM, 24-hour clock (e.g. "02:00")',
});

const cronExpression = z.string().refine(
  (expr) => {
    try {
      new Cron(expr, { paused: true });
      return expr.trim().split(/\s+/).length === 5;
    } catch {
      return false;
    }
  },
  { message: 'must be a five-field cron expression such as "0 2 * * 1-5"' },
);

const scheduleSchema = z
  .strictObject({ daily: dailyTime.optional(), every: duration.optional(), cron: cronExpression.optional() })
  .refine((s) => [s.daily, s.every, s.cron].filter((v) => v !== undefined).length === 1, {
    message: 'needs exactly one of daily, every or cron',
  });

const fileTargetSchema = z.strictObject({
  type: z.literal('file'),
  path: absolutePath,
  /** On by default: without the backup disk, a backup would fill the root file system instead. */
  require_mount: z.boolean().default(true),
  retention: retentionSchema.default({ keep: 7 }),
});

const targetSchema = z.discriminatedUnion('type', [fileTargetSchema, smbTargetSchema, ftpTargetSchema, s3TargetSchema, tapeTargetSchema]);

const pathsSchema = z.strictObject({
  root: absolutePath.default('/'),
  boot: absolutePath.default('/boot'),
  home: absolutePath.default('/home'),
  state: absolutePath.default('/var/lib/syn3-backup'),
  modules: absolutePath.default('/usr/backup/modules'),
});

const restoreSchema = z.strictObject({
  /** Disks whose boot code GRUB reinstalls; default: the disk that holds /boot. */
  grub_devices: z.array(absolutePath).optional(),
  /** Regenerate grub.cfg with update-grub at first boot (off for sandboxes: it probes the running system). */
  update_grub: z.boolean().default(true),
  /** Rebuild the initramfs so its hook can find /home at the next boot. */
  update_initramfs: z.boolean().default(true),
  /** How long services get to stop before what still uses /home is killed. */
  stop_timeout: duration.default(30_000),
  /**
   * At the first boot, how long each DRBD resource waits for its peer and, where this node was
   * primary, for the resync from it; then it is left waiting, secondary, and status says so.
   */
  drbd_wait: duration.default(600_000),
});

export const configSchema = z.strictObject({
  host: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9.-]*$/, 'must be a host name')
    .optional(),
  schedule: scheduleSchema,
  mode: z.enum(['spool', 'snapshot']).default('spool'),
  /** Only read in snapshot mode: the LVM snapshot of /home and the freezers' time limit. */
  snapshot: snapshotSchema.default(snapshotSchema.parse({})),
  /** zstd in the stream; each backup's metadata says how it was written, and the restore undoes it. */
  compression: z.enum(['none', 'zstd']).default('none'),
  paths: pathsSchema.default(pathsSchema.parse({})),
  modules: z.strictObject({ timeout: duration.default(3_600_000) }).default({ timeout: 3_600_000 }),
  system_sync: z.strictObject({ exclude: z.array(z.string().min(1)).default([]) }).default({ exclude: [] }),
  target: targetSchema,
  restore: restoreSchema.default(restoreSchema.parse({})),
  trust: trustSchema.default(trustSchema.parse({})),
});

export type RawConfig = z.infer<typeof configSchema>;
export type FileTargetConfig = z.infer<typeof fileTargetSchema>;
export type TargetConfig = z.infer<typeof targetSchema>;
export type RestoreConfig = z.infer<typeof restoreSchema>;

export interface Paths {
  root: string;
  boot: string;
  home: string;
  state: string;
  modules: string;
  /** <home>/.syn3systembackup, as in the seed. */
  systemCopy: string;
  /** <home>/system/spool, as in the seed. */
  spool: string;
}

export interface Config {
  file: string;
  host: string;
  schedule: Schedule;
  mode: 'spool' | 'snapshot';
  snapshot: SnapshotConfig;
  compression: 'none' | 'zstd';
  paths: Paths;
  /** paths.modules was written in the file: then a missing directory is a typo, not "no modules". */
  modulesExplicit: boolean;
  moduleTimeoutMs: number;
  systemSyncExclude: string[];
  target: TargetConfig;
  restore: RestoreConfig;
  trust: TrustConfig;
}
