// What the administrator sees when something is wrong: one paragraph on
// stderr saying what, where and how to fix it, a non-zero exit code, no stack
// trace, and never a lost backup (a good one made first stays listed and intact).
import { access, chmod, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import {
  incomingLeftovers,
  listBackups,
  looksLikeStackTrace,
  runCli,
  sandboxConfigText,
  sha256File,
  statusJson,
  writeSandboxConfig,
  type CliResult,
  type ListedBackup,
  type SandboxConfigOptions,
} from '../support/cli.js';
import { populateBootTree, populateSystemTree } from '../support/rich-tree.js';
import { createSandbox, createTargetVolume, destroyAll, type Sandbox, type XfsVolume } from '../support/sandbox.js';

const TIMEOUT = 180_000;
const MiB = 1024 * 1024;
/** The documented exit codes (src/errors.ts). */
const EXIT = { failed: 1, config: 3, state: 4, target: 5, tool: 6 };

interface Fixture {
  sandbox: Sandbox;
  target: XfsVolume;
  /** Options of the good configuration; the bad ones are variations of it. */
  good: SandboxConfigOptions;
  goodConfig: string;
  /** Made before any bad input, on the 300 MiB target volume. */
  earlier: ListedBackup;
}

let pending: Promise<Fixture> | undefined;
let variants = 0;

// Built on first use, not in beforeAll, so a missing tool fails every test instead of skipping them.
function fixture(): Promise<Fixture> {
  pending ??= buildFixture();
  return pending;
}

async function buildFixture(): Promise<Fixture> {
  // home is bigger than the 300 MiB target, so it can hold more than the target takes.
  const sandbox = await createSandbox({ homeMiB: 700 });
  const target = await createTargetVolume(sandbox.dir, 300);
  await populateSystemTree(sandbox.root.mountPoint);
  await populateBootTree(sandbox.boot.mountPoint);
  await mkdir(join(sandbox.home.mountPoint, 'alice'));
  await writeFile(join(sandbox.home.mountPoint, 'alice', 'notes.txt'), 'remember the milk\n');
  await execa('dd', ['if=/dev/urandom', `of=${join(sandbox.home.mountPoint, 'alice', 'photo.raw')}`, 'bs=1M', 'count=4', 'status=none']);
  const modules = join(sandbox.dir, 'modules');
  await mkdir(modules);
  const good: SandboxConfigOptions = { target: target.mountPoint, requireMount: true, modules, keep: 50 };
  const goodConfig = await writeSandboxConfig(sandbox, good);
  const made = await runCli(goodConfig, ['backup']);
  if (made.exitCode !== 0) throw new Error(`the good backup failed: ${JSON.stringify(made)}`);
  const listed = await listBackups(goodConfig);
  if (listed.length !== 1) throw new Error(`expected one good backup, list shows ${JSON.stringify(listed)}`);
  return { sandbox, target, good, goodConfig, earlier: listed[0]! };
}

/** A configuration file next to the good one, differing as given. */
async function variant(change: Partial<SandboxConfigOptions>): Promise<string> {
  const { sandbox, good } = await fixture();
  return writeSandboxConfig(sandbox, { ...good, ...change, file: join(sandbox.dir, `variant-${++variants}.yaml`) });
}

/** A configuration file with the given text. */
async function configFile(text: string): Promise<string> {
  const { sandbox } = await fixture();
  const file = join(sandbox.dir, `variant-${++variants}.yaml`);
  await writeFile(file, text);
  return file;
}

/** A module directory holding one module with this script and mode. */
async function moduleDir(name: string, script: string, mode: number): Promise<string> {
  const { sandbox } = await fixture();
  const dir = join(sandbox.dir, `modules-${++variants}`);
  await mkdir(dir);
  await writeFile(join(dir, name), script);
  await chmod(join(dir, name), mode);
  return dir;
}

function lineOf(text: string, needle: string): number {
  const index = text.split('\n').findIndex((l) => l.includes(needle));
  if (index < 0) throw new Error(`${needle} is not in the config`);
  return index + 1;
}

/** Exit code, one paragraph on stderr holding every expected piece, nothing that looks like a crash. */
function expectCleanError(r: CliResult, exitCode: number, ...says: Array<string | RegExp>): void {
  expect(r.exitCode, r.stderr).toBe(exitCode);
  expect(r.stdout).toBe('');
  const paragraph = r.stderr.trim();
  expect(paragraph).not.toBe('');
  expect(paragraph.split('\n'), 'one paragraph, on one line').toHaveLength(1);
  expect(looksLikeStackTrace(r.stderr), r.stderr).toBe(false);
  expect(r.stderr).not.toMatch(/internal error/);
  for (const s of says) {
    if (typeof s === 'string') expect(r.stderr).toContain(s);
    else expect(r.stderr).toMatch(s);
  }
}

/** The backup made before the bad input is still listed, and its file still has the recorded checksum. */
async function expectEarlierBackupKept(): Promise<void> {
  const { goodConfig, earlier } = await fixture();
  const listed = await listBackups(goodConfig);
  expect(listed.map((b) => b.id)).toContain(earlier.id);
  const now = listed.find((b) => b.id === earlier.id)!;
  expect(now).toEqual(earlier);
  expect(await sha256File(now.location)).toBe(earlier.sha256);
}

/** A PATH of symlinks to everything on the current PATH except the named programs. */
async function pathWithout(...missing: string[]): Promise<string> {
  const { sandbox } = await fixture();
  const dir = join(sandbox.dir, `path-without-${missing.join('-')}`);
  await mkdir(dir);
  const seen = new Set(missing);
  for (const from of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    const names = await readdir(from).catch(() => [] as string[]);
    for (const name of names.filter((n) => !seen.has(n))) {
      seen.add(name);
      await symlink(join(from, name), join(dir, name));
    }
  }
  return dir;
}

afterAll(destroyAll);

describe('bad configuration', () => {
  it(
    'rejects malformed YAML naming the file and line, exit 3',
    async () => {
      const { sandbox, good } = await fixture();
      const text = sandboxConfigText(sandbox, good).replace(/^ {2}boot: .*$/m, '  boot: /mnt/boot: the old disk');
      const file = await configFile(text);
      const r = await runCli(file, ['tick']);
      expectCleanError(r, EXIT.config, `${file}:${lineOf(text, 'boot:')}:`, /malformed/, /quot/);
      await expectEarlierBackupKept();
    },
    TIMEOUT,
  );

  it(
    'rejects a misspelt top-level key, suggesting the right one ("targett" → "target"), exit 3',
    async () => {
      const { sandbox, good } = await fixture();
      const text = sandboxConfigText(sandbox, good).replace(/^target:/m, 'targett:');
      const file = await configFile(text);
      const r = await runCli(file, ['tick']);
      expectCleanError(r, EXIT.config, `${file}:${lineOf(text, 'targett:')}:`, '"targett"', 'Did you mean "target"?');
      await expectEarlierBackupKept();
    },
    TIMEOUT,
  );

  it(
    'rejects a misspelt nested key, suggesting the right one ("require_mnt" → "require_mount"), exit 3',
    async () => {
      const { sandbox, good } = await fixture();
      const text = sandboxConfigText(sandbox, good).replace('require_mount:', 'require_mnt:');
      const file = await configFile(text);
      const r = await runCli(file, ['tick']);
      expectCleanError(r, EXIT.config, `${file}:${lineOf(text, 'require_mnt:')}:`, '"require_mnt"', 'Did you mean "require_mount"?');
      await expectEarlierBackupKept();
    },
    TIMEOUT,
  );
});

describe('bad target', () => {
  it(
    'refuses a target directory that does not exist, naming it, exit 5',
    async () => {
      const { sandbox } = await fixture();
      const missing = join(sandbox.dir, 'no-such-disk', 'backups');
      const r = await runCli(await variant({ target: missing, requireMount: false }), ['backup']);
      expectCleanError(r, EXIT.target, missing, /does not exist/, /mkdir -p/);
      await expect(access(missing)).rejects.toThrow(/ENOENT/);
      await expectEarlierBackupKept();
    },
    TIMEOUT,
  );

  it(
    'refuses to write when require_mount is true and nothing is mounted at the target path, exit 5',
    async () => {
      const { sandbox } = await fixture();
      const unmounted = join(sandbox.dir, 'usb-disk-not-plugged-in');
      await mkdir(unmounted);
      const r = await runCli(await variant({ target: unmounted, requireMount: true }), ['backup']);
      expectCleanError(r, EXIT.target, unmounted, /not a mount point/, /require_mount/);
      expect(await readdir(unmounted)).toEqual([]);
      await expectEarlierBackupKept();
    },
    TIMEOUT,
  );

  it(
    'says the target is full when the dump does not fit, removes the partial dump and keeps the earlier backup, exit 5',
    async () => {
      const { sandbox, goodConfig, target } = await fixture();
      const fill = join(sandbox.home.mountPoint, 'incompressible.bin');
      try {
        await execa('dd', ['if=/dev/urandom', `of=${fill}`, 'bs=4M', `count=${400 / 4}`, 'status=none']);
        const r = await runCli(goodConfig, ['backup']);
        expectCleanError(r, EXIT.target, /target is full/, target.mountPoint);
        expect(await incomingLeftovers(target.mountPoint)).toEqual([]);
        await expectEarlierBackupKept();
        expect((await listBackups(goodConfig)).every((b) => b.size < 300 * MiB)).toBe(true);
      } finally {
        await rm(fill, { force: true });
      }
    },
    TIMEOUT,
  );
});

describe('bad environment', () => {
  it(
    'names xfsdump and how to install it when it is not on PATH, exit 6',
    async () => {
      const { goodConfig } = await fixture();
      const r = await runCli(goodConfig, ['backup'], { path: await pathWithout('xfsdump') });
      expectCleanError(r, EXIT.tool, "'xfsdump'", /not found/, 'apt-get install xfsdump');
      await expectEarlierBackupKept();
    },
    TIMEOUT,
  );

  it(
    'names a failing module and what it said, exit 3',
    async () => {
      const modules = await moduleDir('10-db.backup', '#!/bin/sh\necho "database is down" >&2\nexit 1\n', 0o755);
      const r = await runCli(await variant({ modules }), ['backup']);
      expectCleanError(r, EXIT.config, join(modules, '10-db.backup'), /database is down/);
      await expectEarlierBackupKept();
    },
    TIMEOUT,
  );

  it(
    'refuses to run a world-writable module, saying chmod go-w, exit 3',
    async () => {
      const { sandbox } = await fixture();
      const marker = join(sandbox.dir, 'world-writable-module-ran');
      const modules = await moduleDir('20-open.backup', `#!/bin/sh\ntouch ${marker}\n`, 0o777);
      const r = await runCli(await variant({ modules }), ['backup']);
      expectCleanError(r, EXIT.config, join(modules, '20-open.backup'), `chmod go-w ${join(modules, '20-open.backup')}`);
      await expect(access(marker)).rejects.toThrow(/ENOENT/);
      await expectEarlierBackupKept();
    },
    TIMEOUT,
  );

  it(
    'names a corrupt state file and says to move it aside, leaving it untouched, exit 4',
    async () => {
      const { sandbox } = await fixture();
      const state = join(sandbox.dir, 'state-corrupt');
      await mkdir(state);
      const file = join(state, 'backup-state.json');
      const garbage = '{"schemaVersion": 1, "machine": "backup", "snaps\u0000\u0000';
      await writeFile(file, garbage);
      const r = await runCli(await variant({ state }), ['tick']);
      expectCleanError(r, EXIT.state, file, /[Mm]ove it aside/);
      expect(await readFile(file, 'utf8')).toBe(garbage);
      await expectEarlierBackupKept();
    },
    TIMEOUT,
  );
});

describe('after a failed run', () => {
  const failingModule = () => moduleDir('10-fail.backup', '#!/bin/sh\necho "cannot reach the mail store" >&2\nexit 2\n', 0o755);

  it(
    'status shows the failure reason and exits 1',
    async () => {
      const { goodConfig } = await fixture();
      const modules = await failingModule();
      expect((await runCli(await variant({ modules }), ['backup'])).exitCode).not.toBe(0);
      const human = await runCli(goodConfig, ['status']);
      expect(human.exitCode).toBe(EXIT.failed);
      expect(human.stdout).toMatch(/failed/);
      expect(human.stdout).toContain('cannot reach the mail store');
      expect(human.stdout).toContain(join(modules, '10-fail.backup'));
      const { exitCode, report } = await statusJson(goodConfig);
      expect(exitCode).toBe(EXIT.failed);
      expect(report.state).toBe('failed');
      expect(report.lastFailure).toMatchObject({
        result: 'failed',
        step: 'spool',
        reason: expect.stringContaining('cannot reach the mail store'),
      });
    },
    TIMEOUT,
  );

  it(
    'the next tick does not retry at once (back-off), although the schedule says due, but `backup` does',
    async () => {
      const { goodConfig } = await fixture();
      // Due by the schedule a second after the last success: only the back-off holds the tick back.
      const due = await variant({ schedule: 'every: 1s' });
      expect((await runCli(await variant({ schedule: 'every: 1s', modules: await failingModule() }), ['backup'])).exitCode).not.toBe(0);
      await sleep(1100);
      const before = await listBackups(goodConfig);
      expect(await runCli(due, ['tick'])).toEqual({ exitCode: 0, stdout: '', stderr: '' });
      expect(await listBackups(goodConfig)).toEqual(before);
      const { report } = await statusJson(goodConfig);
      expect(report.state).toBe('failed');
      expect(Date.parse(report.nextDue)).toBeGreaterThan(Date.now() + 30 * 60_000);
      expect(await runCli(due, ['backup'])).toMatchObject({ exitCode: 0, stderr: '' });
      const after = await listBackups(goodConfig);
      expect(after).toHaveLength(before.length + 1);
      expect((await statusJson(goodConfig)).report.state).toBe('idle');
      await expectEarlierBackupKept();
    },
    TIMEOUT,
  );
});
