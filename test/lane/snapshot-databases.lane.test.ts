/**
 * The shipped freezers (examples/modules) with real databases in a guest:
 * MariaDB and PostgreSQL with their data on /home, an XFS on LVM. The MariaDB
 * freezer really holds commits while it is held; and a snapshot-mode backup
 * taken while clients keep committing gives data directories that both
 * servers start from (crash recovery), with the rows a gapless prefix of what
 * was committed.
 */
import { describe, expect, it } from 'vitest';
import { type Mariadb, type Postgres, startMariadb, startPostgres } from './databases.js';
import { type Guest, useGuest } from './guest.js';
import { makeSnapshotServer, SERVER } from './snapshot-server.js';

const MINUTES = 60_000;
const { home: HOME, modules: MODULES, config: CONFIG } = SERVER;

describe('the shipped freezers, with MariaDB and PostgreSQL on /home (in a QEMU guest)', () => {
  const guest = useGuest({
    name: 'snapshot-databases',
    disks: [
      { serial: 'vg', sizeMiB: 2048 },
      { serial: 'backup', sizeMiB: 1536 },
    ],
    share: ['examples/modules'],
  });
  const g = (): Guest => guest();
  const sh = (script: string, timeoutMs = 5 * MINUTES) => g().ok(['bash', '-euo', 'pipefail', '-c', script], { timeoutMs });
  let maria: Mariadb;
  let pg: Postgres;

  it('sets up /home on LVM with both databases on it, and both freezers enabled', { timeout: 15 * MINUTES }, async () => {
    await makeSnapshotServer(g(), { homeMiB: 900, config: { size: '256M' } });
    await sh(
      `install -m 0700 /opt/syn3-backup/examples/modules/mariadb.freeze /opt/syn3-backup/examples/modules/postgresql.freeze ${MODULES}/`,
    );
    maria = await startMariadb(g(), `${HOME}/mysql`);
    pg = await startPostgres(g(), `${HOME}/pgdata`);
    await maria.sql('CREATE DATABASE shop; CREATE TABLE shop.orders (n INT PRIMARY KEY) ENGINE=InnoDB;');
    await pg.sql('CREATE TABLE orders (n int PRIMARY KEY);');
  });

  it('the MariaDB freezer holds a commit from another session while held, and lets it through when released', {
    timeout: 6 * MINUTES,
  }, async () => {
    await sh('rm -f /run/release /run/freezer.out');
    // Told to freeze once it is ready (it reads the line only then); its stdin stays open until /run/release appears.
    await g().start(
      'freeze',
      ['bash', '-c', `exec ${MODULES}/mariadb.freeze > /run/freezer.out < <(echo freeze; while [ ! -e /run/release ]; do sleep 0.1; done)`],
      { env: { SYN3_HOME: HOME, SYN3_BACKUP_ID: 'by-hand' } },
    );
    // Until it says frozen; a freezer that ended instead fails here with what it said.
    const t0 = Date.now();
    while ((await g().run(['grep', '-qx', 'frozen', '/run/freezer.out'])).exitCode !== 0) {
      const ended = await g()
        .wait('freeze', 500)
        .catch(() => undefined);
      if (ended) throw new Error(`mariadb.freeze ended (${ended.exitCode}) before it said frozen: ${ended.stderr.trim()}`);
      if (Date.now() - t0 > 3 * MINUTES) throw new Error('mariadb.freeze did not say frozen within 3 minutes');
    }
    await g().start('commit', [
      'mariadb',
      '--no-defaults',
      `--socket=${maria.socket}`,
      '-u',
      'root',
      '-e',
      'INSERT INTO shop.orders VALUES (0)',
    ]);
    // Held: after three seconds the commit has still not returned.
    await expect(g().wait('commit', 3000)).rejects.toThrow();
    expect((await maria.sql("SELECT COUNT(*) FROM information_schema.processlist WHERE state LIKE '%backup lock%'")).trim()).not.toBe('0');
    await sh('touch /run/release');
    const commit = await g().wait('commit', 60_000);
    expect(commit.exitCode, commit.stderr).toBe(0);
    expect((await g().wait('freeze', 60_000)).exitCode).toBe(0);
    expect((await maria.sql('SELECT COUNT(*) FROM shop.orders WHERE n = 0')).trim()).toBe('1');
  });

  it('a snapshot-mode backup under write load restores to data directories both servers start from, rows gapless', {
    timeout: 20 * MINUTES,
  }, async () => {
    // Two clients commit one row at a time and note each commit once it returned.
    for (const [name, insert] of [
      ['maria-writer', `mariadb --no-defaults --socket=${maria.socket} -u root -e "INSERT INTO shop.orders VALUES ($i)"`],
      ['pg-writer', `runuser -u postgres -- psql -XAtq -h ${pg.socketDir} -p ${pg.port} -c "INSERT INTO orders VALUES ($i)"`],
    ] as const) {
      await g().start(name, [
        'bash',
        '-c',
        `i=0; while [ ! -e /run/stop-writers ]; do i=$((i+1)); ${insert} && echo $i > /run/${name}.last; done`,
      ]);
    }
    await sh('for i in $(seq 600); do [ -s /run/maria-writer.last ] && [ -s /run/pg-writer.last ] && exit 0; sleep 0.1; done; exit 1');
    const backup = await g().run(['syn3-backup', '--config', CONFIG, 'backup'], { timeoutMs: 10 * MINUTES });
    await sh('touch /run/stop-writers');
    await g().wait('maria-writer', MINUTES);
    await g().wait('pg-writer', MINUTES);
    expect(backup.exitCode, backup.stderr).toBe(0);
    const status = JSON.parse((await g().ok(['syn3-backup', '--config', CONFIG, 'status', '--json'])).stdout) as {
      lastSuccess: { id: string; freezeWindowMs: number };
    };
    const committed = {
      maria: Number((await g().readFile('/run/maria-writer.last')).toString()),
      pg: Number((await g().readFile('/run/pg-writer.last')).toString()),
    };
    // How the window came about: the freezers' lines in the program's log.
    const lines = (await g().readFile('/var/lib/syn3-backup/syn3-backup.log'))
      .toString()
      .split('\n')
      .filter((l) => /"msg":"(freeze|snapshot): /.test(l))
      .map((l) => JSON.parse(l) as { time: string; msg: string })
      .map((l) => `${l.time.slice(11, 23)} ${l.msg}`);
    console.info(`the freeze, from the program's log:\n  ${lines.slice(-12).join('\n  ')}`);
    console.info(
      `snapshot mode with the MariaDB and PostgreSQL freezers under write load: databases frozen ${status.lastSuccess.freezeWindowMs} ms (goal 2000 ms under TCG: ${status.lastSuccess.freezeWindowMs <= 2000 ? 'met' : 'missed'}); committed meanwhile: MariaDB ${committed.maria}, PostgreSQL ${committed.pg} rows`,
    );

    // The dump, restored with plain xfsrestore, and both servers started from it on other ports.
    await sh(
      `lvcreate -q -y -L 600M -n restored vg0 && mkfs.xfs -q /dev/vg0/restored && mkdir -p /srv/restored && mount /dev/vg0/restored /srv/restored && xfsrestore -q -f /backup/${status.lastSuccess.id}/home.xfsdump /srv/restored > /dev/null`,
    );
    await sh('rm -f /srv/restored/mysql/*.pid /srv/restored/pgdata/postmaster.pid');
    const maria2 = await startMariadb(g(), '/srv/restored/mysql', '/run/mysqld/restored.sock', 3307);
    const pg2 = await startPostgres(g(), '/srv/restored/pgdata', 5433);
    const [mCount, mMax] = (await maria2.sql('SELECT COUNT(*), COALESCE(MAX(n), 0) FROM shop.orders WHERE n > 0'))
      .trim()
      .split('\t')
      .map(Number);
    const [pCount, pMax] = (await pg2.sql('SELECT count(*), coalesce(max(n), 0) FROM orders')).trim().split('|').map(Number);
    // A gapless prefix: every row up to the last one is there, and none that was not yet committed.
    expect(mCount).toBe(mMax);
    expect(pCount).toBe(pMax);
    expect(mMax).toBeGreaterThan(0);
    expect(pMax).toBeGreaterThan(0);
    expect(mMax).toBeLessThanOrEqual(committed.maria);
    expect(pMax).toBeLessThanOrEqual(committed.pg);
    console.info(`restored from the snapshot: MariaDB rows 1..${mMax}, PostgreSQL rows 1..${pMax}`);
    await maria2.stop();
    await pg2.stop();
  });
});
