// Deterministic file trees holding every kind of metadata a backup must keep,
// so a round trip can be checked with tree-compare.ts.
import { chmod, lchown, link, lutimes, mkdir, open, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

/** Users and groups that exist on no machine, so only numeric ids can preserve them. */
export const ORPHAN_UID = 54321;
export const ORPHAN_GID = 54322;

const MiB = 1024 * 1024;
/** security.capability v2 value for cap_net_raw+ep, as setcap would write it. */
export const CAP_NET_RAW_EP = '0x0100000200200000000000000000000000000000';
// Inside 1970..2037 because xfsdump keeps whole seconds in 32-bit fields.
const MTIME_MIN = Date.UTC(1980, 0, 1) / 1000;
const MTIME_MAX = Date.UTC(2030, 0, 1) / 1000;
export const EARLIEST_MTIME = 86_400; // 1970-01-02
export const LATEST_MTIME = 2_145_830_400; // 2037-12-31

/** mulberry32: tiny, fast and identical on every platform. */
class Prng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  int(min: number, max: number): number {
    return min + (this.next() % (max - min + 1));
  }

  bytes(length: number): Buffer {
    const words = new Uint32Array(Math.ceil(length / 4));
    for (let i = 0; i < words.length; i++) words[i] = this.next();
    return Buffer.from(words.buffer, 0, length);
  }
}

/** Thin helpers over fs and the attr/acl tools, all relative to one root. */
class TreeWriter {
  constructor(
    readonly root: string,
    readonly rng: Prng,
  ) {}

  path(rel: string): string {
    return join(this.root, rel);
  }

  async dir(rel: string, mode = 0o755): Promise<void> {
    await mkdir(this.path(rel), { recursive: true });
    await chmod(this.path(rel), mode);
  }

  // Explicit chmod so the result does not depend on the caller's umask.
  async file(rel: string, content: Buffer | string, mode = 0o644): Promise<void> {
    await writeFile(this.path(rel), content);
    await chmod(this.path(rel), mode);
  }

  async randomFile(rel: string, size: number, mode = 0o644): Promise<void> {
    await this.file(rel, this.rng.bytes(size), mode);
  }

  async hardLink(existing: string, rel: string): Promise<void> {
    await link(this.path(existing), this.path(rel));
  }

  async symlink(target: string, rel: string): Promise<void> {
    await symlink(target, this.path(rel));
  }

  async owner(rel: string, uid: number, gid: number): Promise<void> {
    await lchown(this.path(rel), uid, gid);
  }

  async fifo(rel: string): Promise<void> {
    await execa('mkfifo', ['-m', '0640', this.path(rel)]);
  }

  async device(rel: string, kind: 'c' | 'b', major: number, minor: number): Promise<void> {
    await execa('mknod', ['-m', '0600', this.path(rel), kind, String(major), String(minor)]);
  }

  /** value is passed in setfattr syntax: "text", 0x... hex or 0s... base64. */
  async xattr(rel: string, name: string, value: string): Promise<void> {
    await execa('setfattr', ['-h', '-n', name, '-v', value, '--', this.path(rel)]);
  }

  async acl(rel: string, spec: string): Promise<void> {
    await execa('setfacl', ['-m', spec, '--', this.path(rel)]);
  }

  async defaultAcl(rel: string, spec: string): Promise<void> {
    await execa('setfacl', ['-d', '-m', spec, '--', this.path(rel)]);
  }
}

/** Sorted so mtimes come out the same whatever order readdir returns. */
async function listTree(root: string, rel = ''): Promise<string[]> {
  const entries = await readdir(join(root, rel), { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const entry of entries) {
    const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await listTree(root, child)));
    out.push(child);
  }
  return out;
}

/** Children come before their parent, so stamping a child never disturbs a stamped parent. */
async function stampMtimes(w: TreeWriter, pinned: Record<string, number> = {}): Promise<void> {
  for (const rel of [...(await listTree(w.root)), '']) {
    const seconds = pinned[rel] ?? w.rng.int(MTIME_MIN, MTIME_MAX);
    await lutimes(w.path(rel), seconds, seconds);
  }
}

