// Times xfsdump cannot keep: it stores 32-bit seconds, so a file dated 2100
// came back dated 1963. First the search on its own, to the nanosecond at
// both ends of the range (on a tmpfs, which keeps times XFS refuses); then
// the real CLI on a loop XFS sandbox: one warning per backup with the count
// and the first few paths, every path in the log, nothing when there are
// none, and the restore's plan and its summary repeating the count. Every expected path and
// count comes from the times this file sets, never from the code under test.
import { lstat, mkdir, mkdtemp, readFile, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { findUnkeptTimes } from '../../src/system/find-unkept-times.js';
import { listBackups, logEntries, runCli, SANDBOX_HOST, writeSandboxConfig, type CliResult } from '../support/cli.js';
import { createSandbox, destroyAll, type Sandbox } from '../support/sandbox.js';

const TIMEOUT = 180_000;
const WARNING = /will come back with other times/;

/** touch -d with an exact epoch time (to the nanosecond): Node's utimes takes a double. */
async function touch(file: string, at: string, which: '-a' | '-m' | 'both' = 'both'): Promise<void> {
  await execa('touch', [...(which === 'both' ? [] : [which]), '-d', at, file]);
}

async function made(root: string, rel: string): Promise<string> {
  const file = join(root, rel);
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, `${rel}\n`);
  return file;
}

describe('the search for times xfsdump cannot keep (tmpfs, which keeps any time)', () => {
  let tree: string | undefined;
  afterAll(async () => {
    if (!tree) return;
    await execa('umount', [join(tree, 'other')], { reject: false });
    await execa('umount', [tree], { reject: false });
    await rmdir(tree).catch(() => undefined);
  });

  // Kept: whole seconds from -2^31 to 2^31-1; a fraction of a second past either is a sub-second, which every file loses.
  const kept: Array<[string, string]> = [
    ['kept/lowest-second', '@-2147483648'],
    ['kept/highest-second', '@2147483647'],
    ['kept/highest-second-and-a-fraction', '@2147483647.999999999'],
    ['kept/ordinary', '2026-06-01T12:00:00Z'],
  ];
  const lost: Array<[string, string, '-a' | '-m' | 'both']> = [
    ['lost/one-ns-before-lowest', '@-2147483648.000000001', 'both'],
    ['lost/half-a-second-before-lowest', '@-2147483648.5', 'both'],
    ['lost/dated-1850', '1850-01-01T00:00:00Z', 'both'],
    ['lost/one-second-after-highest', '@2147483648', 'both'],
    ['lost/read-in-2100', '2100-01-01T00:00:00Z', '-a'],
    ['lost/modified-in-1850', '1850-01-01T00:00:00Z', '-m'],
  ];

  const search = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'syn3-unkept-'));
    tree = dir;
    await execa('mount', ['-t', 'tmpfs', 'none', dir]);
    for (const [rel, at] of kept) await touch(await made(dir, rel), at);
    for (const [rel, at, which] of lost) await touch(await made(dir, rel), at, which);
    await touch(await made(dir, 'lost/new\nline'), '2100-01-01T00:00:00Z');
    // Another file system below the tree is not dumped, so not searched.
    await mkdir(join(dir, 'other'));
    await execa('mount', ['-t', 'tmpfs', 'none', join(dir, 'other')]);
    await touch(await made(dir, 'other/dated-2100'), '2100-01-01T00:00:00Z');
    return findUnkeptTimes(dir);
  };

  it('lists exactly the files whose mtime or atime lies outside the signed 32-bit seconds, edges to the nanosecond', async () => {
    const found = await search();
    expect(found.incomplete).toBeUndefined();
    expect([...found.paths].sort()).toEqual([...lost.map(([rel]) => rel), 'lost/new\\u000aline'].sort());
  });

  it('says why when find fails, and never rejects: the backup beside it must not fail for it', async () => {
    const found = await findUnkeptTimes('/nonexistent/syn3-unkept-times');
    expect(found.paths).toEqual([]);
    expect(found.incomplete).toMatch(/find failed .*No such file or directory/);
  });
});

