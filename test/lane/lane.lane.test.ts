/**
 * The test lane's own checks, in one guest: it boots the template's kernel,
 * device-mapper works (an LVM snapshot of a mounted XFS, mounted read-only
 * beside it), XFS quotas are enforced, the current build of syn3-backup runs,
 * the databases start with their data on an XFS on LVM, background processes
 * and files go both ways, and a failing command fails its spec with the serial
 * log named. It prints the boot time (QEMU start to the first command).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startMariadb, startPostgres } from './databases.js';
import { type Guest, useGuest } from './guest.js';
import { REPO_ROOT } from './image.js';

const MINUTES = 60_000;

describe('the test lane', () => {
  const guest = useGuest({
    name: 'lane-smoke',
    disks: [
      { serial: 'lvm', sizeMiB: 2048 },
      { serial: 'quota', sizeMiB: 512 },
    ],
  });

  it('boots the template kernel and reaches the first command within the goal', async () => {
    const g = guest();
    const goal = g.bootSeconds <= 30 ? 'met' : 'missed';
    console.info(
      `lane boot: ${g.bootSeconds.toFixed(1)} s from QEMU start to the first command (goal 30 s: ${goal}); the guest's uptime then ${g.guestUptime.toFixed(1)} s`,
    );
    expect((await g.ok(['uname', '-r'])).stdout.trim()).toBe(g.image.kernelRelease);
    expect((await g.ok(['cat', '/proc/1/cmdline'])).stdout.replace(/\0/g, ' ').trim()).toBe('/bin/sh /lane/init');
    expect((await g.ok(['hostname'])).stdout.trim()).toBe('lane');
    // Extra disks: by order, by serial, and as by-id links the init made.
    expect([g.disk('lvm'), g.disk('quota')]).toEqual(['/dev/vdb', '/dev/vdc']);
    expect((await g.ok(['readlink', '-f', '/dev/disk/by-id/virtio-quota'])).stdout.trim()).toBe('/dev/vdc');
    expect((await g.ok(['readlink', '/etc/mtab'])).stdout.trim()).toBe('../proc/self/mounts');
  });

  it('device-mapper: an LVM snapshot of a mounted XFS, mounted read-only while the origin changes', { timeout: 5 * MINUTES }, async () => {
    const g = guest();
    await homeOnLvm(g);
    await g.writeFile('/home/before.txt', 'written before the snapshot\n');
    await g.ok(['lvcreate', '-y', '-s', '-L', '128M', '-n', 'home-snap', 'lane/home']);
    await g.writeFile('/home/after.txt', 'written after the snapshot\n');
    await g.ok(['mkdir', '-p', '/mnt/snap']);
    await g.ok(['mount', '-o', 'ro,nouuid', '/dev/lane/home-snap', '/mnt/snap']);
    expect((await g.readFile('/mnt/snap/before.txt')).toString()).toBe('written before the snapshot\n');
    expect((await g.run(['test', '-e', '/mnt/snap/after.txt'])).exitCode).toBe(1);
    const attrs = (await g.ok(['lvs', '--noheadings', '-o', 'lv_name,lv_attr', 'lane'])).stdout;
    // s: a snapshot; its 5th character a: active (I would be invalid: its copy-on-write space ran out).
    expect(attrs).toMatch(/home-snap\s+s\S{3}a/);
    expect(attrs).toMatch(/home\s+o\S{3}a/);
    expect((await g.ok(['findmnt', '-no', 'FSTYPE,OPTIONS', '/mnt/snap'])).stdout).toMatch(/^xfs\s+ro,/);
    await g.ok(['umount', '/mnt/snap']);
    await g.ok(['lvremove', '-y', 'lane/home-snap']);
  });

  it('XFS quotas: mounted with uquota, a hard limit stops a user', { timeout: 5 * MINUTES }, async () => {
    const g = guest();
    await g.ok(['mkfs.xfs', '-q', '-f', g.disk('quota')]);
    await g.ok(['mkdir', '-p', '/mnt/quota']);
    await g.ok(['mount', '-o', 'uquota', g.disk('quota'), '/mnt/quota']);
    await g.ok(['xfs_quota', '-x', '-c', 'limit -u bsoft=4m bhard=8m nobody', '/mnt/quota']);
    expect((await g.ok(['xfs_quota', '-x', '-c', 'state -u', '/mnt/quota'])).stdout).toMatch(/Accounting: ON[\s\S]*Enforcement: ON/);
    await g.ok(['install', '-d', '-o', 'nobody', '/mnt/quota/nobody']);
    const dd = await g.run(['runuser', '-u', 'nobody', '--', 'dd', 'if=/dev/zero', 'of=/mnt/quota/nobody/big', 'bs=1M', 'count=16']);
    expect(dd.exitCode).not.toBe(0);
    expect(dd.stderr).toMatch(/Disk quota exceeded/);
    expect((await g.ok(['xfs_quota', '-x', '-c', 'report -u -b -N', '/mnt/quota'])).stdout).toMatch(/nobody\s+8192\s+4096\s+8192/);
    await g.ok(['umount', '/mnt/quota']);
  });

  it('runs the current build of syn3-backup', { timeout: 2 * MINUTES }, async () => {
    const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    expect((await guest().ok(['syn3-backup', '--version'])).stdout.trim()).toBe(version);
    expect((await guest().ok(['findmnt', '-no', 'OPTIONS', '/opt/syn3-backup'])).stdout).toMatch(/^ro,/);
  });

  it('PostgreSQL 15 with its data directory on the XFS on LVM', { timeout: 10 * MINUTES }, async () => {
    const g = guest();
    await homeOnLvm(g);
    const pg = await startPostgres(g, '/home/pgdata');
    await pg.sql('CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 1000);');
    expect((await pg.sql('SELECT count(*), sum(n) FROM t;')).trim()).toBe('1000|500500');
    expect((await g.ok(['findmnt', '-no', 'SOURCE', '-T', '/home/pgdata'])).stdout.trim()).toBe('/dev/mapper/lane-home');
    await pg.stop();
  });

  it('MariaDB with its data directory on the XFS on LVM', { timeout: 10 * MINUTES }, async () => {
    const g = guest();
    await homeOnLvm(g);
    const db = await startMariadb(g, '/home/mysql');
    await db.sql('CREATE DATABASE shop; CREATE TABLE shop.t (n int) ENGINE=InnoDB; INSERT INTO shop.t VALUES (1), (2), (3);');
    expect((await db.sql('SELECT count(*), sum(n) FROM shop.t;')).trim()).toBe('3\t6');
    // What snapshot mode will do around its snapshot: BACKUP STAGE in one session.
    expect(await db.sql('BACKUP STAGE START; BACKUP STAGE BLOCK_COMMIT; BACKUP STAGE END; SELECT 1;')).toBe('1\n');
    await db.stop();
  });

  it('background processes: start, signal, wait; orphans are reaped by the init', { timeout: 2 * MINUTES }, async () => {
    const g = guest();
    const { pid } = await g.start('sleeper', ['sleep', '600']);
    expect(pid).toBeGreaterThan(1);
    await expect(g.wait('sleeper', 200)).rejects.toThrow(/still runs/);
    await g.signal('sleeper', 'SIGTERM');
    expect(await g.wait('sleeper', 30_000)).toMatchObject({ exitCode: 143, signal: 'SIGTERM' });
    // A daemon left behind by its parent is the init's child; once killed, nothing of it may stay (no zombie).
    const orphan = (await g.ok(['sh', '-c', 'sleep 600 >/dev/null 2>&1 & echo $!'])).stdout.trim();
    expect((await g.ok(['ps', '-o', 'ppid=', '-p', orphan])).stdout.trim()).toBe('1');
    await g.ok(['kill', orphan]);
    await g.ok(['sh', '-c', `for i in $(seq 50); do [ -e /proc/${orphan} ] || exit 0; sleep 0.1; done; exit 1`]);
  });

  it('files both ways, with modes and bytes kept; stdin, env and cwd reach the program', { timeout: 2 * MINUTES }, async () => {
    const g = guest();
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) % 256));
    await g.writeFile('/root/lane/bytes.bin', bytes, 0o600);
    expect((await g.readFile('/root/lane/bytes.bin')).equals(bytes)).toBe(true);
    expect((await g.ok(['stat', '-c', '%a %s', '/root/lane/bytes.bin'])).stdout.trim()).toBe('600 70000');
    const r = await g.ok(['sh', '-c', 'read line; echo "$line $LANE_WORD $(pwd)"'], {
      input: 'hello\n',
      env: { LANE_WORD: 'ünïcode' },
      cwd: '/tmp',
    });
    expect(r.stdout).toBe('hello ünïcode /tmp\n');
    const slow = await g.run(['sleep', '30'], { timeoutMs: 300 });
    expect(slow).toMatchObject({ timedOut: true, signal: 'SIGKILL' });
  });

  it('a failing command fails with what it said and the serial log named', async () => {
    const g = guest();
    const failure = g.ok(['sh', '-c', 'echo "the doomed line" >&2; exit 3']);
    await expect(failure).rejects.toThrow(/sh -c .* exited with 3[\s\S]*stderr:\s+the doomed line[\s\S]*serial log: \/.*\/serial\.log/);
    const message = await failure.catch((e: Error) => e.message);
    expect(message).toContain(g.serialLog);
    // The agent logged it on the console, so the serial log tells the story too.
    expect(readFileSync(g.serialLog, 'latin1')).toMatch(/lane-agent: exit 3 [^\n]*sh -c[\s\S]*lane-agent:\s+stderr: the doomed line/);
    await expect(g.ok(['/no/such/program'])).rejects.toThrow(/exited with 127[\s\S]*cannot run \/no\/such\/program/);
  });
});

/** /home as an XFS on an LVM logical volume on the disk "lvm", made once per guest (the specs share it). */
async function homeOnLvm(g: Guest): Promise<void> {
  if ((await g.run(['mountpoint', '-q', '/home'])).exitCode === 0) return;
  await g.ok(['pvcreate', '-y', g.disk('lvm')]);
  await g.ok(['vgcreate', 'lane', g.disk('lvm')]);
  await g.ok(['lvcreate', '-y', '-L', '1G', '-n', 'home', 'lane']);
  await g.ok(['mkfs.xfs', '-q', '/dev/lane/home']);
  await g.ok(['mount', '/dev/lane/home', '/home']);
}
