/**
 * DRBD on a redundant pair, in two QEMU guests joined by a wire of their own
 * (QEMU socket networking over this host's loopback, nothing else attached):
 * alpha, the server syn3-backup protects, is primary of r0 and replicates it
 * to beta. Alpha backs up, burns, and a fresh installation on new disks (a
 * new guest with blank disks and the carried backup disk) is restored with
 * the real CLI: restore --confirm, resume --initrd, resume. Beta keeps
 * running throughout with the replicated data, and every spec checks that it
 * still holds exactly that data: a blank disk never overwrote it.
 *
 * r0's data is compared by checksum, on each node of the bytes at the start
 * of its backing disk that /dev/drbd0 holds (internal metadata lives at the
 * end), read with O_DIRECT past any page cache.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Guest, type GuestNetwork, type GuestOptions, type GuestRun, startGuest, useGuest } from './guest.js';
import { installFresh, listed, makeServer, MOUNTS, restoreFresh } from './restore-server.js';

const MINUTES = 60_000;
const DRBD_MIB = 96;
const DATA = '/srv/data';
/** The seed's marker, in the system copy until the initrd puts /boot back. */
const MARKER = `${MOUNTS.home}/.syn3systembackup/boot/drbd.primary`;
/** Ports on this host's loopback: alpha's card sends to beta's and back. */
const WIRE = { alpha: 47311, beta: 47312 };
const NET: Record<'alpha' | 'beta', GuestNetwork> = {
  alpha: { localPort: WIRE.alpha, remotePort: WIRE.beta, mac: '52:54:00:d0:00:01', address: '10.77.0.1/24' },
  beta: { localPort: WIRE.beta, remotePort: WIRE.alpha, mac: '52:54:00:d0:00:02', address: '10.77.0.2/24' },
};

const RESOURCE = `resource r0 {
  protocol C;
  device /dev/drbd0;
  disk /dev/disk/by-id/virtio-drbd;
  meta-disk internal;
  on alpha { address 10.77.0.1:7789; }
  on beta { address 10.77.0.2:7789; }
}
`;

const sh = (g: Guest, script: string, timeoutMs = 3 * MINUTES) => g.ok(['bash', '-euo', 'pipefail', '-c', script], { timeoutMs });
/** drbdadm with the server's own configuration, the one its backup holds (on beta: the guest's /etc). */
const drbdadm = (g: Guest) => (g.name.startsWith('alpha') ? `drbdadm -c ${MOUNTS.root}/etc/drbd.conf` : 'drbdadm');
const adm = (g: Guest, args: string) => sh(g, `${drbdadm(g)} ${args}`);
const state = async (g: Guest) => {
  const d = drbdadm(g);
  return (await sh(g, `${d} cstate r0; ${d} role r0; ${d} dstate r0`)).stdout.trim().split('\n');
};

/** What the first boot said about DRBD, printed for the log of the run. */
function drbdSaid(name: string, firstBoot: GuestRun): string {
  const lines = `${firstBoot.stderr}\n${firstBoot.stdout}`.split('\n').filter((l) => l.includes('DRBD'));
  console.info(`${name}, first boot, DRBD:\n  ${lines.join('\n  ')}`);
  return lines.join('\n');
}

