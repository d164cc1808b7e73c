/**
 * The first boot's DRBD step. A DRBD resource's data is not in the dump of
 * /home: it lives on the peer, and the restored node's backing disk is blank.
 * So the step gives that disk DRBD metadata (only when it holds nothing at
 * all), brings the resource up and lets DRBD resync it from the peer (a node
 * whose metadata was just created is always the sync target). A node that was
 * primary at backup time (drbd.primary names the resources) becomes primary
 * again once its disk is UpToDate, and never with --force: on DRBD 8.4 a
 * forced primary on a blank disk runs on an empty device ("unrelated data",
 * both nodes StandAlone) or overwrites the peer. Without a peer within
 * restore.drbd_wait the resource stays up, secondary, waiting for it; the rest
 * of the restore finishes and status says what waits and what to run.
 */
import { readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../src/config/schema.js';
import { UserError } from '../src/errors.js';
import { drbdWaitingFile, waitingAdvice, writeDrbdWaiting, type DrbdWaiting } from '../src/state/drbd-waiting.js';
import { Drbd, type DrbdPeer, RESOURCE_NAME } from '../src/system/drbd.js';
import { run } from '../src/system/run.js';
import { DRBD_MARKER, removeMarker } from './markers.js';

const POLL_MS = 1000;
const PROGRESS_EVERY_MS = 10_000;

/** warn: what waits and what to run, which the console shows even under cron. */
export async function settleDrbd(config: Config, log: (m: string) => void, warn: (m: string) => void = log): Promise<{ drbd: string }> {
  const marker = join(config.paths.boot, DRBD_MARKER);
  const promote = await namedInMarker(marker);
  const drbd = await Drbd.of(config.paths.root);
  const resources = drbd ? await drbd.resources() : [];
  if (!drbd || !resources.length) {
    if (promote) log(`DRBD is not configured here: removing ${marker}`);
    await removeMarker(marker);
    await removeMarker(drbdWaitingFile(config.paths.state));
    return { drbd: 'not configured' };
  }
  const self = hostname();
  const outcomes: string[] = [];
  const waiting: DrbdWaiting[] = [];
  for (const res of resources) {
    const primary = promote.includes(res);
    await bringUp(drbd, res, log);
    const peers = await drbd.peers(res, self);
    const settled = await settle(drbd, res, primary, peers, config.restore.drbd_wait, log);
    outcomes.push(`${res} ${settled}`);
    if (settled.startsWith('waiting')) {
      const entry: DrbdWaiting = { resource: res, primary, peers, since: new Date().toISOString() };
      waiting.push(entry);
      warn(`DRBD ${res}: ${waitingAdvice(entry, await drbd.connection(res))}`);
    }
  }
  if (waiting.length) writeDrbdWaiting(config.paths.state, waiting);
  else await removeMarker(drbdWaitingFile(config.paths.state));
  await removeMarker(marker);
  return { drbd: outcomes.join('; ') };
}

/** The resources drbd.primary names; none without the marker. */
async function namedInMarker(marker: string): Promise<string[]> {
  const text = await readFile(marker, 'utf8').catch(() => '');
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => RESOURCE_NAME.test(l));
}

/** Metadata on a blank backing disk, then up; a resource already up (a resumed step, the boot's own drbd service) is adjusted. */
async function bringUp(drbd: Drbd, res: string, log: (m: string) => void): Promise<void> {
  if ((await drbd.disks(res)).local !== 'Diskless') {
    await drbd.adm(['adjust', res]);
    return;
  }
  if (!(await hasMetadata(drbd, res))) {
    const disk = await drbd.backingDevice(res);
    await requireBlank(res, disk);
    log(`DRBD ${res}: creating metadata on the blank disk ${disk}`);
    // No input: were drbdmeta to ask about data it found after all, it reads EOF and refuses.
    await drbd.adm(['create-md', res], { input: '' });
  }
  if ((await drbd.connection(res)) === 'Unconfigured') await drbd.adm(['up', res]);
  else await drbd.adm(['adjust', res]);
}

async function hasMetadata(drbd: Drbd, res: string): Promise<boolean> {
  return drbd.adm(['dump-md', res]).then(
    () => true,
    () => false,
  );
}

/** create-md destroys what the disk holds: only a disk on which blkid finds nothing at all gets it. */
async function requireBlank(res: string, disk: string): Promise<void> {
  const st = await stat(disk).catch(() => undefined);
  if (!st?.isBlockDevice()) {
    throw new UserError('restore', `DRBD ${res}: its backing device ${disk} is not a block device on this machine`, {
      hint: `Give the new machine the disk the resource's configuration names (drbdadm sh-ll-dev ${res}), then run "syn3-backup resume"`,
    });
  }
  // blkid -p exits 2 when it finds no signature: a blank disk.
  const found = await run('blkid', ['-p', '-o', 'export', disk]).then(
    (r) => r.stdout.match(/^TYPE=(.*)$/m)?.[1] ?? 'data blkid recognises',
    (e: { cause?: { exitCode?: number } }) => (e.cause?.exitCode === 2 ? undefined : 'something blkid cannot read'),
  );
  if (found) {
    throw new UserError('restore', `DRBD ${res}: its backing device ${disk} holds ${found} but no DRBD metadata; it was not touched`, {
      hint: `If ${disk} is the new disk meant for ${res} and nothing on it is needed, clear it (wipefs -a ${disk}) and run "syn3-backup resume"`,
    });
  }
}

/** Connected to the peer, resynced from it and primary where it was: "primary", "secondary, …", or "waiting …". */
async function settle(
  drbd: Drbd,
  res: string,
  primary: boolean,
  peers: DrbdPeer[],
  waitMs: number,
  log: (m: string) => void,
): Promise<string> {
  const deadline = Date.now() + waitMs;
  const names = peers.map((p) => `${p.host} (${p.address})`).join(', ') || 'its peer';
  log(`DRBD ${res}: waiting up to ${Math.round(waitMs / 1000)} s for ${names}`);
  while (!(await drbd.withPeer(res))) {
    if ((await drbd.connection(res)) === 'StandAlone') {
      throw new UserError('restore', `DRBD ${res}: the connection to ${names} was refused (the kernel log says why: dmesg | grep drbd)`, {
        hint: `Nothing was forced: check the peer's state (drbdadm status ${res} there), fix it, then run "syn3-backup resume"`,
      });
    }
    if (Date.now() >= deadline) return 'waiting for its peer';
    await sleep(POLL_MS);
  }
  if (!primary) {
    log(`DRBD ${res}: connected to ${names}; secondary, as at backup time, resyncing from it`);
    return 'secondary, resyncing';
  }
  let lastSaid = 0;
  for (;;) {
    const disks = await drbd.disks(res);
    if (disks.local === 'UpToDate') break;
    if (Date.now() >= deadline) return 'waiting for its resync';
    if (Date.now() - lastSaid >= PROGRESS_EVERY_MS) {
      const pct = await drbd.syncedPercent(res);
      log(`DRBD ${res}: resyncing from ${names}${pct === undefined ? '' : `: ${pct}%`} (${disks.local}/${disks.peer})`);
      lastSaid = Date.now();
    }
    await sleep(POLL_MS);
  }
  await drbd.adm(['primary', res]);
  log(`DRBD ${res}: resynced from ${names}; primary again, as at backup time`);
  return 'primary';
}
