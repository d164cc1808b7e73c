/**
 * drbdadm, reading the DRBD configuration of the system this program protects:
 * <root>/etc/drbd.conf (drbdadm resolves its relative includes beside it). On
 * a real server that is /etc/drbd.conf; a sandbox's root is read, never this
 * machine's own configuration. No configuration, or no drbdadm: no DRBD.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type RunOptions, type RunResult } from './run.js';
import { which } from './tools.js';

export type DrbdRole = 'Primary' | 'Secondary';

export interface DrbdPeer {
  host: string;
  address: string;
}

/** Connection states in which the peer is there: connected, or resyncing or verifying with it. */
const WITH_PEER = new Set([
  'Connected',
  'StartingSyncS',
  'StartingSyncT',
  'WFBitMapS',
  'WFBitMapT',
  'WFSyncUUID',
  'SyncSource',
  'SyncTarget',
  'PausedSyncS',
  'PausedSyncT',
  'VerifyS',
  'VerifyT',
]);

/** A resource name as drbdadm takes it: it reaches argv and the backup's metadata. */
export const RESOURCE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export class Drbd {
  private constructor(readonly conf: string) {}

  /** The DRBD of the system at root, or undefined when it has none (no drbd.conf there, or no drbdadm). */
  static async of(root: string): Promise<Drbd | undefined> {
    const conf = join(root, 'etc/drbd.conf');
    if (!existsSync(conf) || !(await which('drbdadm'))) return undefined;
    return new Drbd(conf);
  }

  adm(args: readonly string[], options?: RunOptions): Promise<RunResult> {
    return run('drbdadm', ['-c', this.conf, ...args], options);
  }

  async resources(): Promise<string[]> {
    const { stdout } = await this.adm(['sh-resources']);
    return stdout.split(/\s+/).filter((r) => RESOURCE_NAME.test(r));
  }

  /** This node's role; undefined while the resource is not up. */
  async role(res: string): Promise<DrbdRole | undefined> {
    const mine = (await this.query(['role', res]))?.split('/')[0];
    return mine === 'Primary' || mine === 'Secondary' ? mine : undefined;
  }

  /** drbdadm cstate: "Unconfigured" while the resource is down. */
  async connection(res: string): Promise<string> {
    return (await this.query(['cstate', res])) ?? 'Unconfigured';
  }

  async withPeer(res: string): Promise<boolean> {
    return WITH_PEER.has(await this.connection(res));
  }

  /** drbdadm dstate: this node's disk and the peer's, e.g. Inconsistent and UpToDate. */
  async disks(res: string): Promise<{ local: string; peer: string }> {
    const [local = 'Diskless', peer = 'DUnknown'] = ((await this.query(['dstate', res])) ?? '').split('/');
    return { local: local || 'Diskless', peer };
  }

  /** How far a resync has come, from /proc/drbd's "sync'ed:" line of the resource's minor, if one runs. */
  async syncedPercent(res: string): Promise<number | undefined> {
    const minor = (await this.query(['sh-minor', res]))?.trim();
    let proc: string;
    try {
      proc = readFileSync('/proc/drbd', 'utf8');
    } catch {
      return undefined;
    }
    if (!minor) return undefined;
    const block = proc.split(/\n(?=\s*\d+:)/).find((b) => b.trim().startsWith(`${minor}:`));
    const m = block?.match(/sync'ed:\s*([\d.]+)%/);
    return m ? Number(m[1]) : undefined;
  }

  /** The backing device of the resource (its lower-level device). */
  async backingDevice(res: string): Promise<string> {
    return (await this.adm(['sh-ll-dev', res])).stdout.trim();
  }

  /** The resource's other hosts and their addresses, from drbdadm dump. */
  async peers(res: string, self: string): Promise<DrbdPeer[]> {
    const { stdout } = await this.adm(['dump', res]);
    return peersIn(stdout, self);
  }

  private async query(args: string[]): Promise<string | undefined> {
    const r = await this.adm(args).catch(() => undefined);
    return r?.stdout.trim() || undefined;
  }
}

/** The `on HOST { … address [ipv4] ADDR:PORT; … }` sections of drbdadm dump, but this host's. */
export function peersIn(dump: string, self: string): DrbdPeer[] {
  const peers: DrbdPeer[] = [];
  for (const m of dump.matchAll(/\bon\s+(\S+)\s*\{([^}]*)\}/g)) {
    const host = m[1]!;
    if (host === self) continue;
    const address = m[2]!.match(/\baddress\s+(?:(?:ipv4|ipv6|ssocks|sdp)\s+)?([^\s;]+)\s*;/)?.[1];
    peers.push({ host, address: address ?? 'no address' });
  }
  return peers;
}