interface Story {
  sandbox: Sandbox;
  config: string;
  state: string;
  target: string;
  /** /home: three files lost, two kept at the range's edges. */
  withSome: CliResult;
  /** The same /home once those three are gone. */
  withNone: CliResult;
  /** Eight files dated 2100 more. */
  withEight: CliResult;
  /** `restore` with no confirmation: its plan is printed, then it stops, touching nothing. */
  plan: CliResult;
  /** Then `restore --confirm`: /home formatted and restored, the machine to reboot. */
  restored: CliResult;
}

/** Relative to /home; set with touch on a bigtime XFS (mkfs.xfs's default since xfsprogs 5.15). */
const SOME_LOST: Array<[string, string, '-a' | '-m' | 'both']> = [
  ['alice/dated-2100', '2100-01-01T00:00:00Z', 'both'],
  ['alice/read-in-2100', '2100-01-01T00:00:00Z', '-a'],
  ['alice/one-second-after-2038', '2038-01-19T03:14:08Z', 'both'],
];
/** The last second xfsdump keeps, and 1850, which XFS itself stores as its earliest time, 1901-12-13T20:45:52Z: kept alike. */
const SOME_KEPT: Array<[string, string]> = [
  ['alice/last-second-of-2038', '2038-01-19T03:14:07Z'],
  ['alice/dated-1850', '1850-01-01T00:00:00Z'],
];
const EIGHT_LOST = Array.from({ length: 8 }, (_, i) => `bob/dated-2100-${i + 1}`);

let pending: Promise<Story> | undefined;
function story(): Promise<Story> {
  pending ??= (async () => {
    const sandbox = await createSandbox();
    const home = sandbox.home.mountPoint;
    const target = join(sandbox.dir, 'target');
    const state = join(sandbox.dir, 'state');
    await mkdir(target);
    await mkdir(join(sandbox.dir, 'modules'));
    const config = await writeSandboxConfig(sandbox, { target });
    await made(home, 'alice/ordinary');
    for (const [rel, at, which] of SOME_LOST) await touch(await made(home, rel), at, which);
    for (const [rel, at] of SOME_KEPT) await touch(await made(home, rel), at);
    const dated2100 = (await lstat(join(home, 'alice/dated-2100'), { bigint: true })).mtimeNs;
    if (dated2100 !== 4102444800n * 1_000_000_000n) throw new Error(`this XFS has no bigtime: a time set to 2100 reads ${dated2100} ns`);
    const withSome = await runCli(config, ['backup']);
    for (const [rel] of SOME_LOST) await execa('rm', [join(home, rel)]);
    const withNone = await runCli(config, ['backup']);
    for (const rel of EIGHT_LOST) await touch(await made(home, rel), '2100-01-01T00:00:00Z');
    const withEight = await runCli(config, ['backup']);
    const plan = await runCli(config, ['restore']);
    const restored = await runCli(config, ['restore', '--confirm', SANDBOX_HOST]);
    return { sandbox, config, state, target, withSome, withNone, withEight, plan, restored };
  })();
  return pending;
}

afterAll(async () => {
  await (await pending?.catch(() => undefined))?.sandbox.cleanup();
  await destroyAll();
});

const warnings = (r: CliResult) => r.stderr.split('\n').filter((l) => WARNING.test(l));
const underHome = (s: Story, rels: readonly string[]) => rels.map((rel) => join(s.sandbox.home.mountPoint, rel));

/** What the backup's warning and the restore's plan both say of the eight files dated 2100 ("came back" once restored). */
function expectFiveOfEight(s: Story, line: string | undefined, comeBack = 'will come back'): void {
  expect(line).toContain(`${EIGHT_LOST.length} files ${comeBack} with other times`);
  expect(line).toContain(' and 3 more');
  expect(underHome(s, EIGHT_LOST).filter((p) => line?.includes(p))).toHaveLength(5);
}

