// A backup killed with SIGKILL in the middle of the dump (power cut, OOM
// killer, kill -9): the next tick takes over the dead process's lock, resumes
// the run from its saved state and ends with one complete, verified backup;
// until then the partial dump is never listed.
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import {
  incomingLeftovers,
  listBackups,
  runCli,
  savedState,
  sha256File,
  startCli,
  statusJson,
  writeSandboxConfig,
  type CliResult,
  type ListedBackup,
} from '../support/cli.js';
import { populateBootTree, populateSystemTree } from '../support/rich-tree.js';
import { createSandbox, destroyAll, type Sandbox } from '../support/sandbox.js';

const TIMEOUT = 180_000;
const MiB = 1024 * 1024;
const HOME_DATA_MiB = 300;

interface Fixture {
  sandbox: Sandbox;
  config: string;
  state: string;
  target: string;
}

interface Killed {
  /** The run that was killed. */
  id: string;
  pid: number;
  /** How much of the dump was on the target when the kill came. */
  partialBytes: number;
}

let pendingSandbox: Promise<Fixture> | undefined;
let pendingFirst: Promise<{ killed: Killed; tick: CliResult }> | undefined;
let pendingSecond: Promise<{ earlier: ListedBackup; killed: Killed; listedAfterKill: ListedBackup[] }> | undefined;

// Built on first use, not in beforeAll, so a missing tool fails every test instead of skipping them.
function sandboxFixture(): Promise<Fixture> {
  pendingSandbox ??= (async () => {
    const sandbox = await createSandbox({ homeMiB: 600 });
    await populateSystemTree(sandbox.root.mountPoint);
    await populateBootTree(sandbox.boot.mountPoint);
    // Incompressible and big enough that the dump takes a while to write.
    for (let i = 0; i < 3; i++) {
      const file = join(sandbox.home.mountPoint, `data-${i}.bin`);
      await execa('dd', ['if=/dev/urandom', `of=${file}`, 'bs=4M', `count=${HOME_DATA_MiB / 3 / 4}`, 'status=none']);
    }
    const target = join(sandbox.dir, 'target');
    const state = join(sandbox.dir, 'state');
    await mkdir(target);
    // paths.modules is written in the config: it must exist (a missing one is refused as a typo).
    await mkdir(join(sandbox.dir, 'modules'));
    const config = await writeSandboxConfig(sandbox, { target, state, keep: 5 });
    return { sandbox, config, state, target };
  })();
  return pendingSandbox;
}

function partialFile(target: string, id: string): string {
  return join(target, '.incoming', id, 'home.xfsdump');
}

async function sizeOf(file: string): Promise<number> {
  return stat(file).then(
    (s) => s.size,
    () => 0,
  );
}

/** Pids of xfsdump processes dumping this mount point (the killed CLI's orphans). */
async function xfsdumpsOf(mountPoint: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv[0]?.endsWith('xfsdump') && argv.includes(mountPoint)) pids.push(Number(name));
  }
  return pids;
}

/** Starts `syn3-backup backup` and kills it with SIGKILL once the saved state is {running: 'dump'} and over 1 MiB of the dump is written. */
async function killDuringDump(f: Fixture): Promise<Killed> {
  const child = startCli(f.config, ['backup']);
  const deadline = Date.now() + 120_000;
  let seen: Killed | undefined;
  while (!seen) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      const r = await child;
      throw new Error(`the backup was not caught in the dump step (exit ${r.exitCode}, signal ${r.signal}): ${String(r.stderr)}`);
    }
    const saved = await savedState(f.state);
    const id = (saved?.context.run as { id?: string } | undefined)?.id;
    if (id && isDeepStrictEqual(saved?.value, { running: 'dump' })) {
      const partialBytes = await sizeOf(partialFile(f.target, id));
      if (partialBytes > MiB) seen = { id, pid: child.pid!, partialBytes };
    }
    if (!seen) await sleep(5);
  }
  child.kill('SIGKILL');
  const r = await child;
  if (r.signal !== 'SIGKILL') throw new Error(`the backup ended before the kill (exit ${r.exitCode}): ${String(r.stderr)}`);
  // Its xfsdump loses the reader of its pipe and dies of SIGPIPE; wait, so the next run starts on a quiet file system.
  for (let i = 0; (await xfsdumpsOf(f.sandbox.home.mountPoint)).length > 0; i++) {
    if (i === 200) for (const pid of await xfsdumpsOf(f.sandbox.home.mountPoint)) process.kill(pid, 'SIGKILL');
    await sleep(50);
  }
  return seen;
}

