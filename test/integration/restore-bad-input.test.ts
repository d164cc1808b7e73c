// A restore refuses what it must refuse before anything is destroyed: no
// confirmation, the wrong one, no backup, a backup that is not what was
// written. One paragraph on stderr, a documented exit code, no stack trace,
// and /home (its content and its UUID) exactly as it was. The machine here is
// the backed-up sandbox itself: nothing in this file may get as far as
// formatting, so its volumes can stay mounted.
import { copyFile, cp, mkdir, open, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import {
  listBackups,
  looksLikeStackTrace,
  runCli,
  SANDBOX_HOST,
  writeSandboxConfig,
  type CliResult,
  type ListedBackup,
} from '../support/cli.js';
import { probeFs, type FsIdentity } from '../support/partitioned-disk.js';
import { RESTORE_SECTION, restoreStatus, type RestoreStatus } from '../support/restore-machines.js';
import { populateBootTree, populateSystemTree } from '../support/rich-tree.js';
import { createSandbox, createTargetVolume, destroyAll, type Sandbox, type XfsVolume } from '../support/sandbox.js';
import { diffTrees, snapshotTree, type Snapshot } from '../support/tree-compare.js';

const TIMEOUT = 180_000;
/** The documented exit codes (src/errors.ts). */
const EXIT = { ok: 0, failed: 1, usage: 2 };

interface Fixture {
  sandbox: Sandbox;
  target: XfsVolume;
  config: string;
  backup: ListedBackup;
  /** A pristine copy of the dump, to put back after each damage. */
  pristine: string;
  home: Snapshot;
  homeId: FsIdentity;
}

let pending: Promise<Fixture> | undefined;

// Built on first use, not in beforeAll, so a missing tool fails every test instead of skipping them.
function fixture(): Promise<Fixture> {
  pending ??= buildFixture();
  return pending;
}

async function buildFixture(): Promise<Fixture> {
  const sandbox = await createSandbox();
  const target = await createTargetVolume(sandbox.dir);
  await populateSystemTree(sandbox.root.mountPoint);
  await populateBootTree(sandbox.boot.mountPoint);
  await mkdir(join(sandbox.home.mountPoint, 'alice'));
  await execa('dd', ['if=/dev/urandom', `of=${join(sandbox.home.mountPoint, 'alice', 'photo.raw')}`, 'bs=1M', 'count=4', 'status=none']);
  await mkdir(join(sandbox.dir, 'modules'));
  const config = await writeSandboxConfig(sandbox, { target: target.mountPoint, requireMount: true, extra: RESTORE_SECTION });
  const tick = await runCli(config, ['tick']);
  const listed = await listBackups(config);
  if (tick.exitCode !== 0 || listed.length !== 1)
    throw new Error(`the backup failed: ${JSON.stringify(tick)}; list: ${JSON.stringify(listed)}`);
  const backup = listed[0]!;
  const pristine = join(sandbox.dir, 'pristine.xfsdump');
  await copyFile(backup.location, pristine);
  return {
    sandbox,
    target,
    config,
    backup,
    pristine,
    home: await snapshotTree(sandbox.home.mountPoint),
    homeId: await probeFs(sandbox.home.device),
  };
}

afterAll(destroyAll);

/** What changed on /home since the backup: its tree and its file system's identity. */
async function homeChanges(f: Fixture): Promise<{ tree: string[]; id: FsIdentity }> {
  return { tree: diffTrees(f.home, await snapshotTree(f.sandbox.home.mountPoint)), id: await probeFs(f.sandbox.home.device) };
}

function untouched(f: Fixture): { tree: string[]; id: FsIdentity } {
  return { tree: [], id: f.homeId };
}

function once<T>(build: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= build());
}

/** Runs `restore --confirm HOST` with the dump on the target damaged by `damage`, then puts the dump back. */
async function restoreDamaged(f: Fixture, damage: (file: string) => Promise<void>): Promise<CliResult> {
  await damage(f.backup.location);
  try {
    return await runCli(f.config, ['restore', '--confirm', SANDBOX_HOST]);
  } finally {
    await copyFile(f.pristine, f.backup.location);
  }
}