describe('a backup of a /home holding times xfsdump cannot keep', () => {
  it(
    'succeeds, and warns once on stderr with the count and the paths of the files dated after 2038 (mtime or atime alone)',
    async () => {
      const s = await story();
      expect(s.withSome.exitCode).toBe(0);
      const lines = warnings(s.withSome);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`${SOME_LOST.length} files will come back with other times`);
      for (const path of underHome(
        s,
        SOME_LOST.map(([rel]) => rel),
      ))
        expect(lines[0]).toContain(path);
    },
    TIMEOUT,
  );

  it(
    'does not count the last second of 2038 nor a time XFS already holds as 1901-12-13T20:45:52Z',
    async () => {
      const s = await story();
      const [line] = warnings(s.withSome);
      for (const path of underHome(
        s,
        SOME_KEPT.map(([rel]) => rel),
      ))
        expect(line).not.toContain(path);
      expect(line).not.toMatch(/ and \d+ more/);
    },
    TIMEOUT,
  );

  it(
    'records the count in the backup metadata, and a backup with none records nothing',
    async () => {
      const s = await story();
      const [some, none, eight] = await listBackups(s.config);
      const meta = async (id: string) => JSON.parse(await readFile(join(s.target, id, 'meta.json'), 'utf8')) as Record<string, unknown>;
      expect((await meta(some!.id)).unkeptTimes).toMatchObject({ count: SOME_LOST.length });
      expect((await meta(none!.id)).unkeptTimes).toBeUndefined();
      expect((await meta(eight!.id)).unkeptTimes).toMatchObject({ count: EIGHT_LOST.length });
    },
    TIMEOUT,
  );

  it(
    'gives no warning when every time fits',
    async () => {
      const s = await story();
      expect(s.withNone.exitCode).toBe(0);
      expect(warnings(s.withNone)).toEqual([]);
    },
    TIMEOUT,
  );

  it(
    'with eight such files names five of them and "and 3 more", while the log names all eight',
    async () => {
      const s = await story();
      expect(s.withEight.exitCode).toBe(0);
      const [line] = warnings(s.withEight);
      expectFiveOfEight(s, line);
      const log = await logEntries(s.state);
      // The last dump's lines (run ids are to the second: three quick backups may share one).
      const lastDump = log.slice(log.findLastIndex((e) => e.msg === 'dump: started'));
      const listed = lastDump.filter((e) => e.msg === 'dump: a time xfsdump cannot keep').map((e) => e.path);
      expect([...listed].sort()).toEqual(underHome(s, EIGHT_LOST).sort());
    },
    TIMEOUT,
  );

  it(
    'keeps that list in a log file only root can read',
    async () => {
      const s = await story();
      expect((await lstat(join(s.state, 'syn3-backup.log'))).mode & 0o777).toBe(0o600);
    },
    TIMEOUT,
  );
});

describe("the restore's plan", () => {
  it(
    'repeats the count from the backup it restores: "8 files will come back with other times", five paths and 3 more',
    async () => {
      const s = await story();
      // No confirmation and no terminal: refused after the plan, with nothing touched.
      expect(s.plan.exitCode).toBe(2);
      const line = s.plan.stdout.split('\n').find((l) => WARNING.test(l));
      expectFiveOfEight(s, line);
    },
    TIMEOUT,
  );

  it(
    'and its summary, once /home is restored, repeats it: "8 files came back with other times"',
    async () => {
      const s = await story();
      expect(s.restored.exitCode).toBe(0);
      const after = s.restored.stdout.slice(s.restored.stdout.indexOf('Reboot now'));
      expect(after).toMatch(/^Reboot now/);
      expectFiveOfEight(
        s,
        after.split('\n').find((l) => /came back with other times/.test(l)),
        'came back',
      );
    },
    TIMEOUT,
  );
});
