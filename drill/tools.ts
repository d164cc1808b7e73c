/** What the drill needs on this host, checked up front with one clear message. */
import { which } from '../src/system/tools.js';
import { UserError } from '../src/errors.js';

const NEEDED: Record<string, string> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  mmdebstrap: 'mmdebstrap',
  busybox: 'busybox-static',
  cpio: 'cpio',
  sfdisk: 'fdisk',
  partx: 'util-linux',
  'mkfs.xfs': 'xfsprogs',
  'mkfs.ext4': 'e2fsprogs',
  lvm: 'lvm2',
  strip: 'binutils',
};

export async function requireDrillTools(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new UserError('usage', 'the drill must run as root: it makes loop devices and file systems for its disk images', {
      hint: 'Run it as root (sudo npm run drill)',
    });
  }
  const missing: string[] = [];
  for (const [tool, pkg] of Object.entries(NEEDED)) if (!(await which(tool))) missing.push(pkg);
  if (missing.length) {
    throw new UserError('tool', `the drill needs ${[...new Set(missing)].join(', ')}`, {
      hint: `apt-get install ${[...new Set(missing)].join(' ')} (scripts/setup.sh --drill does it)`,
    });
  }
}
