/**
 * What a lane guest boots: the drill's cached Debian template and cloud kernel
 * (drill/template.ts), made into the lane's own root image and initramfs, both
 * cached beside the template and rebuilt when missing. The image's name holds
 * the template's key, node's version and a hash of the lane's guest files, so a
 * change to any of them builds a new one. Guests boot it with snapshot=on: none
 * of them changes it. The program under test is not in it: each boot gets the
 * current build on a disk of its own (programDisk).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { build } from 'esbuild';
import { run } from '../../src/system/run.js';
import { cacheDir, ensureTemplate, guestNode } from '../../drill/template.js';
import { REPO_ROOT } from '../support/cli.js';

/** The repository, also when this runs compiled from dist/ (the bench): the guest's sources are read from it. */
export { REPO_ROOT };
const GUEST_DIR = join(REPO_ROOT, 'test', 'lane', 'guest');
/** Room on the root for what the specs install or write there (sparse: costs nothing until written). */
const ROOT_SPARE_MIB = 2048;

/** LVM without udev or dmeventd: it makes its own device nodes and waits for no one. */
const LVM_CONF = `# the test lane's LVM: no udev, no lvmetad, no dmeventd (test/lane/image.ts)
devices { obtain_device_list_from_udev = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { locking_dir = "/run/lock/lvm" }
`;

/** The wrapper an administrator's install would write: the current build on the program disk, with the guest's node. */
const WRAPPER = `#!/bin/sh
exec /usr/local/bin/node /opt/syn3-backup/dist/bin/syn3-backup.mjs "$@"
`;

/**
 * What the tape specs need and the drill's template lacks (test/lane/tape-server.ts):
 * tgt (a user-space SCSI target that emulates tape drives and libraries),
 * open-iscsi (the initiator that gives the guest's st driver a /dev/nst0),
 * mt-st, mtx, lsscsi, sg3-utils, and the libraries they need beyond the
 * template's; drbd-utils for the DRBD pair (its drbdadm drives the guest
 * kernel's DRBD 8.4). A lane-only layer: the drill's machines stay as they are. The
 * packages are fetched with apt-get download into the cache (once) and
 * unpacked into the root image with dpkg-deb -x; no maintainer script runs,
 * so what they would make is made in buildRoot (mt's alternative, the
 * initiator's name).
 */
export const LANE_DEBS = [
  'tgt',
  'libaio1',
  'libibverbs1',
  'librdmacm1',
  'libnl-3-200',
  'libnl-route-3-200',
  'open-iscsi',
  'libisns0',
  'libopeniscsiusr',
  'mt-st',
  'mtx',
  'lsscsi',
  'sg3-utils',
  'libsgutils2-1.46-2',
  'drbd-utils',
];

export interface LaneImage {
  kernel: string;
  /** The kernel's release, as uname -r says it in the guest. */
  kernelRelease: string;
  initrd: string;
  root: string;
  /** What this call had to build (empty when all came from the cache), each with its seconds. */
  built: { what: string; seconds: number }[];
}

export async function ensureLaneImage(log: (line: string) => void): Promise<LaneImage> {
  const built: LaneImage['built'] = [];
  let t = performance.now();
  const template = await ensureTemplate(join(REPO_ROOT, 'drill'), log);
  if (template.built.length) built.push({ what: `drill template (${template.built.join(', ')})`, seconds: since(t) });
  t = performance.now();
  const node = await guestNode();
  const kernelRelease = basename(template.kernel).replace(/^vmlinuz-/, '');
  const agent = await bundleAgent();
  const debs = await ensureLaneDebs(log);
  const key = hash(
    JSON.stringify({
      template: basename(template.tar),
      node: basename(node),
      build: readFileSync(join(REPO_ROOT, 'test', 'lane', 'image.ts'), 'utf8'),
      lvm: LVM_CONF,
      wrapper: WRAPPER,
      agent,
      debs: await readdir(debs),
      init: readFileSync(join(GUEST_DIR, 'init.sh'), 'utf8'),
    }),
  );
  const dir = cacheDir();
  const root = join(dir, `lane-root-${key}.img`);
  if (!existsSync(root)) {
    log(`building the lane's root image (cached as ${root})`);
    await buildRoot(template.tar, node, agent, debs, root);
    await removeOthers(dir, 'lane-root-', basename(root));
    built.push({ what: 'lane root image', seconds: since(t) });
  }
  t = performance.now();
  const script = join(GUEST_DIR, 'initramfs.sh');
  const initrd = join(dir, `lane-initrd-${hash(basename(template.tar) + readFileSync(script, 'utf8'))}.cpio.gz`);
  if (!existsSync(initrd)) {
    log("building the lane's initramfs");
    const part = `${initrd}.${process.pid}.part`;
    await run(script, [template.kernelRoot, part]);
    await rename(part, initrd);
    await removeOthers(dir, 'lane-initrd-', basename(initrd));
    built.push({ what: 'lane initramfs', seconds: since(t) });
  }
  return { kernel: template.kernel, kernelRelease, initrd, root, built };
}

