// Issue "Hardening", the target-side and configuration findings, tried
// against the real CLI on a loop-device XFS sandbox: an unprivileged user
// (nobody, through runuser) plants a link where a careless set-up lets them,
// and the root program must refuse with one paragraph (the path, what it
// found, the fixing command) while the directory the link names keeps its
// files and the last good backup stays listed and intact. Then the bad
// inputs: a typo in paths.modules, a state directory on a read-only file
// system, FTP in clear, a configuration file nobody owns, and a checkout
// that install must not point a root wrapper at.
import { chmod, chown, cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { installPlan } from '../../src/install.js';
import { UserError } from '../../src/errors.js';
import { CLI, REPO_ROOT, runCli, writeSandboxConfig } from '../support/cli.js';
import { asNobody, attackSandbox, expectEarlierIntact, expectOneParagraph, NOBODY, type AttackSandbox } from '../support/attack.js';
import { createXfsVolume, destroyAll } from '../support/sandbox.js';

const TIMEOUT = 180_000;
const EXIT_CONFIG = 3;
const EXIT_STATE = 4;
const EXIT_TARGET = 5;

type Fixture = AttackSandbox;

let pending: Promise<Fixture> | undefined;
const fixture = () => (pending ??= attackSandbox());

afterAll(async () => {
  await (await pending?.catch(() => undefined))?.sandbox.cleanup();
  await destroyAll();
});

/** A directory outside the target with a file in it, owned by nobody: what the planted link names. */
async function victim(f: Fixture, name: string): Promise<string> {
  const dir = join(f.sandbox.dir, name);
  await mkdir(dir, { mode: 0o755 });
  await writeFile(join(dir, 'precious.txt'), 'do not delete\n');
  await mkdir(join(dir, 'project'));
  await writeFile(join(dir, 'project', 'thesis.tex'), 'chapter 1\n');
  return dir;
}

describe('the file target, against an unprivileged user (finding 1)', () => {
  it(
    'a .incoming linked to another directory: the backup is refused, and that directory keeps its files (it was emptied)',
    async () => {
      const f = await fixture();
      const incoming = join(f.target, '.incoming');
      const elsewhere = await victim(f, 'victim-root');
      await rm(incoming, { recursive: true, force: true });
      await execa('ln', ['-s', elsewhere, incoming]);
      try {
        const r = await runCli(f.config, ['backup']);
        expectOneParagraph(r, EXIT_CONFIG);
        expect(r.stderr).toContain(`${incoming}: the target's .incoming directory is a symbolic link`);
        expect(r.stderr).toContain(`Fix it with: rm ${incoming}`);
        expect((await readdir(elsewhere)).sort()).toEqual(['precious.txt', 'project']);
        expect(await readdir(join(elsewhere, 'project'))).toEqual(['thesis.tex']);
        await expectEarlierIntact(f);
      } finally {
        await rm(incoming, { force: true });
      }
    },
    TIMEOUT,
  );

  it(
    'a target directory handed to nobody, who links .incoming to their victim: refused before anything is removed',
    async () => {
      const f = await fixture();
      const incoming = join(f.target, '.incoming');
      const elsewhere = await victim(f, 'victim-nobody');
      await chown(elsewhere, NOBODY, NOBODY);
      await chown(f.target, NOBODY, NOBODY);
      await chmod(f.sandbox.dir, 0o711);
      try {
        await asNobody('sh', ['-c', `rm -rf ${incoming} && ln -s ${elsewhere} ${incoming}`]);
        const r = await runCli(f.config, ['backup']);
        expectOneParagraph(r, EXIT_CONFIG);
        expect(r.stderr).toContain(`the target directory (target.path) is owned by uid ${NOBODY}`);
        expect(r.stderr).toContain(`Fix it with: chown root:root ${f.target}`);
        expect((await readdir(elsewhere)).sort()).toEqual(['precious.txt', 'project']);
      } finally {
        await chmod(f.sandbox.dir, 0o700);
        await rm(incoming, { force: true });
        await chown(f.target, 0, 0);
      }
      await expectEarlierIntact(f);
    },
    TIMEOUT,
  );

  it(
    'a target.path that is a regular file: "is not a directory", not "does not exist"',
    async () => {
      const f = await fixture();
      const file = join(f.sandbox.dir, 'not-a-disk');
      await writeFile(file, 'a file\n');
      const config = await writeSandboxConfig(f.sandbox, { file: join(f.sandbox.dir, 'file-target.yaml'), target: file });
      const r = await runCli(config, ['backup']);
      expectOneParagraph(r, EXIT_TARGET);
      expect(r.stderr).toContain(`${file}: the target path is not a directory.`);
      expect(r.stderr).not.toContain('does not exist');
    },
    TIMEOUT,
  );
});

describe('configuration defaults and bad input (finding 8, build item 7)', () => {
  it(
    'a paths.modules typo refuses the backup (it succeeded without running any module), exit 3',
    async () => {
      const f = await fixture();
      const typo = join(f.sandbox.dir, 'modulse');
      const config = await writeSandboxConfig(f.sandbox, {
        file: join(f.sandbox.dir, 'typo.yaml'),
        target: f.target,
        modules: typo,
        keep: 50,
      });
      const r = await runCli(config, ['backup']);
      expectOneParagraph(r, EXIT_CONFIG);
      expect(r.stderr).toContain(`${typo}: the modules directory (paths.modules) does not exist, so no module would run.`);
      expect(r.stderr).toContain('Correct paths.modules in');
      await expectEarlierIntact(f);
    },
    TIMEOUT,
  );

  it(
    'the default modules directory absent: the backup runs, warns on stderr (cron mails it), and status says so',
    async () => {
      const f = await fixture();
      // The prerequisite: the machine's own default is absent (else this test would prove nothing).
      expect(existsSync('/usr/backup/modules')).toBe(false);
      const file = join(f.sandbox.dir, 'default-modules.yaml');
      await writeSandboxConfig(f.sandbox, { file, target: f.target, keep: 50 });
      const { readFile } = await import('node:fs/promises');
      const text = (await readFile(file, 'utf8')).replace(/^ {2}modules: .*\n/m, '');
      await writeFile(file, text);
      expect(text).not.toMatch(/modules:/);
      const r = await runCli(file, ['backup']);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toContain('the modules directory /usr/backup/modules (the default paths.modules) does not exist');
      const s = await runCli(file, ['status']);
      expect(s.exitCode, s.stderr).toBe(0);
      expect(s.stdout).toMatch(/^warning: {7}the modules directory \/usr\/backup\/modules .* does not exist/m);
    },
    TIMEOUT,
  );

  it(
    'a paths.state on a read-only file system: one clear paragraph, exit 4, not an internal error with a stack',
    async () => {
      const f = await fixture();
      const volume = await createXfsVolume(f.sandbox.dir, 'rostate', 300);
      try {
        const state = join(volume.mountPoint, 'state');
        await mkdir(state, { mode: 0o700 });
        await execa('mount', ['-o', 'remount,ro', volume.mountPoint]);
        const config = await writeSandboxConfig(f.sandbox, { file: join(f.sandbox.dir, 'ro.yaml'), target: f.target, state, keep: 50 });
        const r = await runCli(config, ['backup']);
        expectOneParagraph(r, EXIT_STATE);
        expect(r.stderr).toContain(state);
        expect(r.stderr).toMatch(/read-only/);
        const missing = await writeSandboxConfig(f.sandbox, {
          file: join(f.sandbox.dir, 'ro-missing.yaml'),
          target: f.target,
          state: join(volume.mountPoint, 'new-state'),
          keep: 50,
        });
        const m = await runCli(missing, ['tick']);
        expectOneParagraph(m, EXIT_STATE);
        // Node's recursive mkdir reports EROFS as ENOENT here: the paragraph still names the directory and the fix.
        expect(m.stderr).toContain(`${join(volume.mountPoint, 'new-state')}: the state directory (paths.state) cannot be created`);
        expect(m.stderr).toContain('writable file system');
      } finally {
        await volume.destroy();
      }
      await expectEarlierIntact(f);
    },
    TIMEOUT,
  );

  it(
    'FTP in clear: config check refuses a target without secure, and warns on stderr when secure: false is written',
    async () => {
      const f = await fixture();
      const ftp = ['target:', '  type: ftp', '  host: ftp.example.org', '  user: b', '  password_file: /etc/p', '  directory: /b'];
      const file = join(f.sandbox.dir, 'ftp.yaml');
      await writeFile(file, ['schedule:', '  every: 1d', ...ftp, ''].join('\n'));
      const unsaid = await runCli(file, ['config', 'check']);
      expectOneParagraph(unsaid, EXIT_CONFIG);
      expect(unsaid.stderr).toContain('"target.secure" is missing');
      expect(unsaid.stderr).toContain('secure: false to accept that the password and the backups cross the network in clear');
      await writeFile(file, ['schedule:', '  every: 1d', ...ftp, '  secure: false', ''].join('\n'));
      const plain = await runCli(file, ['config', 'check']);
      expect(plain.exitCode, plain.stderr).toBe(0);
      expect(plain.stdout).toContain(`${file}: valid`);
      expect(plain.stderr).toContain('warning: target.secure is false: the FTP password and every backup cross the network in clear');
      const json = await runCli(file, ['config', 'check', '--json']);
      expect((JSON.parse(json.stdout) as { warnings: string[] }).warnings.join('\n')).toMatch(/cross the network in clear/);
    },
    TIMEOUT,
  );

  it(
    'a configuration file that nobody owns (mode 0644) is refused by backup and by config check, exit 3',
    async () => {
      const f = await fixture();
      const file = await writeSandboxConfig(f.sandbox, {
        file: join(f.sandbox.dir, 'nobodys.yaml'),
        target: f.target,
        modules: f.modules,
        keep: 50,
      });
      await chown(file, NOBODY, NOBODY);
      for (const args of [['backup'], ['config', 'check']]) {
        const r = await runCli(file, args);
        expectOneParagraph(r, EXIT_CONFIG);
        expect(r.stderr).toContain(`${file}: the configuration file is owned by uid ${NOBODY}, mode 0644`);
        expect(r.stderr).toContain(`Fix it with: chown root:root ${file}`);
      }
      await expectEarlierIntact(f);
    },
    TIMEOUT,
  );
});

describe('install (the wrapper runs the checkout as root from cron)', () => {
  async function checkout(): Promise<{ root: string; cli: string }> {
    const f = await fixture();
    const root = await mkdtemp(join(f.sandbox.dir, 'checkout-'));
    await chmod(root, 0o755);
    await cp(join(REPO_ROOT, 'boot'), join(root, 'boot'), { recursive: true });
    await mkdir(join(root, 'dist', 'bin'), { recursive: true });
    const cli = join(root, 'dist', 'bin', 'syn3-backup.mjs');
    await cp(CLI, cli);
    return { root, cli };
  }

  function plan(root: string, cli: string): UserError | undefined {
    try {
      installPlan({ packageRoot: root, cli, node: process.execPath, scheduler: 'cron', exampleConfig: '' });
      return undefined;
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      return e as UserError;
    }
  }

  it(
    "plans a wrapper for a checkout that is root's, and refuses one whose bundle, boot file or directory others can change",
    async () => {
      const { root, cli } = await checkout();
      await chmod(cli, 0o644);
      expect(plan(root, cli)).toBeUndefined();
      await chown(cli, NOBODY, NOBODY);
      expect(plan(root, cli)?.paragraph()).toBe(
        `${cli}: the bundled CLI's file syn3-backup.mjs is owned by uid ${NOBODY}, mode 0644; this program runs as root and trusts only what root alone can change. Fix it with: chown root:root ${cli}.`,
      );
      await chown(cli, 0, 0);
      await chmod(join(root, 'boot', 'initramfs-hook'), 0o666);
      expect(plan(root, cli)?.message).toMatch(/^the boot file initramfs-hook is owned by root, mode 0666/);
      await chmod(join(root, 'boot', 'initramfs-hook'), 0o644);
      await chmod(root, 0o777);
      expect(plan(root, cli)?.message).toMatch(/^the syn3-backup checkout is owned by root, mode 0777/);
      await chmod(root, 0o755);
      expect(plan(root, cli)).toBeUndefined();
    },
    TIMEOUT,
  );
});