async function writeSparseFile(path: string, size: number, regions: Array<[offset: number, data: Buffer]>): Promise<void> {
  const handle = await open(path, 'w');
  try {
    for (const [offset, data] of regions) await handle.write(data, 0, data.length, offset);
    await handle.truncate(size);
  } finally {
    await handle.close();
  }
}

async function addRegularFiles(w: TreeWriter): Promise<void> {
  await w.dir('files');
  for (let i = 0; i < 5; i++) await w.randomFile(`files/small-${i}.bin`, w.rng.int(1, 8192));
  await w.file('files/empty', '');
  await w.dir('files/empty-dir');
  await w.randomFile('files/big-20MiB.bin', 20 * MiB);
  await w.dir('sparse');
  await writeSparseFile(w.path('sparse/holes.img'), 64 * MiB, [
    [1 * MiB, w.rng.bytes(4096)],
    [40 * MiB, w.rng.bytes(4096)],
  ]);
}

async function addManySmallFiles(w: TreeWriter): Promise<void> {
  for (let a = 0; a < 10; a++) {
    for (let b = 0; b < 4; b++) {
      const dir = `many/a${a}/b${b}`;
      await w.dir(dir);
      for (let f = 0; f < 5; f++) await w.randomFile(`${dir}/f${f}.dat`, w.rng.int(0, 3000));
    }
  }
}

async function addLinks(w: TreeWriter): Promise<void> {
  await w.dir('hardlinks');
  await w.dir('elsewhere');
  await w.randomFile('hardlinks/first', 5000);
  await w.hardLink('hardlinks/first', 'hardlinks/second');
  await w.hardLink('hardlinks/first', 'elsewhere/third');
  await w.dir('symlinks');
  await w.symlink('../files/small-0.bin', 'symlinks/relative');
  await w.symlink('/etc/hostname', 'symlinks/absolute');
  await w.symlink('no/such/target', 'symlinks/dangling');
  await w.symlink('../deep', 'symlinks/to-dir');
}

async function addSpecialFiles(w: TreeWriter): Promise<void> {
  await w.dir('special');
  await w.fifo('special/fifo');
  await w.device('special/char-null', 'c', 1, 3);
  await w.device('special/block-loop0', 'b', 7, 0);
}

async function addOwnersAndModes(w: TreeWriter): Promise<void> {
  await w.dir('owners');
  await w.randomFile('owners/orphan-file', 100);
  await w.owner('owners/orphan-file', ORPHAN_UID, ORPHAN_GID);
  await w.dir('owners/orphan-dir', 0o750);
  await w.randomFile('owners/orphan-dir/inside', 100);
  await w.owner('owners/orphan-dir', ORPHAN_GID, ORPHAN_UID);
  await w.symlink('orphan-file', 'owners/orphan-link');
  await w.owner('owners/orphan-link', ORPHAN_UID, ORPHAN_GID);
  await w.dir('modes');
  // chown clears setuid/setgid, so owners are set before those modes.
  await w.randomFile('modes/setuid-orphan', 64);
  await w.owner('modes/setuid-orphan', ORPHAN_UID, ORPHAN_GID);
  await chmod(w.path('modes/setuid-orphan'), 0o4750);
  await w.randomFile('modes/setuid', 64, 0o4755);
  await w.randomFile('modes/setgid', 64, 0o2755);
  await w.randomFile('modes/secret', 64, 0o600);
  await w.randomFile('modes/no-permissions', 64, 0o000);
  await w.dir('modes/sticky', 0o1777);
  await w.dir('modes/private', 0o700);
  await w.dir('modes/open', 0o755);
  await w.dir('modes/setgid-dir', 0o2775);
}

