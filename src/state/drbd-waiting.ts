/**
 * The DRBD resources the first boot after a restore left waiting (no peer
 * within restore.drbd_wait, or a resync not done): status reads this and asks
 * DRBD whether each one still waits. Written by the restore's DRBD step only.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { RESOURCE_NAME } from '../system/drbd.js';
import { writeJsonDurable } from './durable.js';

const waitingSchema = z.array(
  z.strictObject({
    resource: z.string().regex(RESOURCE_NAME),
    /** It was primary at backup time: it waits to become primary again. */
    primary: z.boolean(),
    peers: z.array(z.strictObject({ host: z.string(), address: z.string() })),
    since: z.iso.datetime(),
  }),
);

export type DrbdWaiting = z.infer<typeof waitingSchema>[number];

export function drbdWaitingFile(state: string): string {
  return join(state, 'drbd-waiting.json');
}

export function writeDrbdWaiting(state: string, waiting: DrbdWaiting[]): void {
  writeJsonDurable(drbdWaitingFile(state), waiting);
}

/** What the last first boot left waiting; none when there is no file (or one this program did not write). */
export function readDrbdWaiting(state: string): DrbdWaiting[] {
  try {
    const parsed = waitingSchema.safeParse(JSON.parse(readFileSync(drbdWaitingFile(state), 'utf8')));
    return parsed.success ? parsed.data : [];
  } catch {
    return [];
  }
}

const SYNCING = /^(StartingSync[ST]|WFBitMap[ST]|WFSyncUUID|(Paused)?Sync(Source|Target))$/;

/** What waits and what the administrator can run, for the log and for status. */
export function waitingAdvice(w: DrbdWaiting, connection: string): string {
  const r = w.resource;
  const peer = w.peers.map((p) => `${p.host} (${p.address})`).join(', ') || 'its peer';
  const then = w.primary
    ? `; it was primary at backup time: once its disk is UpToDate (drbdadm dstate ${r}), run "drbdadm primary ${r}"`
    : '';
  if (SYNCING.test(connection)) return `resyncing from ${peer}${then || '; it stays secondary, as at backup time'}`;
  const gone = w.peers[0]?.host ?? 'the peer';
  return (
    `waits for its peer ${peer} (connection: ${connection}); DRBD connects by itself once the peer is reachable and resyncs this node from it${then}. ` +
    `If ${gone} is gone for good, "drbdadm primary --force ${r}" starts this node alone, on a blank device: DRBD's data is on the peer, never in the backup`
  );
}