const truncatedRestore = once(async () => {
  const f = await fixture();
  const r = await restoreDamaged(f, async (file) => truncate(file, Math.floor((await stat(file)).size / 2)));
  return { r, status: await restoreStatus(f.config), home: await homeChanges(f) };
});

const refusedWhileInProgress = once(async () => {
  const f = await fixture();
  await truncatedRestore();
  return runCli(f.config, ['restore', '--confirm', SANDBOX_HOST]);
});

const aborted = once(async () => {
  const f = await fixture();
  await refusedWhileInProgress();
  const r = await runCli(f.config, ['abort']);
  return { r, status: await restoreStatus(f.config) };
});

const corruptedRestore = once(async () => {
  const f = await fixture();
  await aborted();
  const r = await restoreDamaged(f, async (file) => {
    const handle = await open(file, 'r+');
    try {
      const middle = Math.floor((await handle.stat()).size / 2);
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, middle);
      byte[0] = byte[0]! ^ 0xff;
      await handle.write(byte, 0, 1, middle);
    } finally {
      await handle.close();
    }
  });
  const status = await restoreStatus(f.config);
  const home = await homeChanges(f);
  // Leave no failed restore behind for the tests after this one.
  await runCli(f.config, ['abort']);
  return { r, status, home };
});

function expectOneParagraph(r: CliResult): void {
  expect(looksLikeStackTrace(r.stderr)).toBe(false);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
}