/** The agent in one file of plain JavaScript for the guest's node. */
async function bundleAgent(): Promise<string> {
  return bundleForGuest(join(GUEST_DIR, 'agent.ts'));
}

/**
 * A TypeScript entry point and all it imports as one ES module for the guest's
 * node (the agent; the tape specs' runner). Bundled CommonJS dependencies get
 * a require() of their own.
 */
export async function bundleForGuest(entry: string): Promise<string> {
  const r = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  });
  return r.outputFiles[0]!.text;
}

/** LANE_DEBS as .deb files in the cache (apt-get download; apt-get update first when its lists are missing or old). */
async function ensureLaneDebs(log: (line: string) => void): Promise<string> {
  const dir = join(cacheDir(), `lane-debs-${hash(JSON.stringify(LANE_DEBS))}`);
  if (existsSync(join(dir, 'done'))) return dir;
  log(`downloading the lane's extra packages (${LANE_DEBS.join(' ')}) into ${dir}`);
  const part = `${dir}.${process.pid}.part`;
  await rm(part, { recursive: true, force: true });
  await mkdir(part, { recursive: true });
  // apt's sandbox user must be able to write there.
  await chmod(part, 0o777);
  const download = () => run('apt-get', ['download', '-q', ...LANE_DEBS], { cwd: part, timeoutMs: 10 * 60_000 });
  try {
    await download();
  } catch {
    await run('apt-get', ['update', '-q'], { timeoutMs: 10 * 60_000 });
    await download();
  }
  await chmod(part, 0o755);
  await writeFile(join(part, 'done'), `${LANE_DEBS.join('\n')}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(part, dir);
  await removeOthers(cacheDir(), 'lane-debs-', basename(dir));
  return dir;
}

/**
 * The packages unpacked over the template. Each goes to a folder of its own
 * first and then through tar with --keep-directory-symlink: dpkg-deb -x
 * straight into the root would replace merged /usr's /bin and /sbin links.
 */
async function unpackDebs(debs: string, stage: string): Promise<void> {
  const unpacked = await mkdtemp(join(tmpdir(), 'syn3-lane-debs-'));
  try {
    for (const f of (await readdir(debs)).filter((n) => n.endsWith('.deb'))) await run('dpkg-deb', ['-x', join(debs, f), unpacked]);
    await run('tar', ['-C', unpacked, '-cf', `${unpacked}.tar`, '.']);
    await run('tar', ['-C', stage, '--keep-directory-symlink', '-xf', `${unpacked}.tar`]);
  } finally {
    await rm(unpacked, { recursive: true, force: true });
    await rm(`${unpacked}.tar`, { force: true });
  }
  // What the packages' maintainer scripts would have made.
  await run('ln', ['-sfn', 'mt-st', join(stage, 'usr/bin/mt')]);
  await writeFile(join(stage, 'etc/iscsi/initiatorname.iscsi'), 'InitiatorName=iqn.2024-01.lane:initiator\n', { mode: 0o600 });
}

/** The template unpacked, the tape packages, node, the init, the agent, busybox, LVM's settings; then mkfs.ext4 -d: no loop device, no mount. */
async function buildRoot(templateTar: string, node: string, agent: string, debs: string, image: string): Promise<void> {
  const stage = await mkdtemp(join(tmpdir(), 'syn3-lane-root-'));
  const part = `${image}.${process.pid}.part`;
  try {
    await chmod(stage, 0o755);
    await run('tar', ['-xpf', templateTar, '-C', stage, '--numeric-owner', '--xattrs', '--xattrs-include=*'], { timeoutMs: 10 * 60_000 });
    await unpackDebs(debs, stage);
    await copyFile(node, join(stage, 'usr/local/bin/node'));
    await chmod(join(stage, 'usr/local/bin/node'), 0o755);
    await writeFile(join(stage, 'usr/local/bin/syn3-backup'), WRAPPER, { mode: 0o755 });
    await mkdir(join(stage, 'lane'), { mode: 0o755 });
    await writeFile(join(stage, 'lane/agent.mjs'), agent, { mode: 0o644 });
    await copyFile(join(GUEST_DIR, 'init.sh'), join(stage, 'lane/init'));
    await chmod(join(stage, 'lane/init'), 0o755);
    await copyFile('/bin/busybox', join(stage, 'lane/busybox'));
    await chmod(join(stage, 'lane/busybox'), 0o755);
    await writeFile(join(stage, 'etc/lvm/lvm.conf'), LVM_CONF);
    await mkdir(join(stage, 'opt/syn3-backup'), { recursive: true, mode: 0o755 });
    await writeFile(join(stage, 'etc/hostname'), 'lane\n');
    await writeFile(join(stage, 'etc/hosts'), '127.0.0.1\tlocalhost\n127.0.1.1\tlane\n');
    await writeFile(join(stage, 'etc/fstab'), '# the test lane mounts what it needs in /lane/init\n');
    const usedMiB = Number((await run('du', ['-sm', '--apparent-size', stage])).stdout.split(/\s/)[0]);
    await run('truncate', ['-s', `${Math.ceil(usedMiB * 1.15) + ROOT_SPARE_MIB}M`, part]);
    await run('mkfs.ext4', ['-q', '-L', 'lane-root', '-E', 'root_owner=0:0', '-d', stage, part], { timeoutMs: 10 * 60_000 });
    await rename(part, image);
  } finally {
    await rm(stage, { recursive: true, force: true });
    await rm(part, { force: true });
  }
}

/**
 * The disk that brings the current build into a guest: package.json, boot/ and
 * dist/bin/ (the bundled CLI and its chunks) laid out as in the repository,
 * plus the folders a spec names, as an ext4 image the guest mounts read-only
 * at /opt/syn3-backup. Everything on it is root's and not writable by others,
 * as the trust rule wants of what the program runs from.
 */
export async function programDisk(file: string, share: string[] = []): Promise<void> {
  const cli = join(REPO_ROOT, 'dist/bin/syn3-backup.mjs');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first (npm test does)`);
  const stage = `${file}.d`;
  await rm(stage, { recursive: true, force: true });
  await mkdir(join(stage, 'dist'), { recursive: true });
  try {
    for (const path of ['package.json', 'boot', 'dist/bin', ...share]) {
      const from = resolve(REPO_ROOT, path);
      const rel = relative(REPO_ROOT, from);
      if (rel.startsWith('..') || !existsSync(from)) throw new Error(`cannot share ${path}: not a path inside ${REPO_ROOT}`);
      await mkdir(dirname(join(stage, rel)), { recursive: true });
      await run('cp', ['-a', from, join(stage, rel)]);
    }
    await run('chown', ['-R', '0:0', stage]);
    await run('chmod', ['-R', 'go-w', stage]);
    await chmod(stage, 0o755);
    const usedMiB = Number((await run('du', ['-sm', '--apparent-size', stage])).stdout.split(/\s/)[0]);
    await run('truncate', ['-s', `${Math.ceil(usedMiB * 1.3) + 16}M`, file]);
    await run('mkfs.ext4', ['-q', '-L', 'lane-prog', '-E', 'root_owner=0:0', '-d', stage, file]);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

/** Older lane images, initramfs files and package folders in the cache: each is a new one's predecessor. */
async function removeOthers(dir: string, prefix: string, keep: string): Promise<void> {
  for (const f of await readdir(dir)) {
    if (f.startsWith(prefix) && f !== keep && !f.endsWith('.part')) await rm(join(dir, f), { recursive: true, force: true });
  }
}

function since(t: number): number {
  return (performance.now() - t) / 1000;
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}
