/**
 * The seed's restore steps 4-6, with the names it gives them, plus what this
 * program needs to find its way after the reboot: the plan and an
 * "initrd pending" note on /home (which the initrd does not format), and the
 * initrd's configuration with a rebuilt initramfs.
 */
import { chmod, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { RestorePlan } from '../machines/restore-types.js';
import type { Config } from '../src/config/schema.js';
import { UserError } from '../src/errors.js';
import { writeDurable, writeJsonDurable } from '../src/state/durable.js';
import { run } from '../src/system/run.js';
import { which } from '../src/system/tools.js';
import { ensureHomeMounted } from './home-restore.js';

export const SPOOL_MARKER = '.syn3restorespool';
export const SYSTEM_MARKER = '.syn3restoresystem';
export const DRBD_MARKER = 'drbd.primary';
export const POST_RESTORE = 'etc/postinst.d/post.restore';
export const RESTORE_DIR = '.syn3restore';
export const PENDING_INITRD = 'pending-initrd';
export const PLAN_FILE = 'plan.json';
export const INITRD_CONF = 'etc/syn3-backup/initrd.conf';

export const POST_RESTORE_SCRIPT = `#!/bin/sh
# Installed by syn3-backup. The restore sets its execute bit; the first boot
# runs it to finish the restore (GRUB, module restores, DRBD).
exec syn3-backup resume
`;

export function markerPaths(config: Config) {
  const { paths } = config;
  return {
    spool: join(paths.spool, SPOOL_MARKER),
    system: join(paths.boot, SYSTEM_MARKER),
    drbd: join(paths.systemCopy, 'boot', DRBD_MARKER),
    postRestore: join(paths.root, POST_RESTORE),
    postRestoreInCopy: join(paths.systemCopy, POST_RESTORE),
    restoreDir: join(paths.home, RESTORE_DIR),
    pendingInitrd: join(paths.home, RESTORE_DIR, PENDING_INITRD),
    plan: join(paths.home, RESTORE_DIR, PLAN_FILE),
    initrdConf: join(paths.root, INITRD_CONF),
  };
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

async function touch(p: string): Promise<void> {
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, '', { flag: 'a' });
}

async function makeExecutable(script: string): Promise<void> {
  if (!(await exists(script))) writeDurable(script, POST_RESTORE_SCRIPT, 0o644, 0o755);
  await chmod(script, 0o755);
}

export async function writeMarkers(config: Config, plan: RestorePlan, log: (m: string) => void): Promise<{ markers: string[] }> {
  await ensureHomeMounted(config, plan, log);
  const m = markerPaths(config);
  const written: string[] = [];
  await touch(m.spool);
  written.push(m.spool);
  writeJsonDurable(m.plan, plan);
  if (await exists(config.paths.systemCopy)) {
    await touch(m.system);
    written.push(m.system, ...(await writeDrbdMarker(m.drbd, plan, log)));
    writeDurable(m.pendingInitrd, `${plan.backupId}\n`);
    written.push(m.pendingInitrd);
  } else {
    log(`${config.paths.systemCopy} does not exist: / and /boot stay as they are`);
  }
  for (const script of [m.postRestore, m.postRestoreInCopy]) {
    if (script === m.postRestoreInCopy && !(await exists(config.paths.systemCopy))) continue;
    await makeExecutable(script);
    written.push(script);
  }
  written.push(...(await prepareInitrd(config, plan, log)));
  return { markers: written };
}

/**
 * drbd.primary, naming one per line the DRBD resources in which this node was
 * primary at backup time; none, and there is no marker: the node comes back
 * secondary. (The seed writes it always; a secondary made primary would take
 * its pair's role.)
 */
async function writeDrbdMarker(marker: string, plan: RestorePlan, log: (m: string) => void): Promise<string[]> {
  const roles = plan.recorded.drbd ?? [];
  const primary = roles.filter((r) => r.role === 'Primary').map((r) => r.resource);
  for (const r of roles.filter((x) => x.role !== 'Primary'))
    log(`DRBD ${r.resource}: this node was secondary at backup time; it comes back secondary and resyncs from its peer`);
  if (!primary.length) {
    await rm(marker, { force: true });
    return [];
  }
  writeDurable(marker, `${primary.join('\n')}\n`, 0o644, 0o755);
  return [marker];
}

export interface InitrdSettings {
  homeUuid: string;
  config: string;
  node: string;
  cli: string;
  rootAfter: string;
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** An absolute path of plain characters, the set the premount script accepts: what a path in initrd.conf may be. */
const PLAIN_PATH = /^\/[A-Za-z0-9/_.+@:,-]*$/;

/** A value for a root shell: single-quoted, so nothing in it is expanded or run (the premount script parses rather than sources, too). */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

function refuseValue(key: string, value: string, why: string): never {
  throw new UserError('restore', `refusing to write ${key}=${JSON.stringify(value)} into initrd.conf: ${why}`, {
    hint: "The backup's metadata or this configuration names something that is not a UUID or a plain path; restore another backup or fix the path",
  });
}

/**
 * initrd.conf: KEY='value' lines the premount script reads as root. Each value
 * is checked for what it must be (a UUID, a plain absolute path, UUID=… or a
 * device) and then quoted, so a recorded UUID of $(…) can run nothing.
 */
export function initrdConfText(s: InitrdSettings): string {
  if (!UUID.test(s.homeUuid)) refuseValue('SYN3_HOME_UUID', s.homeUuid, 'it is not a UUID');
  for (const [key, value] of [
    ['SYN3_CONFIG', s.config],
    ['SYN3_NODE', s.node],
    ['SYN3_CLI', s.cli],
  ] as const) {
    if (!PLAIN_PATH.test(value)) refuseValue(key, value, 'it is not a plain absolute path');
  }
  const rootUuid = s.rootAfter.startsWith('UUID=') ? s.rootAfter.slice(5) : undefined;
  if (rootUuid !== undefined ? !UUID.test(rootUuid) : !/^\/dev\/[A-Za-z0-9/_.:-]+$/.test(s.rootAfter)) {
    refuseValue('SYN3_ROOT_AFTER', s.rootAfter, 'it is neither UUID=<uuid> nor a device path');
  }
  const lines: Array<[string, string]> = [
    ['SYN3_HOME_UUID', s.homeUuid],
    ['SYN3_HOME_FSTYPE', 'xfs'],
    ['SYN3_CONFIG', s.config],
    ['SYN3_NODE', s.node],
    ['SYN3_CLI', s.cli],
    ['SYN3_ROOT_AFTER', s.rootAfter],
  ];
  return `${lines.map(([k, v]) => `${k}=${shQuote(v)}`).join('\n')}\n`;
}

/** What the initramfs hook needs to find /home at the next boot, and the rebuilt initramfs. */
async function prepareInitrd(config: Config, plan: RestorePlan, log: (m: string) => void): Promise<string[]> {
  if (!(await exists(config.paths.systemCopy))) return [];
  const m = markerPaths(config);
  const homeUuid = plan.recorded.home.uuid ?? plan.devices.home.uuidBefore ?? '';
  const cli = process.argv[1] ?? '';
  // The initrd formats / with its recorded UUID; the boot that does it must then mount that one.
  const rootAfter = plan.recorded.root.uuid ? `UUID=${plan.recorded.root.uuid}` : plan.devices.root.device;
  writeDurable(m.initrdConf, initrdConfText({ homeUuid, config: config.file, node: process.execPath, cli, rootAfter }), 0o644);
  // Only a real system's initramfs: a sandbox's root is not the one this kernel boots.
  if (config.restore.update_initramfs && config.paths.root === '/') {
    if (await which('update-initramfs')) await run('update-initramfs', ['-u']);
    else log('update-initramfs is not installed: the initrd cannot restore / and /boot at the next boot');
  }
  return [m.initrdConf];
}

export async function removeMarker(p: string): Promise<void> {
  await rm(p, { force: true });
}