async function addAcls(w: TreeWriter): Promise<void> {
  await w.dir('acl');
  await w.randomFile('acl/access', 200, 0o640);
  await w.acl('acl/access', `u:${ORPHAN_UID}:rw-,g:${ORPHAN_GID}:r--,m::rw-`);
  await w.dir('acl/inherit');
  await w.defaultAcl('acl/inherit', `u:${ORPHAN_UID}:rwx,g:${ORPHAN_GID}:r-x,m::rwx`);
  // Created after the default ACL so they inherit it; no chmod, which would rewrite the mask.
  await writeFile(w.path('acl/inherit/child'), w.rng.bytes(300));
  await mkdir(w.path('acl/inherit/child-dir'));
}

async function addXattrs(w: TreeWriter): Promise<void> {
  await w.dir('xattr');
  await w.randomFile('xattr/file', 500);
  await w.xattr('xattr/file', 'user.comment', 'hello backup');
  await w.xattr('xattr/file', 'user.binary', `0x${w.rng.bytes(32).toString('hex')}00ff`);
  await w.xattr('xattr/file', 'user.empty', '');
  // Larger than an XFS inode's attr fork, so it lives in a separate attr block.
  await w.xattr('xattr/file', 'user.big', `0s${w.rng.bytes(3000).toString('base64')}`);
  await w.xattr('xattr/file', 'trusted.secret', 'only root sees this');
  await w.xattr('xattr', 'user.on-dir', 'directory value');
  // File capabilities are lost by a chown or a write, so they test the order a restore works in.
  await w.randomFile('xattr/capable', 500, 0o755);
  await w.xattr('xattr/capable', 'security.capability', CAP_NET_RAW_EP);
  await w.symlink('file', 'xattr/link');
  await w.xattr('xattr/link', 'trusted.on-link', 'symlink value');
}

/** A name of exactly 255 bytes, built from two-byte characters to catch char/byte confusion. */
export const LONG_NAME = `${'é'.repeat(127)}x`;

export const ODD_NAMES = [
  'with space',
  'new\nline',
  '-leading-dash',
  'café-ø-日本',
  LONG_NAME,
  'back\\slash',
  `quote's "double"`,
  'tab\there',
] as const;

async function addOddNames(w: TreeWriter): Promise<void> {
  await w.dir('names');
  for (const name of ODD_NAMES) await w.randomFile(`names/${name}`, 50);
  await w.dir('names/sub dir\nü');
  await w.randomFile('names/sub dir\nü/inner file', 50);
  // getfacl and getfattr escape such names in their output; these prove a parser copes.
  await w.xattr('names/new\nline', 'user.odd', 'newline name');
  await w.acl('names/back\\slash', `u:${ORPHAN_UID}:r--`);
  await w.xattr('names/sub dir\nü/inner file', 'trusted.odd', 'inside odd dir');
  await w.symlink('../names/café-ø-日本', 'symlinks/to-odd-name');
}

async function addDeepDirectory(w: TreeWriter): Promise<void> {
  const levels = Array.from({ length: 20 }, (_, i) => `d${String(i + 1).padStart(2, '0')}`);
  const deepest = `deep/${levels.join('/')}`;
  await w.dir(deepest);
  await w.randomFile(`${deepest}/leaf`, 123);
}

/** Fills root (an existing directory) with every kind of entry and metadata a backup must keep. */
export async function populateRichTree(root: string, seed = 1): Promise<void> {
  const w = new TreeWriter(root, new Prng(seed));
  await addRegularFiles(w);
  await addManySmallFiles(w);
  await addDeepDirectory(w);
  await addLinks(w);
  await addSpecialFiles(w);
  await addOwnersAndModes(w);
  await addAcls(w);
  await addXattrs(w);
  await addOddNames(w);
  // An unusual top directory too, so a restore must bring back the root's own metadata.
  await w.owner('', 0, ORPHAN_GID);
  await chmod(root, 0o750);
  await stampMtimes(w, { 'files/small-0.bin': EARLIEST_MTIME, 'files/small-1.bin': LATEST_MTIME });
}

/** Mount points and kernel file systems of a fake '/': kept as directories, never their content. */
export const SYSTEM_VOLATILE_DIRS = ['proc', 'sys', 'dev', 'run', 'tmp'] as const;
/** Files populateSystemTree puts where a system backup must not copy them. */
export const SYSTEM_JUNK = ['tmp/junk.txt', 'tmp/cache/blob.bin', 'run/syn3.pid', 'run/lock/subsys'] as const;

