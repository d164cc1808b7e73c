// examples/modules/mariadb.*, against a throwaway MariaDB server: the freezer
// as snapshot mode drives it (BACKUP STAGE BLOCK_COMMIT held in one session
// while stdin is open: a commit from another session waits for it; released
// when stdin closes, and by the server itself when the freezer is killed),
// and the spool pair (mariadb-dump into the spool, loaded back after a
// restore). The modules run as an administrator enables them: a root-only copy
// in a modules directory, their settings file beside them. In CI a missing
// MariaDB fails these tests instead of skipping them.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  installModules,
  mariadbMissing,
  runModule,
  startFreezer as startFreezerOf,
  startMariadb,
  type InstalledModules,
  type RunningFreezer,
  type MariadbServer,
} from '../support/databases.js';
import { sleep } from '../support/servers/common.js';

/** Every freezer a test starts; one a failing test left holding is killed after it. */
const freezers: RunningFreezer[] = [];
function startFreezer(...args: Parameters<typeof startFreezerOf>): RunningFreezer {
  const f = startFreezerOf(...args);
  freezers.push(f);
  return f;
}
afterEach(() => {
  for (const f of freezers.splice(0)) if (f.child.exitCode === null && f.child.signalCode === null) f.child.kill('SIGKILL');
});

const missing = mariadbMissing();

