// examples/modules/postgresql.*, against throwaway clusters: the freezer as
// snapshot mode drives it (a real CHECKPOINT before "frozen", held until stdin
// closes; refused when the data directory, pg_wal or a tablespace is off the
// snapshotted volume), and the spool pair (pg_dumpall into the spool, loaded
// back after a restore). The modules run as an administrator enables them: a
// root-only copy in a modules directory, their settings file beside them.
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  installModules,
  postgresMissing,
  runModule,
  startFreezer as startFreezerOf,
  startPostgres,
  type InstalledModules,
  type RunningFreezer,
  type PostgresServer,
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

const missing = postgresMissing();

describe('postgresql modules', () => {
  let pg: PostgresServer;
  let m: InstalledModules;
  beforeAll(async () => {
    if (missing) throw new Error(`the PostgreSQL module tests cannot run: ${missing}`);
    pg = await startPostgres();
    m = installModules(join(pg.dir, 'modules'), 'postgresql', pg.settings);
  });
  afterAll(async () => {
    await pg?.stop();
  });

  const checkpointLsn = () => pg.sql('SELECT checkpoint_lsn FROM pg_control_checkpoint()');

  /** Runs the freezer to its end with stdin closed at once; for the refusals. */
  async function refusal(home: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const f = startFreezer(m.freeze, { SYN3_HOME: home });
    f.thaw();
    const { code } = await f.exited;
    return { code, stdout: f.stdout(), stderr: f.stderr() };
  }

  describe('postgresql.freeze', () => {
    it('says ready only after a CHECKPOINT: the last checkpoint has moved on when it does', async () => {
      const before = checkpointLsn();
      const f = startFreezer(m.freeze, { SYN3_HOME: pg.home });
      await f.ready();
      const after = checkpointLsn();
      expect(pg.sql(`SELECT '${after}'::pg_lsn > '${before}'::pg_lsn`)).toBe('t');
    });

    it('says frozen when told to freeze, holds while its stdin is open, and exits 0 having said only "ready" and "frozen" when it closes', async () => {
      const f = startFreezer(m.freeze, { SYN3_HOME: pg.home });
      await f.frozen();
      await sleep(1000);
      expect(f.child.exitCode).toBeNull();
      f.thaw();
      const { code } = await f.exited;
      expect(code).toBe(0);
      expect(f.stdout()).toBe('ready\nfrozen\n');
      expect(f.stderr()).toBe('');
    });

    it('exits 0 without saying frozen when its stdin closes after ready, before it is told to freeze', async () => {
      const f = startFreezer(m.freeze, { SYN3_HOME: pg.home });
      await f.ready();
      f.thaw();
      const { code } = await f.exited;
      expect(code).toBe(0);
      expect(f.stdout()).toBe('ready\n');
    });

    it('refuses a data directory that is not under SYN3_HOME, in one line, without saying frozen', async () => {
      const r = await refusal(join(pg.dir, 'outside'));
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^postgresql\.freeze: the data directory \S+\/home\/data .*is not on the file system at \S+\/outside/);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    });

    it('refuses a tablespace outside SYN3_HOME, following its pg_tblspc link', async () => {
      const location = pg.ownedDir('outside/ts');
      pg.sql(`CREATE TABLESPACE outside_ts LOCATION '${location}'`);
      try {
        const r = await refusal(pg.home);
        expect(r.code).toBe(1);
        expect(r.stdout).toBe('');
        expect(r.stderr).toContain(`postgresql.freeze: tablespace `);
        expect(r.stderr).toContain(`(${location}) is not on the file system at ${pg.home}`);
      } finally {
        pg.sql('DROP TABLESPACE outside_ts');
      }
    });

    it('refuses a settings file that others can write', async () => {
      chmodSync(m.conf, 0o602);
      try {
        const r = await refusal(pg.home);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/postgresql\.conf must be a regular file owned by root that group and others cannot write/);
      } finally {
        chmodSync(m.conf, 0o600);
      }
    });
  });

  describe('postgresql.backup and postgresql.restore', () => {
    const id = 'sandbox-host-20260101T020000Z';
    const spool = () => join(pg.dir, 'spool');
    beforeAll(() => {
      // Root's, as the program's spool is: the modules write into it as root.
      mkdirSync(spool(), { mode: 0o700 });
      pg.sql('CREATE DATABASE shop');
      pg.sql("CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders VALUES (1, 'tea'), (2, 'milk')", 'shop');
    });

    it('round-trip a table: the rows dumped come back after the table changed', async () => {
      const backup = await runModule(m.backup, { SYN3_SPOOL: spool(), SYN3_BACKUP_ID: id });
      expect(backup.stderr).toBe('');
      expect(backup.exitCode).toBe(0);
      expect(readFileSync(join(spool(), 'postgresql', 'backup-id'), 'utf8')).toBe(`${id}\n`);
      expect(existsSync(join(spool(), 'postgresql', 'all.sql.part'))).toBe(false);

      pg.sql("DELETE FROM orders WHERE id = 1; INSERT INTO orders VALUES (3, 'sugar'); CREATE TABLE later (x int)", 'shop');
      const restore = await runModule(m.restore, { SYN3_SPOOL: spool(), SYN3_BACKUP_ID: id });
      expect(restore.stderr).toBe('');
      expect(restore.exitCode).toBe(0);
      expect(pg.sql('SELECT id, item FROM orders ORDER BY id', 'shop')).toBe('1|tea\n2|milk');
      expect(pg.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'later'", 'shop')).toBe('0');
    });

    it('postgresql.restore refuses a dump made by another backup and loads nothing', async () => {
      expect((await runModule(m.backup, { SYN3_SPOOL: spool(), SYN3_BACKUP_ID: id })).exitCode).toBe(0);
      pg.sql("INSERT INTO orders VALUES (4, 'honey')", 'shop');
      const restore = await runModule(m.restore, { SYN3_SPOOL: spool(), SYN3_BACKUP_ID: 'sandbox-host-20260102T020000Z' });
      expect(restore.exitCode).toBe(1);
      expect(restore.stderr).toMatch(
        /is of backup sandbox-host-20260101T020000Z, not of sandbox-host-20260102T020000Z being restored; not loaded/,
      );
      expect(pg.sql('SELECT count(*) FROM orders WHERE id = 4', 'shop')).toBe('1');
    });
  });
});

describe('postgresql.freeze with pg_wal linked elsewhere', () => {
  let pg: PostgresServer;
  let m: InstalledModules;
  beforeAll(async () => {
    if (missing) throw new Error(`the PostgreSQL module tests cannot run: ${missing}`);
    pg = await startPostgres({ walDir: 'outside/wal' });
    m = installModules(join(pg.dir, 'modules'), 'postgresql', pg.settings);
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('refuses a WAL directory outside SYN3_HOME even though pg_wal itself is inside', async () => {
    const f = startFreezer(m.freeze, { SYN3_HOME: pg.home });
    f.thaw();
    const { code } = await f.exited;
    expect(code).toBe(1);
    expect(f.stdout()).toBe('');
    expect(f.stderr()).toContain(`postgresql.freeze: the WAL directory ${pg.dataDir}/pg_wal (${join(pg.dir, 'outside/wal')}) is not on`);
  });
});