const FSTAB = `LABEL=sbroot / xfs defaults 0 1
LABEL=sbboot /boot xfs defaults 0 2
LABEL=sbhome /home xfs defaults 0 2
`;

async function addSystemConfig(w: TreeWriter): Promise<void> {
  await w.dir('etc');
  await w.file('etc/hostname', 'sandbox-host\n');
  await w.file('etc/fstab', FSTAB);
  await w.file('etc/passwd', 'root:x:0:0:root:/root:/bin/bash\n');
  await w.file('etc/shadow', 'root:*:19000:0:99999:7:::\n', 0o640);
  await w.dir('usr/lib');
  await w.file('usr/lib/os-release', 'ID=syn3-sandbox\n');
  await w.symlink('../usr/lib/os-release', 'etc/os-release');
  await w.dir('root', 0o700);
  await w.file('root/.bashrc', 'export PS1=sandbox\n');
}

async function addSystemBinaries(w: TreeWriter): Promise<void> {
  await w.dir('usr/bin');
  await w.randomFile('usr/bin/syn3-tool', 64 * 1024, 0o755);
  await w.hardLink('usr/bin/syn3-tool', 'usr/bin/syn3-tool-alias');
  await w.randomFile('usr/bin/syn3-ping', 16 * 1024, 0o755);
  await w.xattr('usr/bin/syn3-ping', 'security.capability', CAP_NET_RAW_EP);
  await w.symlink('usr/bin', 'bin');
}

async function addSystemState(w: TreeWriter): Promise<void> {
  await w.dir('var/lib/syn3');
  await w.randomFile('var/lib/syn3/state.db', 4096, 0o640);
  await w.xattr('var/lib/syn3/state.db', 'user.syn3.checksum', 'abc123');
  await w.acl('var/lib/syn3/state.db', `u:${ORPHAN_UID}:r--`);
  await w.dir('var/log');
  await w.file('var/log/syslog', 'boot ok\n', 0o640);
}

async function addVolatileDirs(w: TreeWriter): Promise<void> {
  for (const dir of SYSTEM_VOLATILE_DIRS) await w.dir(dir, dir === 'tmp' ? 0o1777 : 0o755);
  await w.dir('boot');
  await w.dir('home');
  await w.dir('tmp/cache');
  await w.dir('run/lock');
  for (const junk of SYSTEM_JUNK) await w.randomFile(junk, 256);
}

/** A fake '/' with configuration, binaries, state and volatile directories holding junk. */
export async function populateSystemTree(root: string, seed = 1): Promise<void> {
  const w = new TreeWriter(root, new Prng(seed));
  await addSystemConfig(w);
  await addSystemBinaries(w);
  await addSystemState(w);
  await addVolatileDirs(w);
  await stampMtimes(w);
}

export const KERNEL_VERSION = '6.1.0-syn3';

/** A fake /boot: kernel, initrd, grub configuration and the usual version symlinks. */
export async function populateBootTree(boot: string, seed = 1): Promise<void> {
  const w = new TreeWriter(boot, new Prng(seed));
  await w.randomFile(`vmlinuz-${KERNEL_VERSION}`, 5 * MiB);
  await w.randomFile(`initrd.img-${KERNEL_VERSION}`, 1 * MiB);
  await w.file(`config-${KERNEL_VERSION}`, 'CONFIG_XFS_FS=y\n');
  await w.symlink(`vmlinuz-${KERNEL_VERSION}`, 'vmlinuz');
  await w.symlink(`initrd.img-${KERNEL_VERSION}`, 'initrd.img');
  await w.dir('grub');
  await w.file('grub/grub.cfg', `menuentry 'syn3' {\n  linux /vmlinuz-${KERNEL_VERSION} root=LABEL=sbroot\n}\n`);
  await w.file('grub/grubenv', `# GRUB Environment Block\n${'#'.repeat(1024 - 25)}`);
  await stampMtimes(w);
}
