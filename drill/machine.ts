/**
 * Making drill machines' disks: install-machine.sh installs Debian onto a new
 * image on this host (loop device, no device-mapper needed), then the builder
 * boots once to make the LVM logical volume for /home, which this host cannot.
 * And the backup disk, an XFS file system the machines mount at /backup (the
 * medium of npm run drill -- --target disk; the default is an SMB share: share.ts).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { run } from '../src/system/run.js';
import { DrillFailure } from './failure.js';
import { boot, serialText } from './qemu.js';
import type { Template } from './template.js';

export interface MachineSpec {
  /** The drill's name for it: "original", "replacement". */
  role: string;
  hostname: string;
  diskSize: string;
  bootSize: string;
  rootSize: string;
  homeSize: string;
}

export interface Machine {
  spec: MachineSpec;
  disk: string;
  uuids: { root: string; boot: string; home: string };
}

export interface InstallInputs {
  template: Template;
  work: string;
  drillRoot: string;
  packageRoot: string;
  node: string;
  /** Its configuration (none: "syn3-backup install" writes its example). */
  config?: string;
  /** The backup disk's file system, mounted at /backup (the file target). */
  targetUuid?: string;
  /** The smb target's credentials file, installed 0600. */
  smbCredentials?: string;
  /** The network card's address (none: a machine without network). */
  networkAddress?: string;
}

export const VOLUME_GROUP = 'vg0';

export async function installMachine(spec: MachineSpec, i: InstallInputs): Promise<Machine> {
  const disk = join(i.work, `${spec.role}.img`);
  const home = randomUUID();
  const { stdout } = await run(join(i.drillRoot, 'host', 'install-machine.sh'), [], {
    env: {
      DISK: disk,
      DISK_SIZE: spec.diskSize,
      BOOT_SIZE: spec.bootSize,
      ROOT_SIZE: spec.rootSize,
      TEMPLATE: i.template.tar,
      MACHINE_HOSTNAME: spec.hostname,
      HOME_UUID: home,
      PKG: i.packageRoot,
      NODE: i.node,
      GUEST: join(i.drillRoot, 'guest'),
      TARGET_UUID: i.targetUuid ?? '',
      CONFIG: i.config ?? '',
      SMB_CREDENTIALS: i.smbCredentials ?? '',
      NETWORK_ADDRESS: i.networkAddress ?? '',
    },
    timeoutMs: 20 * 60_000,
  });
  const value = (key: string) => new RegExp(`^${key}=(.+)$`, 'm').exec(stdout)?.[1];
  const root = value('ROOT_UUID');
  const bootUuid = value('BOOT_UUID');
  if (!root || !bootUuid) throw new DrillFailure(`install-machine.sh printed no UUIDs for ${spec.role}: ${stdout.slice(-300)}`);
  await makeHomeVolume(spec, disk, home, i);
  return { spec, disk, uuids: { root, boot: bootUuid, home } };
}

/** The builder's one boot: pvcreate, vgcreate, lvcreate and mkfs.xfs with the UUID fstab names. */
async function makeHomeVolume(spec: MachineSpec, disk: string, uuid: string, i: InstallInputs): Promise<void> {
  const serialLog = join(i.work, `${spec.role}-builder.serial.log`);
  await boot({
    name: `${spec.role} disk builder`,
    disks: [{ file: disk }],
    serialLog,
    timeoutMs: 120_000,
    memoryMb: 1024,
    direct: {
      kernel: i.template.kernel,
      initrd: i.template.builderInitrd,
      append: `console=ttyS0 quiet panic=-1 drill.pv=/dev/vda3 drill.vg=${VOLUME_GROUP} drill.lv=home drill.lvsize=${spec.homeSize} drill.uuid=${uuid} drill.label=home`,
    },
  });
  if (!/=== BUILDER DONE rc=0/.test(serialText(serialLog))) {
    throw new DrillFailure(`the builder could not make /home's logical volume on ${disk}`, serialLog);
  }
}

/** The backup disk: one XFS file system, which the machines mount at /backup (the file target). */
export async function makeBackupDisk(file: string, size: string): Promise<string> {
  const uuid = randomUUID();
  await run('truncate', ['-s', size, file]);
  await run('mkfs.xfs', ['-q', '-L', 'backup', '-m', `uuid=${uuid}`, file]);
  return uuid;
}