async function untilState(g: Guest, want: RegExp, what: string, timeoutMs = 3 * MINUTES): Promise<string[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const now = await state(g).catch(() => ['(drbdadm failed)']);
    if (want.test(now.join(' '))) return now;
    if (Date.now() > until) throw new Error(`${g.name}: ${what} did not happen within ${timeoutMs / 1000} s; DRBD says ${now.join(' ')}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

describe('DRBD on a redundant pair (two QEMU guests on a wire of their own)', () => {
  const betaGuest = useGuest({ name: 'beta', hostname: 'beta', disks: [{ serial: 'drbd', sizeMiB: DRBD_MIB }], network: NET.beta });
  const beta = () => betaGuest();
  let work = '';
  let carried = '';
  let alpha: Guest | undefined;
  let publicKey = '';
  let dataBytes = 0;
  let dataSum = '';
  const backups: { asPrimary?: string; asSecondary?: string } = {};

  /** alpha, or a new machine in its place: same name, wire and address, blank disks but the carried backup disk. */
  async function bootAlpha(name: string): Promise<Guest> {
    await burn();
    work ||= await mkdtemp(join(tmpdir(), 'syn3-lane-drbd-'));
    carried ||= join(work, 'backup.img');
    const opts: GuestOptions = {
      name,
      hostname: 'alpha',
      network: NET.alpha,
      disks: [
        { serial: 'vg', sizeMiB: 512 },
        { serial: 'backup', sizeMiB: 512, file: carried },
        { serial: 'drbd', sizeMiB: DRBD_MIB },
      ],
    };
    alpha = await startGuest(opts);
    console.info(`lane guest ${name}: QEMU start to the first command ${alpha.bootSeconds.toFixed(1)} s`);
    return alpha;
  }
  /** The fire: the machine is gone with its disks; only the backup disk's image stays. */
  async function burn(): Promise<void> {
    await alpha?.stop();
    alpha = undefined;
  }
  /** r0's data as a node's disk holds it: the backing disk's first dataBytes (a secondary cannot open /dev/drbd0). */
  const dataOn = async (g: Guest) =>
    (
      await sh(g, `dd if=/dev/disk/by-id/virtio-drbd iflag=direct,count_bytes bs=1M count=${dataBytes} 2>/dev/null | sha256sum`)
    ).stdout.split(' ')[0];
  const betaSum = () => dataOn(beta());

  afterAll(async () => {
    await burn();
    if (work) await rm(work, { recursive: true, force: true });
  }, MINUTES);

  it('sets up the pair: alpha primary of r0, replicated to beta, a file system on it with data that changes', {
    timeout: 10 * MINUTES,
  }, async () => {
    const a = await bootAlpha('alpha');
    ({ publicKey } = await makeServer(a, { host: 'alpha', homeMiB: 320 }));
    await sh(a, `cp -a /etc/drbd.conf /etc/drbd.d ${MOUNTS.root}/etc/`);
    await a.writeFile(`${MOUNTS.root}/etc/drbd.d/r0.res`, RESOURCE);
    await beta().writeFile('/etc/drbd.d/r0.res', RESOURCE);
    for (const g of [a, beta()]) {
      await adm(g, 'create-md r0');
      await adm(g, 'up r0');
    }
    // Both disks blank: the one time a forced primary is right, the administrator's first set-up.
    await adm(a, 'primary --force r0');
    await untilState(a, /^Connected Primary\/Secondary UpToDate\/UpToDate$/, 'the first sync');
    await sh(
      a,
      `mkfs.ext4 -q /dev/drbd0 && mkdir -p ${DATA} && mount /dev/drbd0 ${DATA} && head -c 24M /dev/urandom > ${DATA}/orders.db && echo v1 > ${DATA}/version`,
    );
    dataBytes = Number((await sh(a, 'blockdev --getsize64 /dev/drbd0')).stdout.trim());
    // What the metadata at the end leaves of the backing disk.
    expect(dataBytes).toBeGreaterThan((DRBD_MIB - 1) * 2 ** 20);
  });

  it('records the node role in each backup: Primary, and Secondary once beta has taken over', { timeout: 10 * MINUTES }, async () => {
    const a = alpha!;
    await a.ok(['syn3-backup', '--config', '/etc/syn3-backup/config.yaml', 'backup'], { timeoutMs: 5 * MINUTES });
    backups.asPrimary = (await listed(a)).at(-1)!.id;
    // Beta takes over for a while (alpha's maintenance): alpha's next backup is of a secondary.
    await sh(a, `umount ${DATA}`);
    await adm(a, 'secondary r0');
    await adm(beta(), 'primary r0');
    await a.ok(['syn3-backup', '--config', '/etc/syn3-backup/config.yaml', 'backup'], { timeoutMs: 5 * MINUTES });
    backups.asSecondary = (await listed(a)).at(-1)!.id;
    expect(backups.asSecondary).not.toBe(backups.asPrimary);
    await adm(beta(), 'secondary r0');
    await adm(a, 'primary r0');
    const roleIn = async (id: string) =>
      (JSON.parse((await a.readFile(`/backup/${id}/meta.json`)).toString()) as { layout: { drbd?: unknown } }).layout.drbd;
    expect(await roleIn(backups.asPrimary)).toEqual([{ resource: 'r0', role: 'Primary' }]);
    expect(await roleIn(backups.asSecondary)).toEqual([{ resource: 'r0', role: 'Secondary' }]);
    // Life goes on after the last backup: what comes back must be beta's data, not anything a backup held.
    await sh(
      a,
      `mount /dev/drbd0 ${DATA} && head -c 8M /dev/urandom >> ${DATA}/orders.db && echo v2 > ${DATA}/version && sha256sum ${DATA}/orders.db > /root/orders.sum && umount ${DATA}`,
    );
    dataSum = (await dataOn(a))!;
    expect(await betaSum()).toBe(dataSum);
    await burn();
    await untilState(beta(), /^WFConnection Secondary\/Unknown UpToDate\/DUnknown$/, 'noticing that alpha is gone');
  });

  it('no reachable peer: the restored alpha stays secondary on its blank disk, status says it waits for beta and how to force it, the restore finishes', {
    timeout: 15 * MINUTES,
  }, async () => {
    await sh(beta(), '/lane/busybox ip link set eth0 down');
    const a = await bootAlpha('alpha-2');
    await installFresh(a, { host: 'alpha', publicKey, drbdWait: '20s' });
    const { firstBoot } = await restoreFresh(a, 'alpha', {
      from: backups.asPrimary,
      beforeReboot: async () => expect((await a.readFile(MARKER)).toString()).toBe('r0\n'),
    });
    const said = drbdSaid(a.name, firstBoot);
    expect(await state(a)).toEqual(['WFConnection', 'Secondary/Unknown', 'Inconsistent/DUnknown']);
    expect(said).toMatch(/DRBD r0: creating metadata on the blank disk/);
    const status = await a.run(['syn3-backup', '--config', '/etc/syn3-backup/config.yaml', 'status']);
    expect(status.stdout).toMatch(/restore: +the system was restored from backup/);
    expect(status.stdout).toMatch(/drbd: +r0 waits for its peer beta \(10\.77\.0\.2:7789\)/);
    expect(status.stdout).toMatch(/"drbdadm primary --force r0" starts this node alone, on a blank device/);
    // The peer comes back: DRBD connects by itself and resyncs alpha from beta, never the other way.
    await sh(beta(), '/lane/busybox ip link set eth0 up');
    await untilState(a, /^Connected Secondary\/Secondary UpToDate\/UpToDate$/, 'the resync from beta');
    expect(await betaSum()).toBe(dataSum);
    expect(await dataOn(a)).toBe(dataSum);
    const later = await a.run(['syn3-backup', '--config', '/etc/syn3-backup/config.yaml', 'status']);
    expect(later.stdout).toMatch(/drbd: +r0 waits for its peer beta[\s\S]*run "drbdadm primary r0"/);
    await burn();
  });

  it('with beta reachable, the restored alpha resyncs from beta and is primary again with exactly its data', {
    timeout: 15 * MINUTES,
  }, async () => {
    // Beta lost its peer and waits for it, its data as replicated: nothing of the last spec cut it off.
    await untilState(beta(), /^WFConnection Secondary\/Unknown UpToDate\/DUnknown$/, 'beta waiting for a peer', MINUTES);
    const a = await bootAlpha('alpha-3');
    await installFresh(a, { host: 'alpha', publicKey });
    const { firstBoot } = await restoreFresh(a, 'alpha', { from: backups.asPrimary });
    const said = drbdSaid(a.name, firstBoot);
    expect(await state(a)).toEqual(['Connected', 'Primary/Secondary', 'UpToDate/UpToDate']);
    expect(await dataOn(a)).toBe(dataSum);
    expect(await betaSum()).toBe(dataSum);
    expect(said).toMatch(/DRBD r0: resynced from beta .*; primary again/);
    // The service's view: the file system on r0, with the data written after the last backup.
    await sh(a, `mkdir -p ${DATA} && mount /dev/drbd0 ${DATA}`);
    expect((await a.readFile(`${DATA}/version`)).toString()).toBe('v2\n');
    expect((await a.run(['syn3-backup', '--config', '/etc/syn3-backup/config.yaml', 'status'])).stdout).not.toMatch(/drbd:/);
    await sh(a, `umount ${DATA}`);
    // The mount wrote to r0 (the journal, the superblock's times), on both nodes alike.
    dataSum = (await betaSum())!;
    expect(await dataOn(a)).toBe(dataSum);
    await burn();
  });

  it('a node that was secondary at backup time comes back secondary, without drbd.primary, and resyncs', {
    timeout: 15 * MINUTES,
  }, async () => {
    const a = await bootAlpha('alpha-4');
    await installFresh(a, { host: 'alpha', publicKey });
    const { restore, firstBoot } = await restoreFresh(a, 'alpha', {
      from: backups.asSecondary,
      beforeReboot: async () => expect((await a.run(['test', '-e', MARKER])).exitCode).toBe(1),
    });
    expect(restore.stdout + restore.stderr).toMatch(/DRBD r0: this node was secondary at backup time/);
    expect(drbdSaid(a.name, firstBoot)).toMatch(/DRBD r0: connected to beta .*; secondary, as at backup time/);
    await untilState(a, /^Connected Secondary\/Secondary UpToDate\/UpToDate$/, 'the resync from beta');
    expect(await dataOn(a)).toBe(dataSum);
    expect(await betaSum()).toBe(dataSum);
  });
});
