/**
 * A server in a lane guest that can burn and be restored: the disks of
 * snapshot-server.ts, paths.state on its root (the restore's state comes back
 * with /, as on a real server), and on a fresh installation the three commands
 * of a restore: restore --confirm, resume --initrd (what the initrd runs,
 * with the state in the system copy) and resume (the first boot). The backup
 * disk outlives the machine: a new guest gets the same image, only mounted.
 * GRUB is not reinstalled here (restore.grub_devices is empty: the lane boots
 * its own kernel); the drill boots a restored machine for real.
 */
import type { Guest, GuestRun } from './guest.js';
import { makeServerDisks, SERVER } from './snapshot-server.js';

/** Side by side, not nested: the initrd phase unmounts / to format it. */
export const MOUNTS = { root: '/srv/root', boot: '/srv/boot', home: '/srv/home' } as const;
export const STATE = `${MOUNTS.root}/var/lib/syn3-backup`;
const INITRD_CONFIG = '/etc/syn3-backup/initrd.yaml';
const MINUTES = 60_000;

export interface ServerOptions {
  host: string;
  mode?: 'spool' | 'snapshot';
  homeMiB?: number;
  /** restore.drbd_wait; default 2m. */
  drbdWait?: string;
  /** Mount options of the burning machine's /home (its quotas); the fresh installation mounts it plain. */
  homeOptions?: string;
}

function serverConfig(o: ServerOptions & { state: string; trust: string[] }): string {
  return [
    `host: ${o.host}`,
    'schedule:',
    '  every: 1d',
    `mode: ${o.mode ?? 'spool'}`,
    ...(o.mode === 'snapshot' ? ['snapshot:', '  size: 64M', '  freeze_timeout: 60s'] : []),
    'paths:',
    `  root: ${MOUNTS.root}`,
    `  boot: ${MOUNTS.boot}`,
    `  home: ${MOUNTS.home}`,
    `  state: ${o.state}`,
    `  modules: ${SERVER.modules}`,
    'target:',
    '  type: file',
    '  path: /backup',
    'restore:',
    '  grub_devices: []',
    '  update_grub: false',
    '  update_initramfs: false',
    '  stop_timeout: 10s',
    `  drbd_wait: ${o.drbdWait ?? '2m'}`,
    ...(o.trust.length ? ['trust:', ...o.trust.map((l) => `  ${l}`)] : []),
    '',
  ].join('\n');
}

/** The machine that will burn: a new backup disk, a signing key; its public key is what a restore must trust. */
export async function makeServer(g: Guest, o: ServerOptions): Promise<{ publicKey: string }> {
  await makeServerDisks(g, {
    homeMiB: o.homeMiB ?? 320,
    backupDisk: 'new',
    mounts: MOUNTS,
    ...(o.homeOptions ? { homeOptions: o.homeOptions } : {}),
  });
  await g.ok(['install', '-d', '-m', '0755', STATE]);
  await g.writeFile(SERVER.config, serverConfig({ ...o, state: STATE, trust: [] }), 0o600);
  const key = await g.ok(['syn3-backup', '--config', SERVER.config, 'key', 'init', '--json'], { timeoutMs: 5 * MINUTES });
  return { publicKey: (JSON.parse(key.stdout) as { publicKey: string }).publicKey };
}

/** A fresh installation on new disks, the carried backup disk mounted, trusting the burnt machine's key. */
export async function installFresh(g: Guest, o: ServerOptions & { publicKey: string }): Promise<void> {
  await makeServerDisks(g, { homeMiB: o.homeMiB ?? 320, backupDisk: 'carried', mounts: MOUNTS });
  await g.ok(['install', '-d', '-m', '0755', STATE]);
  const trust = ['signing_key: /nonexistent/signing.key', 'public_keys:', `  - "${o.publicKey}"`];
  await g.writeFile(SERVER.config, serverConfig({ ...o, state: STATE, trust }), 0o600);
  await g.writeFile(INITRD_CONFIG, serverConfig({ ...o, state: `${MOUNTS.home}/.syn3systembackup/var/lib/syn3-backup`, trust }), 0o600);
}

export interface Restored {
  restore: GuestRun;
  initrd: GuestRun;
  firstBoot: GuestRun;
}

/**
 * The administrator's restore and the two boots after it, each required to exit 0, their
 * console in text (info lines too); beforeReboot looks at what the restore left for the boots,
 * beforeFirstBoot does what the boot itself would (mount /home as the restored fstab says).
 */
export async function restoreFresh(
  g: Guest,
  host: string,
  o: { from?: string; beforeReboot?: () => Promise<void>; beforeFirstBoot?: () => Promise<void> } = {},
): Promise<Restored> {
  const cli = (config: string, args: string[]) =>
    g.ok(['syn3-backup', '--config', config, '--log-format', 'text', ...args], { timeoutMs: 10 * MINUTES, env: { TMPDIR: '/tmp' } });
  const restore = await cli(SERVER.config, ['restore', '--confirm', host, ...(o.from ? ['--from', o.from] : [])]);
  await o.beforeReboot?.();
  const initrd = await cli(INITRD_CONFIG, ['resume', '--initrd']);
  await o.beforeFirstBoot?.();
  const firstBoot = await cli(SERVER.config, ['resume']);
  return { restore, initrd, firstBoot };
}

/** The backups on the target, oldest first, as list --json gives them. */
export async function listed(g: Guest): Promise<{ id: string }[]> {
  return JSON.parse((await g.ok(['syn3-backup', '--config', SERVER.config, 'list', '--json'])).stdout) as { id: string }[];
}
