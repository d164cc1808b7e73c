/**
 * The Debian 12 root file system every drill machine is installed from, built
 * with mmdebstrap from the Debian archive and cached: a cache entry is named
 * after the hash of everything that goes into it, so a changed package list
 * builds a new one and a missing one is simply rebuilt. Beside it, the kernel
 * (for the disk builder's short boots) and the builder's initramfs.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { run } from '../src/system/run.js';

/**
 * What an administrator's small server has, plus what syn3-backup drives (smbclient: the
 * drill backs up to an SMB share and restores from it), plus databases:
 * PostgreSQL for the drill's spool module and freezer, MariaDB for the test lane's snapshot-mode specs
 * (the drill's machines purge it: see install-machine.sh).
 */
export const PACKAGES = [
  'linux-image-cloud-amd64',
  'grub-pc-bin',
  'grub2-common',
  'initramfs-tools',
  'systemd-sysv',
  'udev',
  'kmod',
  'lvm2',
  'xfsprogs',
  'xfsdump',
  'rsync',
  'acl',
  'attr',
  'openssl',
  'smbclient',
  'zstd',
  'fdisk',
  'e2fsprogs',
  'procps',
  'postgresql-15',
  'mariadb-server',
  'mariadb-client',
];
const SUITE = 'bookworm';
const EXCLUDED_DOCS = ['/usr/share/man/*', '/usr/share/doc/*', '/usr/share/locale/*', '/usr/share/info/*'];

export interface Template {
  tar: string;
  kernel: string;
  /** The unpacked kernel modules (for the builder's initramfs). */
  kernelRoot: string;
  builderInitrd: string;
  built: string[];
}

export function cacheDir(): string {
  return process.env.SYN3_DRILL_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'syn3-backup-drill');
}

export function mirror(): string {
  return process.env.SYN3_DRILL_MIRROR ?? 'http://deb.debian.org/debian';
}

export async function ensureTemplate(drillRoot: string, log: (m: string) => void): Promise<Template> {
  const dir = cacheDir();
  await mkdir(dir, { recursive: true });
  const key = hash(JSON.stringify({ PACKAGES, SUITE, EXCLUDED_DOCS, mirror: mirror(), format: 1 }));
  const tar = join(dir, `debian-${SUITE}-${key}.tar`);
  const built: string[] = [];
  if (!isFile(tar)) {
    log(`building the Debian template with mmdebstrap (${PACKAGES.length} packages; cached as ${tar})`);
    // --format=tar: mmdebstrap would take a name not ending in .tar for a folder.
    const part = `${tar}.part`;
    await rm(part, { recursive: true, force: true });
    await rm(tar, { recursive: true, force: true });
    await run(
      'mmdebstrap',
      [
        '--variant=minbase',
        '--format=tar',
        `--include=${PACKAGES.join(',')}`,
        ...EXCLUDED_DOCS.map((p) => `--dpkgopt=path-exclude=${p}`),
        SUITE,
        part,
        mirror(),
      ],
      { timeoutMs: 30 * 60_000 },
    );
    await rename(part, tar);
    built.push('Debian template');
  }
  const kernelRoot = join(dir, `kernel-${key}`);
  if (!existsSync(join(kernelRoot, 'done'))) {
    log("unpacking the template's kernel and modules");
    await rm(kernelRoot, { recursive: true, force: true });
    await mkdir(kernelRoot, { recursive: true });
    await run('tar', ['-xf', tar, '-C', kernelRoot, '--wildcards', './boot/vmlinuz-*', './usr/lib/modules/*']);
    await run('touch', [join(kernelRoot, 'done')]);
    built.push('kernel');
  }
  const vmlinuz = readdirSync(join(kernelRoot, 'boot')).find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new Error(`no vmlinuz-* in ${kernelRoot}/boot`);
  const script = join(drillRoot, 'host', 'builder-initramfs.sh');
  const builderInitrd = join(dir, `builder-${key}-${hash(readFileSync(script, 'utf8'))}.cpio.gz`);
  if (!existsSync(builderInitrd)) {
    log("building the disk builder's initramfs");
    await run(script, [kernelRoot, `${builderInitrd}.part`]);
    await rename(`${builderInitrd}.part`, builderInitrd);
    built.push('builder initramfs');
  }
  return { tar, kernel: join(kernelRoot, 'boot', vmlinuz), kernelRoot, builderInitrd, built };
}

/** This host's node, without its debug symbols (half the size), for the guests (the drill's machines, the test lane). */
export async function guestNode(): Promise<string> {
  const file = join(cacheDir(), `node-${process.version}-${statSync(process.execPath).size}`);
  if (!existsSync(file)) {
    await mkdir(cacheDir(), { recursive: true });
    copyFileSync(process.execPath, `${file}.part`);
    await run('strip', ['--strip-debug', `${file}.part`]).catch(() => undefined);
    renameSync(`${file}.part`, file);
  }
  return file;
}

function isFile(path: string): boolean {
  return existsSync(path) && statSync(path).isFile();
}

function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}
