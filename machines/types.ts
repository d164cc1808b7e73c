/** Data that flows between the machines and the actors: plain JSON, persisted as is. */

export interface FsIdentity {
  /** The mount point as configured (/, /boot, /home or their sandbox paths). */
  mountPoint: string;
  device: string;
  fsType: string;
  uuid?: string;
  label?: string;
  sizeBytes?: number;
  /** The permission bits of the file system's top directory: the restore puts them back (the system copy's own top is 0700). */
  mode?: number;
  /** xfs_info's geometry, for XFS: what mkfs.xfs needs to rebuild it alike. */
  xfs?: Record<string, number>;
  /** For /home: the quotas XFS kept at backup time, each enforced or only accounted. */
  quota?: QuotaAccounting;
}

export type QuotaKind = 'user' | 'group' | 'project';
export type QuotaAccounting = Partial<Record<QuotaKind, 'enforced' | 'accounted'>>;

export interface SystemLayout {
  root: FsIdentity;
  boot: FsIdentity;
  home: FsIdentity;
  /**
   * This node's role in each DRBD resource at backup time: the restore makes it
   * primary again only where it was (the data comes back from the peer, never from the dump).
   */
  drbd?: DrbdRoleAtBackup[];
}

export interface DrbdRoleAtBackup {
  resource: string;
  role: 'Primary' | 'Secondary';
}

export interface DumpResult {
  bytes: number;
  /** Of the bytes as stored, taken while they were written: the verify step's read-back must match it. */
  sha256: string;
  /** How the stored bytes were written; absent means none. */
  compression?: 'none' | 'zstd';
  startedAt: number;
  finishedAt: number;
  /** Absent when every file's times fit (or in dumps made before they were looked at). */
  unkeptTimes?: UnkeptTimes;
}

/** Files whose mtime or atime xfsdump cannot keep (it stores 32-bit seconds): they come back with other times. */
export interface UnkeptTimes {
  count: number;
  /** The first few, relative to the dumped tree ("." for its top), control characters escaped. */
  first: string[];
}

/** Snapshot mode's LVM snapshot of /home, taken while the databases were frozen. */
export interface SnapshotTaken {
  vg: string;
  /** The snapshot volume's name (this program's prefix) and the volume it is of. */
  name: string;
  origin: string;
  /** When lvcreate returned: the dump's time (xfsdump -t). */
  takenAt: number;
  /** First freeze started to last thaw, in ms. */
  freezeWindowMs: number;
  freezers: string[];
}

export interface BackupEntry {
  id: string;
  created: string;
  size: number;
  location: string;
  sha256?: string;
  host?: string;
}

export interface HistoryEntry {
  id: string;
  result: 'success' | 'failed';
  startedAt: number;
  finishedAt: number;
  durationMs: number;
  size?: number;
  /** Snapshot mode: how long the databases were frozen. */
  freezeWindowMs?: number;
  step?: string;
  reason?: string;
}

/** What an actor's failure carries into the machine. */
export interface StepFailure {
  reason: string;
  at: number;
}

export function failureOf(error: unknown): StepFailure {
  if (error && typeof error === 'object' && 'reason' in error && 'at' in error) {
    const e = error as StepFailure;
    return { reason: String(e.reason), at: Number(e.at) };
  }
  return { reason: error instanceof Error ? error.message : String(error), at: Number.NaN };
}
