// A whole disk with a partition table on a loop device, standing in for a
// server's boot disk: GRUB's boot code goes into its MBR, /boot is its first
// partition. `losetup -P` makes no partitions on every kernel, so `partx -a`
// adds them; `partx -d` removes them before the loop device is detached.
import { rmSync } from 'node:fs';
import { mkdir, open, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, execaSync } from 'execa';
import { XFS_MIN_MIB, type XfsVolume } from './sandbox.js';

export interface PartitionedDiskOptions {
  /** Label and UUID of the XFS file system on the first partition. */
  label?: string;
  uuid?: string;
}

export interface PartitionedDisk {
  readonly image: string;
  /** The whole disk, /dev/loopN: where GRUB writes its boot code. */
  readonly disk: string;
  /** The first partition, /dev/loopNp1, formatted XFS and mounted on <dir>/<name>. */
  readonly partition: XfsVolume;
  /** The first 512 bytes of the disk. */
  readMbr(): Promise<Buffer>;
  /** Unmounts (lazily if busy), removes the partitions, detaches and deletes the image. Idempotent. */
  destroy(): Promise<void>;
}

/** GRUB's core.img lives in the gap between the MBR and the first partition: 1 MiB, as fdisk makes it. */
export const FIRST_PARTITION_START_SECTOR = 2048;

const live = new Set<LoopPartitionedDisk>();

function destroyAllSync(): void {
  for (const disk of [...live].reverse()) {
    try {
      disk.destroySync();
    } catch {
      // Nothing more can be done while the process is exiting.
    }
  }
}

function watch(disk: LoopPartitionedDisk): void {
  if (live.size === 0) process.on('exit', destroyAllSync);
  live.add(disk);
}

function unwatch(disk: LoopPartitionedDisk): void {
  if (live.delete(disk) && live.size === 0) process.off('exit', destroyAllSync);
}

/** Destroys every partitioned disk still alive in this process (for afterAll). Never throws. */
export async function destroyAllDisks(): Promise<void> {
  for (const disk of [...live].reverse()) await disk.destroy().catch((e: unknown) => console.warn('partitioned disk cleanup:', e));
}

class PartitionVolume implements XfsVolume {
  mounted = false;

  constructor(
    readonly image: string,
    readonly device: string,
    readonly mountPoint: string,
    readonly label: string | undefined,
  ) {}

  async mount(): Promise<void> {
    if (this.mounted) return;
    await execa('mount', ['-t', 'xfs', this.device, this.mountPoint]);
    this.mounted = true;
  }

  async unmount(): Promise<void> {
    if (!this.mounted) return;
    await execa('umount', [this.mountPoint]);
    this.mounted = false;
  }

  /** The disk owns the partition: it is destroyed with the disk. */
  async destroy(): Promise<void> {
    throw new Error('destroy the PartitionedDisk, not its partition');
  }
}

class LoopPartitionedDisk implements PartitionedDisk {
  #attached = true;
  #partitioned = false;
  #gone = false;

  constructor(
    readonly image: string,
    readonly disk: string,
    readonly partition: PartitionVolume,
  ) {
    watch(this);
  }

  markPartitioned(): void {
    this.#partitioned = true;
  }

  async readMbr(): Promise<Buffer> {
    const handle = await open(this.disk, 'r');
    try {
      const buffer = Buffer.alloc(512);
      await handle.read(buffer, 0, 512, 0);
      return buffer;
    } finally {
      await handle.close();
    }
  }