describe('restore refuses bad input before anything is destroyed', () => {
  it(
    'resume with no restore pending exits 0 and says there is nothing to resume',
    async () => {
      const f = await fixture();
      const r = await runCli(f.config, ['resume']);
      expect(r.exitCode).toBe(EXIT.ok);
      expect(r.stdout).toMatch(/nothing to resume/i);
      expect(await homeChanges(f)).toEqual(untouched(f));
    },
    TIMEOUT,
  );

  it(
    'restore without --confirm and without a terminal exits 2, says nothing was touched and leaves /home as it was',
    async () => {
      const f = await fixture();
      const r = await runCli(f.config, ['restore']);
      expect(r.exitCode).toBe(EXIT.usage);
      expect(r.stderr).toMatch(/nothing was touched/);
      expect(r.stderr).toContain(`--confirm ${SANDBOX_HOST}`);
      expectOneParagraph(r);
      expect(await homeChanges(f)).toEqual(untouched(f));
      expect(await restoreStatus(f.config)).toBeNull();
    },
    TIMEOUT,
  );

  it(
    'restore with a --confirm that is not the host name exits 2 and leaves /home as it was',
    async () => {
      const f = await fixture();
      const r = await runCli(f.config, ['restore', '--confirm', 'some-other-host']);
      expect(r.exitCode).toBe(EXIT.usage);
      expect(r.stderr).toContain('some-other-host');
      expect(r.stderr).toMatch(/nothing was touched/);
      expectOneParagraph(r);
      expect(await homeChanges(f)).toEqual(untouched(f));
      expect(await restoreStatus(f.config)).toBeNull();
    },
    TIMEOUT,
  );

  it(
    "restore --from another host's backup, confirmed with this host's name, exits 2, names the other host and leaves /home as it was",
    async () => {
      const f = await fixture();
      // Another host's backup on the same target: this host's, renamed in its metadata.
      const otherId = `other-host-${f.backup.id.slice(SANDBOX_HOST.length + 1)}`;
      const otherDir = join(f.target.mountPoint, otherId);
      await cp(join(f.target.mountPoint, f.backup.id), otherDir, { recursive: true });
      const meta = JSON.parse(await readFile(join(otherDir, 'meta.json'), 'utf8')) as Record<string, unknown>;
      await writeFile(join(otherDir, 'meta.json'), JSON.stringify({ ...meta, id: otherId, host: 'other-host' }));
      try {
        const all = await runCli(f.config, ['list', '--all-hosts', '--json']);
        expect((JSON.parse(all.stdout) as ListedBackup[]).map((b) => b.id)).toContain(otherId);
        const r = await runCli(f.config, ['restore', '--from', otherId, '--confirm', SANDBOX_HOST]);
        expect(r.exitCode).toBe(EXIT.usage);
        expect(r.stderr).toContain('the name of the host the backup is of (other-host');
        expect(r.stderr).toContain('--confirm other-host');
        expect(r.stderr).toMatch(/nothing was touched/);
        expect(r.stdout).toContain('of ANOTHER HOST, other-host');
        expectOneParagraph(r);
        expect(await homeChanges(f)).toEqual(untouched(f));
        expect(await restoreStatus(f.config)).toBeNull();
      } finally {
        await rm(otherDir, { recursive: true, force: true });
      }
    },
    TIMEOUT,
  );

  it(
    'restore with no backup of this host on the target says so, naming the target, and leaves /home as it was',
    async () => {
      const f = await fixture();
      const empty = join(f.sandbox.dir, 'empty-target');
      await mkdir(empty, { recursive: true });
      const config = await writeSandboxConfig(f.sandbox, {
        file: join(f.sandbox.dir, 'empty-target.yaml'),
        target: empty,
        extra: RESTORE_SECTION,
      });
      const r = await runCli(config, ['restore', '--confirm', SANDBOX_HOST]);
      expect(r.exitCode).toBe(EXIT.failed);
      expect(r.stderr).toContain(`no backup of ${SANDBOX_HOST}`);
      expect(r.stderr).toContain(empty);
      expectOneParagraph(r);
      expect(await homeChanges(f)).toEqual(untouched(f));
    },
    TIMEOUT,
  );

  it(
    'restore of a truncated dump fails in the preflight, saying the backup differs, with /home and its UUID unchanged',
    async () => {
      const f = await fixture();
      const { r, status, home } = await truncatedRestore();
      expect(r.exitCode).toBe(EXIT.failed);
      expect(r.stderr).toMatch(/failed at preflight/);
      expect(r.stderr).toMatch(/differs from what was written/);
      expect(r.stderr).toMatch(/nothing was destroyed/i);
      expectOneParagraph(r);
      expect(home).toEqual(untouched(f));
      expect(status).toMatchObject<Partial<RestoreStatus>>({ state: 'failed', failedPhase: 'preflight', backupId: f.backup.id });
    },
    TIMEOUT,
  );

  it(
    'restore while a restore is in progress (here: failed in its preflight) is refused with exit 2',
    async () => {
      const f = await fixture();
      const r = await refusedWhileInProgress();
      expect(r.exitCode).toBe(EXIT.usage);
      expect(r.stderr).toMatch(/already in progress/);
      expect(r.stderr).toContain(f.backup.id);
      expectOneParagraph(r);
      expect(await homeChanges(f)).toEqual(untouched(f));
    },
    TIMEOUT,
  );

  it(
    'abort after a preflight failure returns the restore to idle, recording it as aborted',
    async () => {
      const f = await fixture();
      const { r, status } = await aborted();
      expect(r.exitCode).toBe(EXIT.ok);
      expect(status).toMatchObject({ state: 'idle', last: { result: 'aborted', backupId: f.backup.id } });
      expect(await homeChanges(f)).toEqual(untouched(f));
    },
    TIMEOUT,
  );

  it(
    'restore of a dump with one byte changed in the middle fails in the preflight, with /home and its UUID unchanged',
    async () => {
      const f = await fixture();
      const { r, status, home } = await corruptedRestore();
      expect(r.exitCode).toBe(EXIT.failed);
      expect(r.stderr).toMatch(/failed at preflight/);
      expect(r.stderr).toMatch(/differs from what was written/);
      expectOneParagraph(r);
      expect(home).toEqual(untouched(f));
      expect(status).toMatchObject({ state: 'failed', failedPhase: 'preflight' });
    },
    TIMEOUT,
  );
});
