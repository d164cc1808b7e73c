/**
 * The drill's steps: its disks and configuration, the original machine's
 * install and backup, the fire, the fresh machine's install and restore, the
 * jobs run in the machines and the checks on what they wrote back.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DrillFailure } from './failure.js';
import { readJobDisk, writeJobDisk, type Job, type JobResult } from './job-disk.js';
import { installMachine, makeBackupDisk, type InstallInputs, type Machine, type MachineSpec } from './machine.js';
import { boot, serialText, type BootSpec } from './qemu.js';
import type { Report } from './report.js';
import { credentials, GUEST_ADDRESS, HOST_ADDRESS, SHARE_ADDRESS, SHARE_PORT, type DrillShare } from './share.js';
import type { Template } from './template.js';

export interface Shared {
  template: Template;
  /** This host's node, stripped, for the guests. */
  node: string;
  work: string;
  drillRoot: string;
  packageRoot: string;
  report: Report;
  /** Disk images to remove once the drill has passed (with --keep). */
  images: string[];
}

/** The drill's run: its backup medium (the SMB share, or a backup disk), job disk and configuration. */
export interface Context extends Shared {
  host: string;
  /** The original's configuration (the fresh machine's adds the original's public key). */
  config: string;
  /** The file target's disk, the machines' second disk; or none, with the share instead. */
  backupDisk?: string;
  /** The smb target's share: the machines get a network card whose only way out leads to it. */
  share?: DrillShare;
  jobDisk: string;
  inputs: InstallInputs;
}

/** The original server's disk. */
export const ORIGINAL: MachineSpec = {
  role: 'original',
  hostname: 'syn3drill',
  diskSize: '4G',
  bootSize: '256M',
  rootSize: '1600M',
  homeSize: '1700M',
};
/** The new disk is bigger, its partitions too: a restore must not need the same geometry. */
export const REPLACEMENT: MachineSpec = {
  role: 'replacement',
  hostname: 'new-server',
  diskSize: '5G',
  bootSize: '320M',
  rootSize: '2G',
  homeSize: '2200M',
};

export const JOBS_DIR = 'guest/jobs';

/** One boot's time limit under TCG on two cores; a healthy boot takes a fraction of it. */
const BOOT_TIMEOUT_MS = 12 * 60_000;

/** The file target on the backup disk, which the machines mount at /backup. */
export const BACKUP_DISK_TARGET = `target:
  type: file
  path: /backup
  require_mount: true
`;

/** The configuration of the drill's machines: hourly backups onto the target (the backup disk's by default), plus the lines given. */
export function drillConfig(host: string, extra = '', target = BACKUP_DISK_TARGET): string {
  return `# syn3-backup on the drill machine: hourly backups.
host: ${host}
schedule:
  every: 1h
${target}${extra}`;
}

/** The drill's context; with a share, its machines back up to it instead of a backup disk. */
export async function drillContext(shared: Shared, host: string, config: string, share?: DrillShare): Promise<Context> {
  const file = (name: string) => join(shared.work, name);
  const configFile = file('config.yaml');
  writeFileSync(configFile, config);
  const { template, node, work, drillRoot, packageRoot } = shared;
  const inputs: InstallInputs = { template, work, drillRoot, packageRoot, node, config: configFile };
  const base = { ...shared, host, config: configFile, jobDisk: file('job-disk.img') };
  if (share) {
    const smbCredentials = file('smb.cred');
    writeFileSync(smbCredentials, credentials(share), { mode: 0o600 });
    return { ...base, share, inputs: { ...inputs, smbCredentials, networkAddress: GUEST_ADDRESS } };
  }
  const backupDisk = file('backup-disk.img');
  const targetUuid = await makeBackupDisk(backupDisk, '3G');
  shared.images.push(backupDisk);
  return { ...base, backupDisk, inputs: { ...inputs, targetUuid } };
}

export function jobScript(ctx: Context, name: string): string {
  return join(ctx.drillRoot, JOBS_DIR, `${name}.sh`);
}

