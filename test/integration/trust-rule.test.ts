// The trust rule, tried as an attacker would (issue "Hardening"): an
// unprivileged user (nobody, through runuser) plants links and files where a
// careless set-up lets them, and the root program must refuse, with one
// paragraph that names the path, what it found and the command that fixes
// it, while nothing outside the sandbox changes and the last good backup
// stays listed and intact. Real XFS sandbox, the real CLI.
import { createHash } from 'node:crypto';
import { chmod, chown, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { asNobody, attackSandbox, expectEarlierIntact, expectOneParagraph, NOBODY, type AttackSandbox } from '../support/attack.js';
import { listBackups, runCli, type CliResult } from '../support/cli.js';
import { destroyAll } from '../support/sandbox.js';

const TIMEOUT = 180_000;
const EXIT_TRUST = 3;

let pending: Promise<AttackSandbox> | undefined;
const fixture = () => (pending ??= attackSandbox());

afterAll(async () => {
  await (await pending?.catch(() => undefined))?.sandbox.cleanup();
  await destroyAll();
});

async function expectRefusedSafely(f: AttackSandbox, r: CliResult, path: string, found: RegExp): Promise<void> {
  expectOneParagraph(r, EXIT_TRUST);
  expect(r.stderr).toContain(path);
  expect(r.stderr).toMatch(found);
  expect(r.stderr).toMatch(/Fix it with: (chown|chmod|rm|mv) /);
  await expectEarlierIntact(f);
}

async function treeHash(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const name of (await readdir(dir)).sort()) hash.update(`${name}\0${await readFile(join(dir, name))}\0`);
  return hash.digest('hex');
}

