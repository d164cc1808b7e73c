/** What the restore decided in its preflight: which backup, and which devices on this machine it will rebuild. */
import type { SystemLayout, UnkeptTimes } from './types.js';

export interface DeviceRef {
  role: 'root' | 'boot' | 'home';
  mountPoint: string;
  device: string;
  fsType: string;
  /** UUID of the file system there before the restore (the fresh installation's). */
  uuidBefore?: string;
  sizeBytes?: number;
}

export interface RestorePlan {
  backupId: string;
  host: string;
  created: string;
  size: number;
  sha256: string;
  /** How the backup's bytes were written (its metadata says). */
  compression?: 'none' | 'zstd';
  /**
   * A local file target's dump, as the preflight found it when it read it all
   * back: xfsrestore may then read that file itself, once it is proven unchanged.
   */
  localFile?: { path: string; dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number };
  /**
   * Set when /home held only what a fresh installation puts there and the target is not a local
   * file: the preflight did not read the backup, the restore of /home verifies it as it goes.
   */
  verifyWhileRestoring?: { holds: string };
  /** File systems as they were at backup time: what to rebuild them as. */
  recorded: SystemLayout;
  /** The files whose times the dump could not keep, as the backup recorded them: the restore's summary repeats them. */
  unkeptTimes?: UnkeptTimes;
  /** The devices on this machine that will be formatted. */
  devices: { root: DeviceRef; boot: DeviceRef; home: DeviceRef };
  /** Disks whose boot code GRUB reinstalls at first boot. */
  grubDisks: string[];
}