async function install(ctx: Context, spec: MachineSpec, inputs: InstallInputs, title: string): Promise<Machine> {
  const m = await ctx.report.phase(title, () => installMachine(spec, inputs));
  ctx.images.push(m.disk);
  return m;
}

export interface BackedUp {
  original: Machine;
  life: JobRun;
  publicKey: string;
  status: { lastSuccess?: { id?: string; size?: number; freezeWindowMs?: number } | null };
}

/** The original server is installed, lives (its job), backs itself up: the backup must be there and signed. */
export async function installAndBackUp(ctx: Context, spec: MachineSpec, title: string, job: Job): Promise<BackedUp> {
  const { report } = ctx;
  const original = await install(ctx, spec, ctx.inputs, `install the original machine (${spec.diskSize} disk)`);
  const life = await runJob(ctx, original, title, job);
  requireJob(life, 'the backup job');
  checkBootedThroughGrub(ctx, life.serialLog, 'the original machine');
  const status = readJson(life.result.dir, 'status.json') as BackedUp['status'];
  const backups = readJson(life.result.dir, 'list.json') as Array<{ signature?: string; signedBy?: string }>;
  const publicKey = readText(life.result.dir, 'public-key.txt');
  report.check(
    "the backup is signed by the original's key (made by syn3-backup install)",
    /^ed25519:[A-Za-z0-9+/]{43}=$/.test(publicKey) && backups[0]?.signature === 'trusted' && backups[0]?.signedBy === publicKey,
    `${backups[0]?.signature ?? 'not listed'}, by ${backups[0]?.signedBy ?? 'nobody'}; key show: ${publicKey || 'nothing'}`,
  );
  report.check(
    'syn3-backup tick made a backup and says so',
    Array.isArray(backups) && backups.length === 1 && Boolean(status.lastSuccess?.id),
    `${Array.isArray(backups) ? backups.length : 0} backup(s) on the ${ctx.share ? 'share' : 'backup disk'}; last success ${status.lastSuccess?.id ?? 'none'} (${((status.lastSuccess?.size ?? 0) / 2 ** 20).toFixed(0)} MiB)`,
  );
  return { original, life, publicKey, status };
}

/** The fire: nothing of the original machine is left but its backups (on the backup disk or the share). */
export function burn(ctx: Context, original: Machine): void {
  rmSync(original.disk);
  ctx.report.check('the original disk is gone', !existsSync(original.disk));
}

/**
 * A new disk, a fresh installation whose configuration holds only the original's public key (as the
 * papers do), the restore: the fresh machine must trust the backup and wait for the reboot. With a
 * share, the fresh installation is syn3-backup's own (its example configuration) and the
 * administrator brings the configuration and the share's credentials file: the restore job
 * installs both, root's and 0600, before it lists the share.
 */
