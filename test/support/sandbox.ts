// Throw-away XFS file systems on loop devices, so integration tests can back up
// and restore real mounts without touching the machine's own /, /boot or /home.
import { mkdir, mkdtemp, open, rm, rmdir } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, execaSync } from 'execa';
import { isMountPoint } from '../../src/system/mounts.js';

/** mkfs.xfs (xfsprogs >= 5.19) refuses file systems smaller than 300 MB. */
export const XFS_MIN_MIB = 300;
const XFS_MAX_LABEL = 12;

export interface XfsVolumeOptions {
  label?: string;
  uuid?: string;
}

export interface XfsVolume {
  readonly image: string;
  readonly device: string;
  readonly mountPoint: string;
  readonly label?: string;
  readonly mounted: boolean;
  mount(): Promise<void>;
  unmount(): Promise<void>;
  /** Unmounts (lazily if busy), detaches the loop device and deletes the image. Idempotent. */
  destroy(): Promise<void>;
}

export interface SandboxOptions {
  rootMiB?: number;
  bootMiB?: number;
  homeMiB?: number;
}

export interface Sandbox {
  readonly dir: string;
  readonly root: XfsVolume;
  readonly boot: XfsVolume;
  readonly home: XfsVolume;
  /** Destroys every volume and removes dir. Idempotent and never throws. */
  cleanup(): Promise<void>;
}

interface Leak {
  destroy(): Promise<void>;
  destroySync(): void;
}

// Process-wide so a failing test cannot leave loop devices behind for the next run.
const leaks = new Set<Leak>();
// Vitest stops its fork workers with SIGTERM, which skips 'exit' handlers.
const FATAL_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

function onFatalSignal(signal: NodeJS.Signals): void {
  destroyAllSync();
  leaks.clear();
  setSafetyNet(false);
  // Re-raise so the process still dies of the signal, unless someone else handles it.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

// Hooks exist only while something needs cleaning, so they never change how a clean process exits.
function setSafetyNet(on: boolean): void {
  const method = on ? 'on' : 'off';
  process[method]('exit', destroyAllSync);
  for (const signal of FATAL_SIGNALS) process[method](signal, onFatalSignal);
}

function track(leak: Leak): () => void {
  if (leaks.size === 0) setSafetyNet(true);
  leaks.add(leak);
  return () => {
    if (leaks.delete(leak) && leaks.size === 0) setSafetyNet(false);
  };
}

// Newest first, so a sandbox is torn down before the volumes it was built from.
function newestFirst(): Leak[] {
  return [...leaks].reverse();
}

/** Last-resort synchronous cleanup; 'exit' handlers cannot await. */
function destroyAllSync(): void {
  for (const leak of newestFirst()) {
    try {
      leak.destroySync();
    } catch {
      // Nothing more can be done while the process is exiting.
    }
  }
}

/** Destroys every volume and sandbox still alive in this process (for afterAll). Never throws. */
export async function destroyAll(): Promise<void> {
  for (const leak of newestFirst()) await leak.destroy().catch(warn);
}

/** Number of volumes and sandboxes not yet destroyed, for leak assertions. */
export function liveResourceCount(): number {
  return leaks.size;
}

function warn(error: unknown): void {
  console.warn('sandbox cleanup:', error);
}

function assertRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('loop devices and mount need root; run the integration tests as root');
  }
}

function validate(name: string, sizeMiB: number, opts: XfsVolumeOptions): void {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`bad volume name ${JSON.stringify(name)}`);
  if (!Number.isInteger(sizeMiB) || sizeMiB < XFS_MIN_MIB) {
    throw new Error(`XFS volume ${name} needs an integer size >= ${XFS_MIN_MIB} MiB, got ${sizeMiB}`);
  }
  if (opts.label !== undefined && opts.label.length > XFS_MAX_LABEL) {
    throw new Error(`XFS label ${JSON.stringify(opts.label)} is longer than ${XFS_MAX_LABEL}`);
  }
}

async function createSparseImage(image: string, sizeMiB: number): Promise<void> {
  const handle = await open(image, 'wx');
  try {
    await handle.truncate(sizeMiB * 1024 * 1024);
  } finally {
    await handle.close();
  }
}

function mkfsArgs(device: string, opts: XfsVolumeOptions): string[] {
  const args = ['-f', '-q'];
  if (opts.label !== undefined) args.push('-L', opts.label);
  if (opts.uuid !== undefined) args.push('-m', `uuid=${opts.uuid}`);
  return [...args, device];
}

class LoopXfsVolume implements XfsVolume {
  #mounted = false;
  #attached = true;
  #imagePresent = true;
  readonly #untrack: () => void;

  constructor(
    readonly image: string,
    readonly device: string,
    readonly mountPoint: string,
    readonly label: string | undefined,
  ) {
    this.#untrack = track(this);
  }

  get mounted(): boolean {
    return this.#mounted;
  }

