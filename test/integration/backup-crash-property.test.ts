/**
 * A property over crash points: a backup is killed (SIGKILL) at the start of
 * any step, just after any step's side effect, or at a random byte of the
 * dump; then `tick` runs. Every case must end with the earlier good backup
 * untouched and exactly one new, complete backup; a half-written dump is never
 * listed, neither right after the crash nor later; no temporaries remain.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { cp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox, destroyAll, type Sandbox } from '../support/sandbox.js';
import { populateBootTree, populateRichTree, populateSystemTree } from '../support/rich-tree.js';
import type { CrashPoint } from '../support/crash-harness.js';

const REPO = resolve(import.meta.dirname, '../..');
const CLI = join(REPO, 'dist/bin/syn3-backup.mjs');
const HARNESS = join(REPO, 'dist/test/support/crash-harness.js');
const STEPS = [
  'checkReady',
  'syncSystem',
  'recordLayout',
  'runSpoolModules',
  'dumpHome',
  'verifyDump',
  'publishBackup',
  'applyRetention',
] as const;

interface Listed {
  id: string;
  size: number;
  location: string;
  sha256: string;
}

let sb: Sandbox;
let config: string;
let target: string;
let state: string;
let baseline: string;
let dumpSize = 0;

async function cli(...args: string[]) {
  return execa('node', [CLI, '--config', config, ...args], { reject: false, stdin: 'ignore' });
}

async function list(): Promise<Listed[]> {
  const r = await cli('list', '--json');
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Listed[];
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function expectComplete(b: Listed): Promise<void> {
  expect(await sha256(b.location), `${b.id} is complete`).toBe(b.sha256);
}

beforeAll(async () => {
  sb = await createSandbox();
  await populateSystemTree(sb.root.mountPoint);
  await populateBootTree(sb.boot.mountPoint);
  await populateRichTree(join(sb.home.mountPoint, 'alice'));
  const modules = join(sb.dir, 'modules');
  await mkdir(modules, { mode: 0o755 });
  await writeFile(join(modules, '10-db.backup'), '#!/bin/sh\necho "state of the db" > "$SYN3_SPOOL/db.dump"\n', { mode: 0o755 });
  target = join(sb.dir, 'target');
  state = join(sb.dir, 'state');
  baseline = join(sb.dir, 'baseline');
  await mkdir(target);
  config = join(sb.dir, 'config.yaml');
  await writeFile(
    config,
    stringify({
      host: 'crashbox',
      // Every tick is due, so a tick after a crash before the first save still backs up.
      schedule: { every: '1s' },
      paths: { root: sb.root.mountPoint, boot: sb.boot.mountPoint, home: sb.home.mountPoint, state, modules },
      target: { type: 'file', path: target, retention: { keep: 5 } },
    }),
  );
  const first = await cli('backup');
  expect(first.exitCode, first.stderr).toBe(0);
  const [good] = await list();
  dumpSize = good!.size;
  await mkdir(baseline);
  await cp(target, join(baseline, 'target'), { recursive: true });
  await cp(state, join(baseline, 'state'), { recursive: true });
}, 300_000);

afterAll(async () => {
  await sb?.cleanup();
  await destroyAll();
});

async function resetToBaseline(): Promise<Listed> {
  await rm(target, { recursive: true, force: true });
  await rm(state, { recursive: true, force: true });
  await cp(join(baseline, 'target'), target, { recursive: true });
  await cp(join(baseline, 'state'), state, { recursive: true });
  const [good] = await list();
  return good!;
}

async function crashThenTick(crash: CrashPoint): Promise<void> {
  const good = await resetToBaseline();
  const crashed = await execa('node', [HARNESS, config, JSON.stringify(crash)], { reject: false, stdin: 'ignore' });
  expect(crashed.signal, `the harness died at ${JSON.stringify(crash)}: ${crashed.stderr}`).toBe('SIGKILL');

  // Right after the crash: whatever is listed is complete, and the good backup is untouched.
  const afterCrash = await list();
  expect(afterCrash.map((b) => b.id)).toContain(good.id);
  for (const b of afterCrash) await expectComplete(b);

  const tick = await cli('tick');
  expect(tick.exitCode, tick.stderr).toBe(0);

  const listed = await list();
  expect(listed[0]).toEqual(good);
  await expectComplete(listed[0]!);
  expect(listed).toHaveLength(2);
  await expectComplete(listed[1]!);
  expect(existsSync(join(target, '.incoming')) ? await readdir(join(target, '.incoming')) : []).toEqual([]);
  const status = await cli('status', '--json');
  expect(JSON.parse(status.stdout)).toMatchObject({ state: 'idle', consecutiveFailures: 0, running: null });
}

const stepPoints: CrashPoint[] = STEPS.flatMap((step) => [
  { kind: 'start', step } as const,
  { kind: 'entered', step } as const,
  { kind: 'after', step } as const,
]);

describe('a backup killed at any point', () => {
  it('ends, after the next tick, with the earlier backup untouched and one new complete backup', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.constantFrom(...stepPoints),
          fc.integer({ min: 1, max: Math.max(2, dumpSize - 1) }).map((bytes): CrashPoint => ({ kind: 'inDump', bytes })),
        ),
        crashThenTick,
      ),
      { numRuns: 12, examples: stepPoints.map((p) => [p]), endOnFailure: true },
    );
  }, 900_000);
});