export async function restoreOnFreshMachine(ctx: Context, spec: MachineSpec, original: Machine, publicKey: string): Promise<Machine> {
  const { report } = ctx;
  const freshConfig = `${readFileSync(ctx.config, 'utf8')}trust:\n  public_keys:\n    - "${publicKey}"\n`;
  const freshConfigFile = join(ctx.work, 'fresh-config.yaml');
  writeFileSync(freshConfigFile, freshConfig);
  const { smbCredentials, ...inputs } = ctx.inputs;
  const replacement = await install(
    ctx,
    spec,
    ctx.share ? { ...inputs, config: undefined } : { ...inputs, config: freshConfigFile },
    `install a fresh machine on a new ${spec.diskSize} disk`,
  );
  const brought: Record<string, string> = ctx.share
    ? {
        'config.yaml': freshConfig,
        'smb.cred': readFileSync(smbCredentials!, 'utf8'),
        'host-address': `${HOST_ADDRESS} ${ctx.share.hostPort}\n`,
      }
    : {};
  const restore = await runJob(ctx, replacement, `fresh machine: syn3-backup list, restore --confirm, reboot`, {
    name: 'fresh-install-restore',
    script: jobScript(ctx, 'fresh-install-restore'),
    afterwards: 'reboot',
    files: { host: ctx.host, ...brought },
  });
  requireJob(restore, 'the restore job');
  if (ctx.share) checkBroughtToShare(ctx, restore);
  const seen = readJson(restore.result.dir, 'list.json') as Array<{ signature?: string; signedBy?: string }>;
  report.check(
    'the fresh machine, holding only the public key, trusts the backup',
    seen[0]?.signature === 'trusted' && seen[0]?.signedBy === publicKey,
    `${seen[0]?.signature ?? 'not listed'}, by ${seen[0]?.signedBy ?? 'nobody'}`,
  );
  checkBootedThroughGrub(ctx, restore.serialLog, 'the fresh machine');
  const restoreState = readJson(restore.result.dir, 'status.json') as { restore?: { state?: string } | null };
  report.check(
    'the restore waits for the reboot',
    restoreState.restore?.state === 'awaitingReboot',
    `restore state ${restoreState.restore?.state ?? 'none'}`,
  );
  // Else the restored files went into the root file system's /home directory, and the reboot would
  // find no restore pending, boot the fresh installation and wait for its /home for minutes.
  const homeMount = readText(restore.result.dir, 'home-mount.txt');
  const onHome = homeMount.split(/\s+/)[0] === original.uuids.home;
  report.check(
    "/home is the restored file system (the original's UUID) when the restore asks for the reboot",
    onHome,
    `${homeMount || 'no findmnt'}; /home holds ${readText(restore.result.dir, 'home-entries.txt').split('\n').join(' ') || 'nothing'}`,
  );
  if (!onHome)
    throw new DrillFailure('the restore asked for the reboot with /home not mounted from the restored file system', restore.serialLog);
  return replacement;
}

/** The fresh machine got the configuration and credentials as an administrator brings them, and reached the share only. */
function checkBroughtToShare(ctx: Context, restore: JobRun): void {
  const { report } = ctx;
  const modes = readText(restore.result.dir, 'brought.txt');
  report.check(
    "the fresh machine got its configuration and the share's credentials file from the administrator (root, 0600)",
    /^\/etc\/syn3-backup\/config\.yaml root:root 600$/m.test(modes) && /^\/etc\/syn3-backup\/smb\.cred root:root 600$/m.test(modes),
    modes.replace(/\n/g, '; '),
  );
  const target = readText(restore.result.dir, 'target.txt');
  report.check(`syn3-backup list read the SMB share ${ctx.share!.unc}`, target.includes(ctx.share!.unc), target.replace(/\s*\n\s*/g, ', '));
  const other = readText(restore.result.dir, 'host-reached.txt');
  report.check(
    "the machine's network leads to the share only: this host's smbd port is out of reach (restrict=on)",
    other === 'no',
    `${HOST_ADDRESS}:${ctx.share!.hostPort} reached: ${other || 'not tried'}`,
  );
}

/** The first boot after the initrd phase: it ran (again, after a power cut) to its end, and post.restore finished. */
export function checkInitrdAndPostRestore(ctx: Context, first: JobRun, initrdCheck: string): void {
  requireJob(first, 'the first boot');
  const firstSerial = serialText(first.serialLog);
  ctx.report.check(
    initrdCheck,
    /syn3-backup: a restore is pending/.test(firstSerial) && /syn3-backup: \/ and \/boot are back; booting on/.test(firstSerial),
  );
  const resume = readText(first.result.dir, 'resume-result.txt');
  ctx.report.check(
    'post.restore finished (syn3-backup-resume.service)',
    /Result=success/.test(resume) && /ExecMainStatus=0/.test(resume),
    resume.replace(/\n/g, ' '),
  );
}

export function checkStatusRestored(ctx: Context, dir: string): void {
  const status = readJson(dir, 'status.json') as { restore?: { last?: { result?: string } | null; summary?: string } | null };
  ctx.report.check(
    'syn3-backup status says restored',
    status.restore?.last?.result === 'restored',
    status.restore?.summary ?? 'no restore in the status',
  );
}

export interface JobRun {
  result: JobResult;
  serialLog: string;
}