  async mount(): Promise<void> {
    if (this.#mounted) return;
    await execa('mount', ['-t', 'xfs', this.device, this.mountPoint]);
    this.#mounted = true;
  }

  async unmount(): Promise<void> {
    if (!this.#mounted) return;
    await execa('umount', [this.mountPoint]);
    this.#mounted = false;
  }

  async destroy(): Promise<void> {
    const errors: unknown[] = [];
    await this.#unmountForcefully().catch((e: unknown) => errors.push(e));
    await this.#detach().catch((e: unknown) => errors.push(e));
    await this.#removeImage().catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw new AggregateError(errors, `destroying volume ${this.image} failed`);
    // Only an empty, unmounted mount point goes; rmdir never deletes content.
    await rmdir(this.mountPoint).catch(() => undefined);
    this.#untrack();
  }

  destroySync(): void {
    if (this.#mounted) {
      const r = execaSync('umount', [this.mountPoint], { reject: false });
      if (r.failed) execaSync('umount', ['-l', this.mountPoint], { reject: false });
      this.#mounted = false;
    }
    if (this.#attached) execaSync('losetup', ['-d', this.device], { reject: false });
    this.#attached = false;
    rmSync(this.image, { force: true });
    this.#imagePresent = false;
    this.#untrack();
  }

  async #unmountForcefully(): Promise<void> {
    // What is tested may have unmounted it itself.
    if (this.#mounted && !isMountPoint(this.mountPoint)) this.#mounted = false;
    if (!this.#mounted) return;
    const r = await execa('umount', [this.mountPoint], { reject: false });
    // A lazy unmount still lets the loop device go once the last user closes it.
    if (r.failed) await execa('umount', ['-l', this.mountPoint]);
    this.#mounted = false;
  }

  async #detach(): Promise<void> {
    if (!this.#attached) return;
    await execa('losetup', ['-d', this.device]);
    this.#attached = false;
  }

  async #removeImage(): Promise<void> {
    if (!this.#imagePresent) return;
    await rm(this.image, { force: true });
    this.#imagePresent = false;
  }
}

/** Creates `<dir>/<name>.img`, formats it as XFS on a loop device and mounts it on `<dir>/<name>`. */
export async function createXfsVolume(dir: string, name: string, sizeMiB: number, opts: XfsVolumeOptions = {}): Promise<XfsVolume> {
  return createLoopVolume(dir, name, sizeMiB, opts);
}

async function createLoopVolume(dir: string, name: string, sizeMiB: number, opts: XfsVolumeOptions): Promise<LoopXfsVolume> {
  assertRoot();
  validate(name, sizeMiB, opts);
  const image = join(dir, `${name}.img`);
  const mountPoint = join(dir, name);
  await createSparseImage(image, sizeMiB);
  const device = await attachLoop(image);
  const volume = new LoopXfsVolume(image, device, mountPoint, opts.label);
  try {
    await execa('mkfs.xfs', mkfsArgs(device, opts));
    await mkdir(mountPoint, { recursive: true });
    await volume.mount();
  } catch (error) {
    await volume.destroy().catch(() => undefined);
    throw error;
  }
  return volume;
}

async function attachLoop(image: string): Promise<string> {
  try {
    const { stdout } = await execa('losetup', ['--find', '--show', image]);
    return stdout.trim();
  } catch (error) {
    await rm(image, { force: true });
    throw error;
  }
}

/** A small XFS file system to back up into or restore onto. */
export function createTargetVolume(dir: string, sizeMiB = XFS_MIN_MIB, name = 'target'): Promise<XfsVolume> {
  return createXfsVolume(dir, name, sizeMiB, { label: 'sbtarget' });
}

class TempSandbox implements Sandbox {
  #cleaned = false;
  readonly #untrack: () => void;

  constructor(
    readonly dir: string,
    readonly root: LoopXfsVolume,
    readonly boot: LoopXfsVolume,
    readonly home: LoopXfsVolume,
  ) {
    this.#untrack = track(this);
  }

  get #volumes(): LoopXfsVolume[] {
    return [this.home, this.boot, this.root];
  }

  async cleanup(): Promise<void> {
    if (this.#cleaned) return;
    await destroyQuietly(this.#volumes);
    await removeUnlessMounted(this.dir, this.#volumes).catch(warn);
    this.#cleaned = true;
    this.#untrack();
  }

  destroy(): Promise<void> {
    return this.cleanup();
  }

  destroySync(): void {
    for (const volume of this.#volumes) volume.destroySync();
    if (!this.#volumes.some((v) => v.mounted)) rmSync(this.dir, { recursive: true, force: true });
    this.#cleaned = true;
    this.#untrack();
  }
}

async function destroyQuietly(volumes: XfsVolume[]): Promise<void> {
  for (const volume of volumes) await volume.destroy().catch(warn);
}

// A recursive rm through a volume that would not unmount would empty that volume instead.
async function removeUnlessMounted(dir: string, volumes: XfsVolume[]): Promise<void> {
  const stuck = volumes.filter((v) => v.mounted).map((v) => v.mountPoint);
  if (stuck.length > 0) throw new Error(`left ${dir} in place: still mounted ${stuck.join(', ')}`);
  await rm(dir, { recursive: true, force: true });
}

/** A temp dir holding three fresh XFS volumes standing in for /, /boot and /home. */
export async function createSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  assertRoot();
  const dir = await mkdtemp(join(tmpdir(), 'syn3-sandbox-'));
  const made: LoopXfsVolume[] = [];
  const make = async (name: string, sizeMiB: number | undefined, label: string): Promise<LoopXfsVolume> => {
    const volume = await createLoopVolume(dir, name, sizeMiB ?? XFS_MIN_MIB, { label });
    made.push(volume);
    return volume;
  };
  try {
    // Sequential: parallel `losetup --find` calls can race for the same free device.
    const root = await make('root', opts.rootMiB, 'sbroot');
    const boot = await make('boot', opts.bootMiB, 'sbboot');
    const home = await make('home', opts.homeMiB, 'sbhome');
    return new TempSandbox(dir, root, boot, home);
  } catch (error) {
    await destroyQuietly(made.reverse());
    await removeUnlessMounted(dir, made).catch(warn);
    throw error;
  }
}
