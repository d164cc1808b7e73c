/**
 * The drill's backup medium (by default): a real smbd on this host's loopback (the
 * tests' server, test/support/servers/smb.ts, as the benchmarks use it), one
 * share, and one SMB account. The guests reach it as //10.0.2.100/backups
 * through QEMU's user network with restrict=on and one guestfwd (qemu.ts):
 * each connection starts share-relay.js, which relays it to smbd's port. The
 * guests have no other network.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSmbServer, type SmbServer } from '../test/support/servers/smb.js';
import type { GuestForward } from './qemu.js';

/** The share's address inside QEMU's user network, and the port an administrator's NAS answers on. */
export const SHARE_ADDRESS = '10.0.2.100';
export const SHARE_PORT = 445;
/** The machines' own address: the one QEMU's DHCP would hand out, set statically (install-machine.sh). */
export const GUEST_ADDRESS = '10.0.2.15/24';
/** This host as the guests would see it without restrict=on (QEMU's user network maps it to 127.0.0.1). */
export const HOST_ADDRESS = '10.0.2.2';
const SHARE_NAME = 'backups';

export interface DrillShare {
  /** What the machines' configuration says: the share, seen from inside the guests. */
  readonly unc: string;
  readonly credentialsFile: string;
  /** smbd's port on this host's loopback (which restrict=on must keep the guests from). */
  readonly hostPort: number;
  readonly forward: GuestForward;
  /** The backups' files as smbd serves them. */
  files(): string;
  log(): string;
  stop(): Promise<void>;
}

export async function startDrillShare(): Promise<DrillShare> {
  const server: SmbServer = await startSmbServer({ shares: [{ name: SHARE_NAME }] });
  const relay = join(dirname(fileURLToPath(import.meta.url)), 'share-relay.js');
  return {
    unc: `//${SHARE_ADDRESS}/${SHARE_NAME}`,
    credentialsFile: server.credentialsFile,
    hostPort: server.port,
    forward: { address: SHARE_ADDRESS, port: SHARE_PORT, command: `${process.execPath} ${relay} ${server.port}` },
    files: () => server.path(SHARE_NAME),
    log: () => server.log(),
    stop: () => server.stop(),
  };
}

/** The smb target's lines for the machines' configuration (the credentials file comes beside it, 0600). */
export function shareTarget(share: DrillShare): string {
  return `target:
  type: smb
  share: ${share.unc}
  port: ${SHARE_PORT}
  credentials_file: /etc/syn3-backup/smb.cred
`;
}

export function credentials(share: DrillShare): string {
  return readFileSync(share.credentialsFile, 'utf8');
}