/** Boots the machine with a job on the job disk (or the one already there), then reads the results back. */
export async function runJob(ctx: Context, m: Machine, title: string, job: Job | undefined, name = job?.name ?? 'job'): Promise<JobRun> {
  // With a share, every job knows where it is, to wait until the network reaches it.
  if (job)
    await writeJobDisk(ctx.jobDisk, ctx.share ? { ...job, files: { ...job.files, share: `${SHARE_ADDRESS} ${SHARE_PORT}\n` } } : job);
  const serialLog = join(ctx.work, `${m.spec.role}-${name}.serial.log`);
  await ctx.report.phase(title, () => boot(machineBoot(ctx, m, title, serialLog)));
  const result = await readJobDisk(ctx.jobDisk, join(ctx.work, `${m.spec.role}-${name}`));
  return { result, serialLog };
}

export function machineBoot(ctx: Context, m: Machine, name: string, serialLog: string, powerCut?: BootSpec['powerCut']): BootSpec {
  return {
    name,
    serialLog,
    timeoutMs: BOOT_TIMEOUT_MS,
    disks: [{ file: m.disk, boot: true }, ...(ctx.backupDisk ? [{ file: ctx.backupDisk }] : []), { file: ctx.jobDisk, serial: 'drilljob' }],
    ...(ctx.share ? { network: ctx.share.forward } : {}),
    ...(powerCut ? { powerCut } : {}),
  };
}

export function requireJob(j: JobRun, what: string): void {
  if (j.result.rc === 0) return;
  const tail = j.result.log.split('\n').filter(Boolean).slice(-8).join('\n    ');
  throw new DrillFailure(
    `${what} ${j.result.rc === null ? 'never ran (no result on the job disk)' : `exited with ${j.result.rc}`}${tail ? `; its last lines:\n    ${tail}` : ''}`,
    j.serialLog,
  );
}

export function checkBootedThroughGrub(ctx: Context, serialLog: string, who: string): void {
  const text = serialText(serialLog);
  ctx.report.check(
    `${who} booted from its disk through GRUB`,
    /GNU GRUB/.test(text) && /Booting `Debian GNU\/Linux/.test(text) && /Loading Linux/.test(text),
  );
}

/** /, /boot and /home have their original type, UUID and label, and / its original UUID (lsblk.json in each folder). */
export function checkMountIdentity(ctx: Context, beforeDir: string, afterDir: string, original: Machine): void {
  const mountsBefore = mountIdentity(beforeDir);
  const mountsAfter = mountIdentity(afterDir);
  for (const mp of ['/', '/boot', '/home']) {
    ctx.report.check(
      `${mp}: same type, UUID and label`,
      mountsBefore[mp] !== undefined && mountsBefore[mp] === mountsAfter[mp],
      `${mountsBefore[mp]} → ${mountsAfter[mp]}`,
    );
  }
  ctx.report.check("/ has the original machine's UUID", mountsAfter['/']?.includes(original.uuids.root) ?? false);
}

/** fstype, UUID and label of each mounted file system, from lsblk. */
function mountIdentity(dir: string): Record<string, string> {
  interface Dev {
    fstype?: string | null;
    uuid?: string | null;
    label?: string | null;
    mountpoint?: string | null;
    children?: Dev[];
  }
  const out: Record<string, string> = {};
  const walk = (d: Dev) => {
    if (d.mountpoint) out[d.mountpoint] = `${d.fstype} ${d.uuid} ${d.label ?? '-'}`;
    d.children?.forEach(walk);
  };
  try {
    (JSON.parse(readFileSync(join(dir, 'lsblk.json'), 'utf8')) as { blockdevices: Dev[] }).blockdevices.forEach(walk);
  } catch {
    // no lsblk.json: nothing is mounted, as far as the checks can tell
  }
  return out;
}

export function readText(dir: string, name: string): string {
  try {
    return readFileSync(join(dir, name), 'utf8').trim();
  } catch {
    return '';
  }
}

export function readJson(dir: string, name: string): unknown {
  const text = readText(dir, name);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return {};
  }
}