/** A fresh sandbox's first backup, killed during the dump, then one tick. */
function firstRun(): Promise<{ killed: Killed; tick: CliResult }> {
  pendingFirst ??= (async () => {
    const f = await sandboxFixture();
    const killed = await killDuringDump(f);
    const lock = JSON.parse(await readFile(join(f.state, 'lock'), 'utf8')) as { pid: number };
    if (lock.pid !== killed.pid) throw new Error(`the lock should still name the killed pid ${killed.pid}, it names ${lock.pid}`);
    return { killed, tick: await runCli(f.config, ['tick']) };
  })();
  return pendingFirst;
}

/** After the first run's backup is complete, a second backup killed during the dump. */
function secondRun(): Promise<{ earlier: ListedBackup; killed: Killed; listedAfterKill: ListedBackup[] }> {
  pendingSecond ??= (async () => {
    const f = await sandboxFixture();
    await firstRun();
    const before = await listBackups(f.config);
    if (before.length !== 1) throw new Error(`expected the first run's backup, list shows ${JSON.stringify(before)}`);
    const killed = await killDuringDump(f);
    return { earlier: before[0]!, killed, listedAfterKill: await listBackups(f.config) };
  })();
  return pendingSecond;
}

afterAll(destroyAll);

describe('a backup killed with SIGKILL during the dump', () => {
  it(
    "is resumed by the next tick, which takes over the dead process's lock and exits 0",
    async () => {
      const { tick, killed } = await firstRun();
      expect(tick.exitCode, tick.stderr).toBe(0);
      expect(tick.stdout).toBe('');
      // Under cron only warnings reach stderr: the take-over of the dead pid's lock is one.
      expect(tick.stderr).toContain(`pid ${killed.pid}`);
    },
    TIMEOUT,
  );

  it(
    'ends as exactly one listed backup, of the killed run, whose file matches its recorded size and sha256',
    async () => {
      const { config } = await sandboxFixture();
      const { killed } = await firstRun();
      const listed = await listBackups(config);
      expect(listed.map((b) => b.id)).toEqual([killed.id]);
      const [backup] = listed;
      expect(backup!.size).toBeGreaterThan(HOME_DATA_MiB * MiB);
      expect((await stat(backup!.location)).size).toBe(backup!.size);
      expect(await sha256File(backup!.location)).toBe(backup!.sha256);
    },
    TIMEOUT,
  );

  it(
    "leaves no unfinished write in the target's .incoming",
    async () => {
      const { target } = await sandboxFixture();
      await firstRun();
      expect(await incomingLeftovers(target)).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'is followed by a status of idle with the last success',
    async () => {
      const { config } = await sandboxFixture();
      const { killed } = await firstRun();
      const { exitCode, report } = await statusJson(config);
      expect(exitCode).toBe(0);
      expect(report.state).toBe('idle');
      expect(report.lastSuccess).toMatchObject({ id: killed.id, result: 'success' });
      expect(report.lastFailure).toBeNull();
    },
    TIMEOUT,
  );
});

describe('a backup killed during the dump while an earlier backup exists', () => {
  it(
    'is never listed before the next tick: list shows only the earlier backup',
    async () => {
      const { target } = await sandboxFixture();
      const { earlier, killed, listedAfterKill } = await secondRun();
      expect(killed.id).not.toBe(earlier.id);
      expect(await sizeOf(partialFile(target, killed.id))).toBeGreaterThan(MiB);
      expect(listedAfterKill).toEqual([earlier]);
    },
    TIMEOUT,
  );

  it(
    'is completed by the next tick, next to the intact earlier backup',
    async () => {
      const { config, target } = await sandboxFixture();
      const { earlier, killed } = await secondRun();
      const tick = await runCli(config, ['tick']);
      expect(tick.exitCode, tick.stderr).toBe(0);
      const listed = await listBackups(config);
      expect(listed.map((b) => b.id)).toEqual([earlier.id, killed.id]);
      expect(listed[0]).toEqual(earlier);
      for (const b of listed) expect(await sha256File(b.location)).toBe(b.sha256);
      expect(await incomingLeftovers(target)).toEqual([]);
    },
    TIMEOUT,
  );
});