describe('the trust rule, against an unprivileged user', () => {
  it(
    'refuses a system copy that is a link, and the directory it points at keeps its files',
    async () => {
      const f = await fixture();
      const copy = join(f.sandbox.home.mountPoint, '.syn3systembackup');
      const victim = join(f.sandbox.dir, 'victim');
      await mkdir(victim);
      await writeFile(join(victim, 'precious.txt'), 'do not delete\n');
      const before = await treeHash(victim);
      await rm(copy, { recursive: true, force: true });
      await symlink(victim, copy);
      try {
        const r = await runCli(f.config, ['backup']);
        await expectRefusedSafely(f, r, copy, /the system copy is a symbolic link/);
        expect(await treeHash(victim)).toBe(before);
      } finally {
        await rm(copy, { force: true });
      }
    },
    TIMEOUT,
  );

  it(
    "refuses a spool that nobody linked to a directory of their own, which receives no module's dump",
    async () => {
      const f = await fixture();
      const system = join(f.sandbox.home.mountPoint, 'system');
      const spool = join(system, 'spool');
      const loot = join(f.sandbox.dir, 'loot');
      await writeFile(join(f.modules, '10-db.backup'), '#!/bin/sh\necho "password=hunter2" > "$SYN3_SPOOL/db.dump"\n', { mode: 0o755 });
      // The careless set-up: <home>/system handed to a user.
      await rm(system, { recursive: true, force: true });
      await mkdir(system, { mode: 0o755 });
      await chown(system, NOBODY, NOBODY);
      await mkdir(loot, { mode: 0o755 });
      await chown(loot, NOBODY, NOBODY);
      await chmod(f.sandbox.dir, 0o711);
      try {
        await asNobody('ln', ['-s', loot, spool]);
        const r = await runCli(f.config, ['backup']);
        await expectRefusedSafely(f, r, system, /owned by uid 65534/);
        expect(await readdir(loot)).toEqual([]);
      } finally {
        await chmod(f.sandbox.dir, 0o700);
        await rm(system, { recursive: true, force: true });
        await rm(join(f.modules, '10-db.backup'), { force: true });
      }
    },
    TIMEOUT,
  );

  it(
    'refuses a module that nobody owns, though its mode is 0755',
    async () => {
      const f = await fixture();
      const module = join(f.modules, '20-evil.backup');
      await writeFile(module, '#!/bin/sh\ntouch /tmp/syn3-owned-by-nobody\n', { mode: 0o755 });
      await chown(module, NOBODY, NOBODY);
      try {
        const r = await runCli(f.config, ['backup']);
        await expectRefusedSafely(f, r, module, /module 20-evil\.backup is owned by uid 65534, mode 0755/);
      } finally {
        await rm(module, { force: true });
        await rm('/tmp/syn3-owned-by-nobody', { force: true });
      }
    },
    TIMEOUT,
  );

  it(
    'refuses a module that is a link, even to a root-owned program',
    async () => {
      const f = await fixture();
      const module = join(f.modules, '30-link.backup');
      await symlink('/bin/true', module);
      try {
        const r = await runCli(f.config, ['backup']);
        await expectRefusedSafely(f, r, module, /module 30-link\.backup is a symbolic link/);
      } finally {
        await rm(module, { force: true });
      }
    },
    TIMEOUT,
  );

  it(
    'refuses a modules directory that group or others can write',
    async () => {
      const f = await fixture();
      await chmod(f.modules, 0o777);
      try {
        const r = await runCli(f.config, ['backup']);
        await expectRefusedSafely(f, r, f.modules, /mode 0777 \(group or others can write it\)/);
      } finally {
        await chmod(f.modules, 0o755);
      }
    },
    TIMEOUT,
  );

  it(
    'refuses a state directory that nobody owns, before taking the lock or writing a state',
    async () => {
      const f = await fixture();
      await chown(f.state, NOBODY, NOBODY);
      try {
        const r = await runCli(f.config, ['tick']);
        await expectRefusedSafely(f, r, f.state, /the state directory \(paths\.state\) is owned by uid 65534/);
      } finally {
        await chown(f.state, 0, 0);
      }
    },
    TIMEOUT,
  );

  it(
    'keeps the system copy closed to everyone but root (0700), so nobody can reach its setuid copies or its tmp',
    async () => {
      const f = await fixture();
      const copy = join(f.sandbox.home.mountPoint, '.syn3systembackup');
      const made = await runCli(f.config, ['backup']);
      expect(made.exitCode, made.stderr).toBe(0);
      expect((await stat(copy)).mode & 0o7777).toBe(0o700);
      await chmod(f.sandbox.dir, 0o711);
      try {
        await expect(asNobody('ls', [copy])).rejects.toThrow(/Permission denied/);
      } finally {
        await chmod(f.sandbox.dir, 0o700);
      }
    },
    TIMEOUT,
  );

  it(
    "empties the copy's tmp and var/tmp of what was planted there, so no dump carries it",
    async () => {
      const f = await fixture();
      const copy = join(f.sandbox.home.mountPoint, '.syn3systembackup');
      await mkdir(join(f.sandbox.root.mountPoint, 'etc'), { recursive: true });
      await writeFile(join(f.sandbox.root.mountPoint, 'etc', 'hostname'), 'sandbox-host\n');
      // What a user could leave there while the copy's top was 0755 (tmp itself is 1777).
      for (const dir of ['tmp', 'var/tmp']) {
        await mkdir(join(copy, dir), { recursive: true });
        await writeFile(join(copy, dir, 'planted'), 'comes back on every restore\n');
      }
      const made = await runCli(f.config, ['backup']);
      expect(made.exitCode, made.stderr).toBe(0);
      for (const dir of ['tmp', 'var/tmp']) await expect(stat(join(copy, dir, 'planted'))).rejects.toThrow(/ENOENT/);
      const newest = (await listBackups(f.config)).at(-1)!;
      const toc = await execa('xfsrestore', ['-t', '-J', '-f', newest.location], { cwd: f.sandbox.dir });
      expect(toc.stdout).not.toContain('planted');
      // The check is only as good as what it saw: the dump does list the copy's files.
      expect(toc.stdout).toContain('.syn3systembackup/etc/hostname');
    },
    TIMEOUT,
  );

  it(
    'runs no .restore module on a system that is not in a restore, however many spool markers lie about',
    async () => {
      const f = await fixture();
      const spool = join(f.sandbox.home.mountPoint, 'system', 'spool');
      const proof = join(f.sandbox.dir, 'restore-module-ran');
      const module = join(f.modules, '10-db.restore');
      await mkdir(spool, { recursive: true, mode: 0o700 });
      await writeFile(join(spool, '.syn3restorespool'), '');
      await writeFile(module, `#!/bin/sh\ntouch ${proof}\n`, { mode: 0o755 });
      try {
        const r = await runCli(f.config, ['resume']);
        expect(r.exitCode, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/nothing to resume/i);
        await expect(readFile(proof)).rejects.toThrow(/ENOENT/);
      } finally {
        await rm(module, { force: true });
        await rm(join(spool, '.syn3restorespool'), { force: true });
      }
    },
    TIMEOUT,
  );

  it(
    'ignores a restore state planted in /home/.syn3restore by nobody: resume finds nothing to do, tick still backs up',
    async () => {
      const f = await fixture();
      const dir = join(f.sandbox.home.mountPoint, '.syn3restore');
      await mkdir(dir, { mode: 0o755 });
      await chown(dir, NOBODY, NOBODY);
      const forged = {
        schemaVersion: 1,
        machine: 'restore',
        savedAt: new Date(Date.now() + 86_400_000).toISOString(),
        snapshot: {
          status: 'active',
          value: 'failed',
          historyValue: {},
          context: {
            current: { restoreId: 'x', backupId: 'x', startedAt: 0, failedPhase: 'formatHome', reason: 'planted' },
            history: [],
          },
          children: {},
        },
      };
      await chmod(f.sandbox.dir, 0o711);
      try {
        await asNobody('sh', ['-c', `printf '%s' '${JSON.stringify(forged)}' > ${join(dir, 'restore-state.json')}`]);
        const resume = await runCli(f.config, ['resume']);
        expect(resume.exitCode, resume.stderr).toBe(0);
        expect(resume.stdout).toMatch(/nothing to resume/i);
        const tick = await runCli(f.config, ['backup']);
        expect(tick.exitCode, tick.stderr).toBe(0);
        expect((await listBackups(f.config)).length).toBeGreaterThan(1);
      } finally {
        await chmod(f.sandbox.dir, 0o700);
        await rm(dir, { recursive: true, force: true });
      }
    },
    TIMEOUT,
  );
});
