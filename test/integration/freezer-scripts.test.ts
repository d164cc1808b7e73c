// The shipped database modules as files, no database needed: each parses as
// bash and passes shellcheck, and the settings file a database's modules share
// is read alike by all of them (every key of the family accepted by each, a
// misspelt one refused), since one file serves the .freeze, .backup and .restore.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installModules, MODULES_SOURCE, runModule } from '../support/databases.js';

const scripts = readdirSync(MODULES_SOURCE)
  .filter((n) => /\.(freeze|backup|restore)$/.test(n))
  .sort();
const shellcheckMissing =
  spawnSync('sh', ['-c', 'command -v shellcheck'], { stdio: 'ignore' }).status === 0
    ? undefined
    : 'shellcheck is not installed (apt-get install -y shellcheck)';

describe('examples/modules', () => {
  it('ships a .freeze, .backup and .restore for MariaDB and PostgreSQL, and a README', () => {
    expect(readdirSync(MODULES_SOURCE).sort()).toEqual([
      'README',
      'mariadb.backup',
      'mariadb.freeze',
      'mariadb.restore',
      'postgresql.backup',
      'postgresql.freeze',
      'postgresql.restore',
    ]);
  });

  for (const name of scripts) {
    it(`${name} parses as bash`, () => {
      const r = spawnSync('bash', ['-n', join(MODULES_SOURCE, name)], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    });
  }

  it('shellcheck finds nothing in any of them', () => {
    if (shellcheckMissing) throw new Error(shellcheckMissing);
    const r = spawnSync(
      'shellcheck',
      scripts.map((n) => join(MODULES_SOURCE, n)),
      { encoding: 'utf8' },
    );
    expect(r.stdout).toBe('');
    expect(r.status).toBe(0);
  });
});

// What each module says once it got past its settings, when no server is there to answer.
const PAST_SETTINGS: Record<string, RegExp> = {
  freeze: /cannot ask the server/,
  backup: /dump(all)? failed/,
  restore: /no complete dump/,
};

const FAMILY = {
  mariadb: (dir: string) => `SOCKET=${dir}/none.sock\nDEFAULTS_EXTRA_FILE=${dir}/client.cnf\nFREEZE_TIMEOUT=5\nSERVICE="mariadb"\n`,
  postgresql: (dir: string) => `PORT=5499\nSOCKET_DIR='${dir}/none'\nUSER=postgres\nSERVICE=postgresql\n`,
} as const;

describe('the settings file a database modules share', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'syn3-modules-'));
    writeFileSync(join(dir, 'client.cnf'), '[client]\nuser=backup\npassword=x\n', { mode: 0o600 });
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const env = () => ({ SYN3_SPOOL: join(dir, 'spool'), SYN3_BACKUP_ID: 'h-1', SYN3_HOME: dir });

  for (const [db, settings] of Object.entries(FAMILY)) {
    for (const suffix of ['freeze', 'backup', 'restore'] as const) {
      it(`${db}.${suffix} accepts every key of the ${db} family`, async () => {
        const m = installModules(join(dir, `${db}-all`), db as keyof typeof FAMILY, settings(dir));
        const r = await runModule(m[suffix], env());
        expect(r.exitCode).toBe(1);
        expect(r.stderr).not.toMatch(/unknown key|not KEY=VALUE/);
        expect(r.stderr).toMatch(PAST_SETTINGS[suffix]!);
      });

      it(`${db}.${suffix} refuses a misspelt key`, async () => {
        const m = installModules(join(dir, `${db}-typo`), db as keyof typeof FAMILY, 'TIMEOUT=5\n');
        const r = await runModule(m[suffix], env());
        expect(r.exitCode).toBe(1);
        expect(r.stderr).toMatch(new RegExp(`^${db}\\.${suffix}: \\S+/${db}\\.conf: unknown key TIMEOUT$`));
      });
    }
  }
});
