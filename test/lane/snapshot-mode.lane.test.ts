/**
 * Snapshot mode in a guest with device-mapper (this host has none): /home an
 * XFS on an LVM logical volume, the real syn3-backup CLI, real lvcreate,
 * xfsdump and xfsrestore. Freezers are small scripts written here that record
 * what they saw and did; the shipped database freezers have their own specs.
 * Each failure case checks that the earlier backup is still there and intact.
 */
import { describe, expect, it } from 'vitest';
import { type Guest, useGuest } from './guest.js';
import { makeSnapshotServer, SERVER, snapshotConfig } from './snapshot-server.js';

const MINUTES = 60_000;

const { home: HOME, modules: MODULES, state: STATE } = SERVER;
const JOURNAL = '/run/freezers.journal';

interface Listed {
  id: string;
  size: number;
  sha256: string;
}

describe('snapshot mode (in a QEMU guest: LVM)', () => {
  const guest = useGuest({
    name: 'snapshot',
    disks: [
      { serial: 'vg', sizeMiB: 1024 },
      { serial: 'plain', sizeMiB: 320 },
      { serial: 'backup', sizeMiB: 1536 },
    ],
  });
  const g = (): Guest => guest();
  const sh = (script: string, timeoutMs = 120_000) => g().ok(['bash', '-euo', 'pipefail', '-c', script], { timeoutMs });
  const cli = (args: string[], file = '/etc/syn3-backup/config.yaml', timeoutMs = 300_000) =>
    g().run(['syn3-backup', '--config', file, ...args], { timeoutMs });

  async function freezer(name: string, body: string): Promise<void> {
    await g().writeFile(`${MODULES}/${name}`, `#!/bin/bash\necho "start ${name}" >> ${JOURNAL}\n${body}\n`, 0o700);
  }
  async function noFreezers(): Promise<void> {
    await sh(`rm -f ${MODULES}/*.freeze ${JOURNAL}`);
  }
  async function listed(): Promise<Listed[]> {
    const r = await cli(['list', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Listed[];
  }
  async function ownSnapshots(): Promise<string> {
    return (await sh('lvs --noheadings -o lv_name,lv_tags vg0 | grep syn3snap_ || true')).stdout.trim();
  }
  /** The earlier backups are all still listed, and each one's dump still has the checksum it was published with. */
  async function expectIntact(before: Listed[]): Promise<void> {
    const now = await listed();
    for (const b of before) {
      const same = now.find((x) => x.id === b.id);
      expect(same, `backup ${b.id} is gone`).toBeDefined();
      const sum = (await sh(`sha256sum /backup/${b.id}/home.xfsdump | cut -d' ' -f1`)).stdout.trim();
      expect(sum).toBe(b.sha256);
    }
  }

  it('sets up a server: /home an XFS on vg0/home, / and /boot small file systems, the backup disk at /backup', {
    timeout: 6 * MINUTES,
  }, async () => {
    await makeSnapshotServer(g(), { homeMiB: 400, config: { freezeTimeout: '20s' } });
    // Something to back up: two users' files, and 64 MiB that keep the dump busy for a while.
    await sh(
      `mkdir -p ${HOME}/alice ${HOME}/bob && for i in $(seq 1 200); do echo "note $i" > ${HOME}/alice/n$i.txt; done && ` +
        `head -c 64M /dev/urandom > ${HOME}/bob/big.bin && echo first > ${HOME}/bob/a.txt`,
    );
    const check = await cli(['config', 'check']);
    expect(check.exitCode, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/mode: snapshot/);
  });

  it('backs up the snapshot: plain xfsrestore gives the tree as it was while frozen, not the changes made after the thaw', {
    timeout: 6 * MINUTES,
  }, async () => {
    await noFreezers();
    // While frozen it lists /home (the moment of the snapshot); released, it changes /home before the dump reads it.
    await freezer(
      '10-tree.freeze',
      [
        `cd "$SYN3_HOME" && find . -xdev \\( -path ./.syn3systembackup -o -path ./system \\) -prune -o -type f -print0 | sort -z | xargs -0 sha256sum > /run/frozen-tree.txt`,
        'echo frozen',
        'cat > /dev/null',
        `echo changed >> "$SYN3_HOME/bob/a.txt"; echo after > "$SYN3_HOME/bob/after-thaw.txt"`,
        `echo "thaw 10-tree" >> ${JOURNAL}`,
      ].join('\n'),
    );
    const r = await cli(['backup']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await ownSnapshots()).toBe('');
    const [b] = await listed();
    expect(b).toBeDefined();
    await sh(
      `rm -rf /tmp/restored && mkdir /tmp/restored && xfsrestore -q -f /backup/${b!.id}/home.xfsdump /tmp/restored >/dev/null && ` +
        `cd /tmp/restored && find . \\( -path ./.syn3systembackup -o -path ./system \\) -prune -o -type f -print0 | sort -z | xargs -0 sha256sum > /run/restored-tree.txt`,
    );
    const frozen = (await g().readFile('/run/frozen-tree.txt')).toString();
    const restored = (await g().readFile('/run/restored-tree.txt')).toString();
    expect(frozen.split('\n').length).toBeGreaterThan(200);
    expect(restored).toBe(frozen);
    expect(restored).not.toMatch(/after-thaw\.txt/);
    expect((await sh(`cat ${HOME}/bob/a.txt`)).stdout).toBe('first\nchanged\n');
    const status = JSON.parse((await cli(['status', '--json'])).stdout) as { lastSuccess?: { freezeWindowMs?: number } };
    console.info(`snapshot mode: freeze window ${status.lastSuccess?.freezeWindowMs} ms (one test freezer hashing /home)`);
    expect(status.lastSuccess?.freezeWindowMs).toBeGreaterThan(0);
  });

  it('a SIGKILL while frozen: the freezers thaw within a second, and the next tick makes a good backup', {
    timeout: 6 * MINUTES,
  }, async () => {
    await noFreezers();
    await freezer('10-hold.freeze', 'echo frozen\ntouch /run/held\ncat > /dev/null\ntouch /run/thawed');
    await sh('rm -f /run/held /run/thawed');
    const before = await listed();
    await g().start('backup', ['syn3-backup', '--config', '/etc/syn3-backup/config.yaml', 'backup']);
    await sh('for i in $(seq 600); do [ -e /run/held ] && exit 0; sleep 0.05; done; exit 1', 60_000);
    await g().signal('backup', 'SIGKILL');
    await g().wait('backup', 10_000);
    const thawed = await sh('for i in $(seq 20); do [ -e /run/thawed ] && { echo $((i * 50)); exit 0; }; sleep 0.05; done; exit 1');
    console.info(`snapshot mode: the freezer thawed within ${thawed.stdout.trim()} ms of the SIGKILL`);
    const tick = await cli(['tick']);
    expect(tick.exitCode, tick.stderr).toBe(0);
    expect(await ownSnapshots()).toBe('');
    expect((await listed()).length).toBe(before.length + 1);
    await expectIntact(before);
  });

  it('a SIGKILL during the dump leaves the snapshot mounted; the next tick dumps it again and removes it', {
    timeout: 6 * MINUTES,
  }, async () => {
    await noFreezers();
    const before = await listed();
    await g().start('backup', ['syn3-backup', '--config', '/etc/syn3-backup/config.yaml', 'backup']);
    await sh(`for i in $(seq 1200); do findmnt ${STATE}/snapshot >/dev/null && exit 0; sleep 0.05; done; exit 1`, 120_000);
    await g().signal('backup', 'SIGKILL');
    await g().wait('backup', 10_000);
    await sh('pkill -9 -x xfsdump || true; sleep 0.5');
    expect(await ownSnapshots()).toMatch(/syn3snap_/);
    const tick = await cli(['tick']);
    expect(tick.exitCode, tick.stderr).toBe(0);
    expect(await ownSnapshots()).toBe('');
    expect((await sh(`findmnt ${STATE}/snapshot || true`)).stdout).toBe('');
    expect((await listed()).length).toBe(before.length + 1);
    await expectIntact(before);
  });

  it('a freezer that never says frozen fails the backup after freeze_timeout; the one already held is released', {
    timeout: 6 * MINUTES,
  }, async () => {
    await noFreezers();
    await freezer('10-hold.freeze', `echo frozen\ncat > /dev/null\necho "thaw 10-hold" >> ${JOURNAL}`);
    await freezer('20-silent.freeze', 'sleep 600');
    await g().writeFile('/etc/syn3-backup/short.yaml', snapshotConfig({ freezeTimeout: '3s' }), 0o600);
    const before = await listed();
    const r = await cli(['backup'], '/etc/syn3-backup/short.yaml');
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/20-silent\.freeze did not say "ready" or "frozen" within 3 s/);
    expect((await g().readFile(JOURNAL)).toString()).toMatch(/thaw 10-hold/);
    expect(await ownSnapshots()).toBe('');
    await expectIntact(before);
    expect((await listed()).length).toBe(before.length);
  });

  it('a freezer that exits 1 fails the backup with what it said', { timeout: 6 * MINUTES }, async () => {
    await noFreezers();
    await freezer('10-broken.freeze', 'echo "database is not running" >&2\nexit 1');
    const before = await listed();
    const r = await cli(['backup']);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/10-broken\.freeze exited with 1 before it said "ready" or "frozen": database is not running/);
    expect(await ownSnapshots()).toBe('');
    await expectIntact(before);
  });

  it('a snapshot that runs out of copy-on-write space fails the backup and says to raise snapshot.size', {
    timeout: 6 * MINUTES,
  }, async () => {
    await noFreezers();
    // Released, it rewrites 48 MiB of /home in the background, while the dump reads the 8 MiB snapshot.
    await freezer(
      '10-writer.freeze',
      `echo frozen\ncat > /dev/null\nsetsid bash -c 'dd if=/dev/urandom of="$SYN3_HOME/bob/churn.bin" bs=1M count=48 conv=fsync 2>/dev/null' </dev/null >/dev/null 2>&1 &`,
    );
    await g().writeFile('/etc/syn3-backup/small.yaml', snapshotConfig({ size: '8M' }), 0o600);
    const before = await listed();
    const r = await cli(['backup'], '/etc/syn3-backup/small.yaml');
    expect(r.exitCode, r.stderr).not.toBe(0);
    expect(r.stderr).toMatch(/ran out of copy-on-write space during the dump/);
    expect(r.stderr).toMatch(/Raise snapshot\.size/);
    expect(await ownSnapshots()).toBe('');
    await expectIntact(before);
    expect((await listed()).length).toBe(before.length);
    await sh(`pkill -x dd || true; sleep 0.2; rm -f ${HOME}/bob/churn.bin`);
  });

  it('refuses a /home that is not on LVM, saying so, before anything is written', { timeout: 6 * MINUTES }, async () => {
    await noFreezers();
    await sh(`mkfs.xfs -q -f ${g().disk('plain')} && mkdir -p /srv/plainhome && mount ${g().disk('plain')} /srv/plainhome`);
    await g().writeFile('/etc/syn3-backup/plain.yaml', snapshotConfig({ home: '/srv/plainhome' }), 0o600);
    const r = await cli(['backup'], '/etc/syn3-backup/plain.yaml');
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/mode is snapshot, but \/srv\/plainhome is not on an LVM logical volume/);
    expect(r.stderr).toMatch(/use mode: spool/);
    expect((await sh('ls -A /srv/plainhome')).stdout).toBe('');
  });

  it('refuses a snapshot the volume group has no room for, saying how much is free and needed', { timeout: 6 * MINUTES }, async () => {
    await g().writeFile('/etc/syn3-backup/big.yaml', snapshotConfig({ size: '4G' }), 0o600);
    const before = await listed();
    const r = await cli(['backup'], '/etc/syn3-backup/big.yaml');
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/the volume group vg0 has [\d.]+ MiB free, but the snapshot of home needs 4\.0 GiB \(snapshot\.size\)/);
    await expectIntact(before);
  });

  it('removes a leftover snapshot of its own, and never one without its tag', { timeout: 6 * MINUTES }, async () => {
    await sh(
      'lvcreate -q -y -s -L 8M -n syn3snap_leftover --addtag syn3-backup vg0/home && lvcreate -q -y -s -L 8M -n syn3snap_foreign vg0/home',
    );
    const r = await cli(['backup']);
    expect(r.exitCode, r.stderr).toBe(0);
    const left = (await sh('lvs --noheadings -o lv_name vg0')).stdout;
    expect(left).not.toMatch(/syn3snap_leftover/);
    expect(left).toMatch(/syn3snap_foreign/);
    await sh('lvremove -q -y vg0/syn3snap_foreign');
  });
});
