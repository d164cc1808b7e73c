/**
 * PostgreSQL 15 and MariaDB in a lane guest, each with its data directory
 * where the spec says (e.g. under /home, an XFS on LVM, to be snapshotted).
 * No systemd in the guest: each server is started by hand, as the packages'
 * units would, and stopped cleanly. Both are in the drill's template.
 */
import type { Guest } from './guest.js';

const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface Postgres {
  dataDir: string;
  port: number;
  /** The Unix socket's directory (psql -h). */
  socketDir: string;
  /** psql -XAt as the postgres user: unaligned rows, one per line. */
  sql(statements: string, database?: string): Promise<string>;
  stop(): Promise<void>;
}

/** initdb (unless dataDir holds a cluster already), then pg_ctl start -w; the log goes to /tmp/postgres-<port>.log. */
export async function startPostgres(guest: Guest, dataDir: string, port = 5432): Promise<Postgres> {
  const socketDir = '/run/postgresql';
  const asPostgres = (argv: string[]) => ['runuser', '-u', 'postgres', '--', ...argv];
  const fresh = (await guest.run(['test', '-f', `${dataDir}/PG_VERSION`])).exitCode !== 0;
  if (fresh) {
    await guest.ok(['install', '-d', '-o', 'postgres', '-g', 'postgres', '-m', '0700', dataDir]);
    await guest.ok(asPostgres([`${PG_BIN}/initdb`, '-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8']), {
      timeoutMs: 5 * 60_000,
    });
  }
  await guest.ok(
    asPostgres([
      `${PG_BIN}/pg_ctl`,
      '-D',
      dataDir,
      '-l',
      `/tmp/postgres-${port}.log`,
      '-o',
      `-c listen_addresses=127.0.0.1 -p ${port} -k ${socketDir}`,
      '-w',
      '-t',
      '300',
      'start',
    ]),
    { timeoutMs: 6 * 60_000 },
  );
  return {
    dataDir,
    port,
    socketDir,
    sql: async (statements, database = 'postgres') =>
      (
        await guest.ok(asPostgres(['psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-h', socketDir, '-p', String(port), '-d', database]), {
          input: statements,
          timeoutMs: 5 * 60_000,
        })
      ).stdout,
    stop: async () => {
      await guest.ok(asPostgres([`${PG_BIN}/pg_ctl`, '-D', dataDir, '-m', 'fast', '-w', '-t', '300', 'stop']), { timeoutMs: 6 * 60_000 });
    },
  };
}

export interface Mariadb {
  dataDir: string;
  socket: string;
  /** mariadb -N -B as root over the socket (root's unix_socket login): tab-separated rows. */
  sql(statements: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * mariadb-install-db (unless dataDir holds a system database already), then
 * mariadbd in the background as the agent's job "mariadb-<port>" (its own settings,
 * none of Debian's /etc/mysql; its log in /tmp/mariadb-<port>.err), until
 * mariadb-admin ping answers.
 */
export async function startMariadb(guest: Guest, dataDir: string, socket = '/run/mysqld/mysqld.sock', port = 3306): Promise<Mariadb> {
  const fresh = (await guest.run(['test', '-d', `${dataDir}/mysql`])).exitCode !== 0;
  if (fresh) {
    await guest.ok(['install', '-d', '-o', 'mysql', '-g', 'mysql', '-m', '0750', dataDir]);
    await guest.ok(['mariadb-install-db', '--no-defaults', '--user=mysql', `--datadir=${dataDir}`, '--skip-test-db'], {
      timeoutMs: 5 * 60_000,
    });
  }
  const errLog = `/tmp/mariadb-${port}.err`;
  const job = `mariadb-${port}`;
  await guest.start(job, [
    'mariadbd',
    '--no-defaults',
    '--user=mysql',
    `--datadir=${dataDir}`,
    `--socket=${socket}`,
    `--pid-file=${socket.replace(/\.sock$/, '')}.pid`,
    '--bind-address=127.0.0.1',
    `--port=${port}`,
    '--skip-log-bin',
    `--log-error=${errLog}`,
  ]);
  const ping = ['mariadb-admin', '--no-defaults', `--socket=${socket}`, 'ping'];
  const deadline = Date.now() + 5 * 60_000;
  const why = async (what: string) => {
    const text = (await guest.readFile(errLog).catch(() => Buffer.from(''))).toString().trim();
    return new Error(`${what}; ${errLog}:\n    ${text.split('\n').slice(-15).join('\n    ')}\n(serial log ${guest.serialLog})`);
  };
  while ((await guest.run(ping)).exitCode !== 0) {
    const r = await guest.wait(job, 1000).catch(() => undefined);
    if (r) throw await why(`mariadbd ended with ${r.exitCode} before it answered`);
    if (Date.now() > deadline) throw await why(`mariadbd does not answer on ${socket} after 5 minutes`);
  }
  return {
    dataDir,
    socket,
    sql: async (statements) =>
      (
        await guest.ok(['mariadb', '--no-defaults', `--socket=${socket}`, '-u', 'root', '-N', '-B'], {
          input: statements,
          timeoutMs: 5 * 60_000,
        })
      ).stdout,
    stop: async () => {
      await guest.ok(['mariadb-admin', '--no-defaults', `--socket=${socket}`, '-u', 'root', 'shutdown'], { timeoutMs: 5 * 60_000 });
      const r = await guest.wait(job, 5 * 60_000);
      if (r.exitCode !== 0) throw new Error(`mariadbd exited with ${r.exitCode}: ${r.stderr.trim().slice(-1500)}`);
    },
  };
}