describe('mariadb modules', () => {
  let db: MariadbServer;
  let m: InstalledModules;
  beforeAll(async () => {
    if (missing) throw new Error(`the MariaDB module tests cannot run: ${missing}`);
    db = await startMariadb();
    m = installModules(join(db.dir, 'modules'), 'mariadb', db.settings);
    db.sql('CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, item VARCHAR(20)) ENGINE=InnoDB');
  });
  afterAll(async () => {
    await db?.stop();
  });

  const waitingForBackupLock = () =>
    Number(db.sql("SELECT COUNT(*) FROM information_schema.processlist WHERE state = 'Waiting for backup lock'"));

  async function untilWaiting(): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (waitingForBackupLock() === 0) {
      if (Date.now() > deadline) throw new Error('the commit never waited for the backup lock');
      await sleep(50);
    }
  }

  describe('mariadb.freeze', () => {
    beforeEach(() => {
      db.sql('DELETE FROM shop.orders');
    });

    it('while it holds the freeze a commit from another session waits, and goes through once its stdin closes; then it exits 0', async () => {
      const f = startFreezer(m.freeze, { SYN3_HOME: db.home });
      await f.frozen();
      const insert = db.startSql("INSERT INTO shop.orders VALUES (1, 'tea')");
      let committed = false;
      void insert.then(() => {
        committed = true;
      });
      await untilWaiting();
      await sleep(1000);
      expect(committed).toBe(false);
      expect(db.sql('SELECT COUNT(*) FROM shop.orders')).toBe('0');

      f.thaw();
      const { code } = await f.exited;
      expect(code).toBe(0);
      expect(f.stdout()).toBe('ready\nfrozen\n');
      expect(f.stderr()).toBe('');
      expect((await insert).exitCode).toBe(0);
      expect(db.sql('SELECT item FROM shop.orders WHERE id = 1')).toBe('tea');
    });

    it('ready, before it is told to freeze, holds no commit; told, it does', async () => {
      const f = startFreezer(m.freeze, { SYN3_HOME: db.home });
      await f.ready();
      // BACKUP STAGE BLOCK_DDL is held now: DDL waits, commits do not.
      db.sql("INSERT INTO shop.orders VALUES (3, 'bread')");
      expect(db.sql('SELECT item FROM shop.orders WHERE id = 3')).toBe('bread');
      await f.frozen();
      const insert = db.startSql("INSERT INTO shop.orders VALUES (4, 'salt')");
      await untilWaiting();
      f.thaw();
      expect((await f.exited).code).toBe(0);
      expect((await insert).exitCode).toBe(0);
    });

    it('exits 0 without freezing when its stdin closes after ready, and leaves no stage behind', async () => {
      const f = startFreezer(m.freeze, { SYN3_HOME: db.home });
      await f.ready();
      f.thaw();
      const { code } = await f.exited;
      expect(code).toBe(0);
      expect(f.stdout()).toBe('ready\n');
      // A DDL would wait for a stage left behind (lock_wait_timeout 1 s: it fails instead of hanging).
      db.sql('SET SESSION lock_wait_timeout = 1; CREATE TABLE shop.after_ready (n INT) ENGINE=InnoDB; DROP TABLE shop.after_ready');
    });

    it('killed with SIGKILL, it lets the waiting commit through within a second (the server ends the stage with the session)', async () => {
      const f = startFreezer(m.freeze, { SYN3_HOME: db.home });
      await f.frozen();
      const insert = db.startSql("INSERT INTO shop.orders VALUES (2, 'milk')");
      await untilWaiting();
      const killedAt = Date.now();
      f.child.kill('SIGKILL');
      const r = await insert;
      expect(Date.now() - killedAt).toBeLessThan(1000);
      expect(r.exitCode).toBe(0);
      expect((await f.exited).signal).toBe('SIGKILL');
      expect(waitingForBackupLock()).toBe(0);
    });

    it('exits 1 at the thaw when the server ended its session while it held (the snapshot may not be consistent)', async () => {
      const f = startFreezer(m.freeze, { SYN3_HOME: db.home });
      await f.frozen();
      // The freezer's session is the one idle connection: it waits for the next statement.
      const session = db.sql("SELECT id FROM information_schema.processlist WHERE command = 'Sleep'");
      expect(session).toMatch(/^\d+$/);
      db.sql(`KILL ${session}`);
      f.thaw();
      const { code } = await f.exited;
      expect(code).toBe(1);
      expect(f.stderr()).toMatch(/^mariadb\.freeze: (BACKUP STAGE END failed|the session holding BLOCK_COMMIT ended)/);
    });

    it('refuses a data directory that is not under SYN3_HOME, in one line, without freezing', async () => {
      const f = startFreezer(m.freeze, { SYN3_HOME: join(db.dir, 'outside') });
      f.thaw();
      const { code } = await f.exited;
      expect(code).toBe(1);
      expect(f.stdout()).toBe('');
      expect(f.stderr()).toMatch(
        /^mariadb\.freeze: \S+\/home\/mysql\/ .*is not on the file system at \S+\/outside, which the snapshot holds/,
      );
      expect(f.stderr().trimEnd().split('\n')).toHaveLength(1);
    });

    it('exits 1 with a one-line reason when the server does not answer', async () => {
      const other = installModules(join(db.dir, 'modules-wrong-socket'), 'mariadb', `SOCKET=${join(db.dir, 'no.sock')}\n`);
      const f = startFreezer(other.freeze, { SYN3_HOME: db.home });
      f.thaw();
      const { code } = await f.exited;
      expect(code).toBe(1);
      expect(f.stdout()).toBe('');
      expect(f.stderr()).toMatch(/^mariadb\.freeze: cannot ask the server for its directories: .*no\.sock/);
      expect(f.stderr().trimEnd().split('\n')).toHaveLength(1);
    });
  });

  describe('mariadb.backup and mariadb.restore', () => {
    const id = 'sandbox-host-20260101T020000Z';
    const spool = () => join(db.dir, 'spool');
    beforeAll(() => {
      // Root's, as the program's spool is: the modules write into it as root.
      mkdirSync(spool(), { mode: 0o700 });
      db.sql("DELETE FROM shop.orders; INSERT INTO shop.orders VALUES (1, 'tea'), (2, 'milk')");
    });

    it('round-trip a table: the rows dumped come back after the table changed', async () => {
      const backup = await runModule(m.backup, { SYN3_SPOOL: spool(), SYN3_BACKUP_ID: id });
      expect(backup.stderr).toBe('');
      expect(backup.exitCode).toBe(0);
      expect(readFileSync(join(spool(), 'mariadb', 'backup-id'), 'utf8')).toBe(`${id}\n`);
      expect(existsSync(join(spool(), 'mariadb', 'all-databases.sql.part'))).toBe(false);

      db.sql("DELETE FROM shop.orders WHERE id = 1; INSERT INTO shop.orders VALUES (3, 'sugar')");
      const restore = await runModule(m.restore, { SYN3_SPOOL: spool(), SYN3_BACKUP_ID: id });
      expect(restore.stderr).toBe('');
      expect(restore.exitCode).toBe(0);
      expect(db.sql("SELECT CONCAT(id, '|', item) FROM shop.orders ORDER BY id")).toBe('1|tea\n2|milk');
    });

    it('mariadb.restore refuses a dump made by another backup and loads nothing', async () => {
      expect((await runModule(m.backup, { SYN3_SPOOL: spool(), SYN3_BACKUP_ID: id })).exitCode).toBe(0);
      db.sql("INSERT INTO shop.orders VALUES (4, 'honey')");
      const restore = await runModule(m.restore, { SYN3_SPOOL: spool(), SYN3_BACKUP_ID: 'sandbox-host-20260102T020000Z' });
      expect(restore.exitCode).toBe(1);
      expect(restore.stderr).toMatch(
        /is of backup sandbox-host-20260101T020000Z, not of sandbox-host-20260102T020000Z being restored; not loaded/,
      );
      expect(db.sql('SELECT COUNT(*) FROM shop.orders WHERE id = 4')).toBe('1');
    });
  });
});