  async destroy(): Promise<void> {
    if (this.#gone) return;
    // Whatever the test left mounted there (the restore mounts it again itself).
    for (let i = 0; i < 5 && (await mountedAt(this.partition.mountPoint)); i++) {
      const r = await execa('umount', [this.partition.mountPoint], { reject: false });
      if (r.failed) await execa('umount', ['-l', this.partition.mountPoint], { reject: false });
    }
    this.partition.mounted = false;
    if (this.#partitioned) await execa('partx', ['-d', this.disk], { reject: false });
    this.#partitioned = false;
    if (this.#attached) await execa('losetup', ['-d', this.disk]);
    this.#attached = false;
    await rm(this.image, { force: true });
    await rmdir(this.partition.mountPoint).catch(() => undefined);
    this.#gone = true;
    unwatch(this);
  }

  destroySync(): void {
    if (this.#gone) return;
    const r = execaSync('umount', [this.partition.mountPoint], { reject: false });
    if (r.failed) execaSync('umount', ['-l', this.partition.mountPoint], { reject: false });
    if (this.#partitioned) execaSync('partx', ['-d', this.disk], { reject: false });
    if (this.#attached) execaSync('losetup', ['-d', this.disk], { reject: false });
    rmSync(this.image, { force: true });
    this.#gone = true;
    unwatch(this);
  }
}

async function mountedAt(dir: string): Promise<boolean> {
  const r = await execa('findmnt', ['-n', '--mountpoint', dir], { reject: false });
  return r.exitCode === 0 && r.stdout.trim() !== '';
}

async function waitForBlockDevice(path: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if ((await stat(path).catch(() => undefined))?.isBlockDevice()) return;
    await sleep(100);
  }
  throw new Error(`${path} did not appear after partx -a`);
}

/**
 * Creates `<dir>/<name>.img` (sparse), an MBR partition table with one Linux
 * partition from 1 MiB to the end, attaches it, adds the partition with partx,
 * formats it XFS and mounts it on `<dir>/<name>`.
 */
export async function createPartitionedXfsDisk(
  dir: string,
  name: string,
  sizeMiB: number,
  opts: PartitionedDiskOptions = {},
): Promise<PartitionedDisk> {
  if (process.getuid?.() !== 0) throw new Error('loop devices and mount need root; run the integration tests as root');
  // The partition is 1 MiB smaller than the disk, and XFS wants its 300 MiB.
  if (!Number.isInteger(sizeMiB) || sizeMiB < XFS_MIN_MIB + 2)
    throw new Error(`a partitioned disk needs an integer size >= ${XFS_MIN_MIB + 2} MiB, got ${sizeMiB}`);
  const image = join(dir, `${name}.img`);
  const mountPoint = join(dir, name);
  const handle = await open(image, 'wx');
  try {
    await handle.truncate(sizeMiB * 1024 * 1024);
  } finally {
    await handle.close();
  }
  try {
    await execa('sfdisk', ['--quiet', '--label', 'dos', image], { input: `start=${FIRST_PARTITION_START_SECTOR}, type=83\n` });
  } catch (error) {
    await rm(image, { force: true });
    throw error;
  }
  const disk = (
    await execa('losetup', ['--find', '--show', image]).catch(async (error: unknown) => {
      await rm(image, { force: true });
      throw error;
    })
  ).stdout.trim();
  const partition = new PartitionVolume(image, `${disk}p1`, mountPoint, opts.label);
  const made = new LoopPartitionedDisk(image, disk, partition);
  try {
    made.markPartitioned();
    // A loop device detached without its partitions dropped can still show p1 when reused: update it then.
    await execa('partx', ['-a', disk]).catch(() => execa('partx', ['-u', disk]));
    await waitForBlockDevice(partition.device);
    await execa('mkfs.xfs', [
      '-f',
      '-q',
      ...(opts.label ? ['-L', opts.label] : []),
      ...(opts.uuid ? ['-m', `uuid=${opts.uuid}`] : []),
      partition.device,
    ]);
    await mkdir(mountPoint, { recursive: true });
    await partition.mount();
  } catch (error) {
    await made.destroy().catch(() => undefined);
    throw error;
  }
  return made;
}

export interface FsIdentity {
  uuid?: string;
  label?: string;
  type?: string;
}

/** What is on a device now, probed directly (never blkid's cache). */
export async function probeFs(device: string): Promise<FsIdentity> {
  const r = await execa('blkid', ['-p', '-o', 'export', device], { reject: false });
  const fields = Object.fromEntries(
    r.stdout
      .split('\n')
      .map((l) => l.split('='))
      .filter((kv) => kv.length >= 2)
      .map(([k, ...v]) => [k!, v.join('=')]),
  );
  return {
    ...(fields.UUID ? { uuid: fields.UUID } : {}),
    ...(fields.LABEL ? { label: fields.LABEL } : {}),
    ...(fields.TYPE ? { type: fields.TYPE } : {}),
  };
}
