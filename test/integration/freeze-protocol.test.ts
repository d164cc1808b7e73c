/**
 * The freezer protocol of snapshot mode, with small freezers written here: a
 * freezer holds its database while its stdin is open, says "frozen" once it
 * does, and thaws when its stdin closes; one that says "ready" first freezes
 * only when it reads "freeze". These specs need no LVM: what happens
 * around lvcreate is the lane's (test/lane/snapshot.lane.test.ts).
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { freezeAll, type FreezeOptions } from '../../src/system/freeze.js';
import { REPO_ROOT } from '../support/cli.js';
import { alive, waitUntil } from '../support/restore-machines.js';

const dir = mkdtempSync(join(tmpdir(), 'syn3-freeze-'));
const journal = join(dir, 'journal');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A freezer that writes what it does to the journal; `body` runs between its start and its exit. */
function freezer(name: string, body: string): string {
  const file = join(dir, `${name}.freeze`);
  writeFileSync(file, `#!/bin/bash\necho "start ${name}" >> ${journal}\n${body}\n`);
  chmodSync(file, 0o700);
  return file;
}

const holds = (name: string) => freezer(name, `echo frozen\ncat > /dev/null\necho "thaw ${name}" >> ${journal}\nexit 0`);

/** A freezer that prepares for `prepare` seconds, says ready, and freezes when told (journalling each). */
const prepares = (name: string, prepare: number) =>
  freezer(
    name,
    `sleep ${prepare}\necho "ready ${name}" >> ${journal}\necho ready\n` +
      `read -r word || { echo "untold ${name}" >> ${journal}; exit 0; }\n` +
      `[ "$word" = freeze ] || exit 9\necho "freeze ${name}" >> ${journal}\necho frozen\n` +
      `cat > /dev/null\necho "thaw ${name}" >> ${journal}\nexit 0`,
  );

function options(timeoutMs = 5000): FreezeOptions & { lines: string[] } {
  const lines: string[] = [];
  return { env: { SYN3_BACKUP_ID: 'b1', SYN3_HOME: '/home' }, cwd: dir, timeoutMs, log: (m) => lines.push(m), lines };
}

function journalLines(): string[] {
  return existsSync(journal) ? readFileSync(journal, 'utf8').trim().split('\n') : [];
}

async function failure(p: Promise<unknown>): Promise<UserError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(UserError);
  return e as UserError;
}

async function eventually(check: () => boolean, withinMs: number): Promise<number> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > withinMs) throw new Error(`not within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

describe('freezers (modules/*.freeze)', () => {
  it('are started in name order, all at once, held until every one said frozen, and released last first', async () => {
    rmSync(journal, { force: true });
    const a = holds('a');
    const b = holds('b');
    const o = options();
    const frozen = await freezeAll([a, b], o);
    expect(o.lines.filter((l) => l.startsWith('freeze: starting'))).toEqual([`freeze: starting ${a}`, `freeze: starting ${b}`]);
    expect(journalLines().sort()).toEqual(['start a', 'start b']);
    const { thawedAt } = await frozen.release();
    expect(journalLines().slice(2)).toEqual(['thaw b', 'thaw a']);
    expect(thawedAt).toBeGreaterThanOrEqual(frozen.frozenAt);
    expect(frozen.frozenAt).toBeGreaterThanOrEqual(frozen.firstFrozenAt);
    expect(frozen.firstFrozenAt).toBeGreaterThanOrEqual(frozen.startedAt);
  });

  it('start together: the first says frozen only once the second has started, which one after the other would never do', async () => {
    rmSync(journal, { force: true });
    const waiting = freezer('waiting', `until grep -qx 'start second' ${journal}; do sleep 0.05; done\necho frozen\ncat > /dev/null`);
    const second = freezer('second', 'echo frozen\ncat > /dev/null');
    const frozen = await freezeAll([waiting, second], options(5000));
    expect(journalLines().sort()).toEqual(['start second', 'start waiting']);
    expect(frozen.frozenAt).toBeGreaterThanOrEqual(frozen.firstFrozenAt);
    await frozen.release();
  });

  it('get the backup id and the mount point of /home in their environment', async () => {
    const env = join(dir, 'env');
    const f = freezer('env', `echo "$SYN3_BACKUP_ID $SYN3_HOME" > ${env}\necho frozen\ncat > /dev/null`);
    await (await freezeAll([f], options())).release();
    expect(readFileSync(env, 'utf8').trim()).toBe('b1 /home');
  });

  it('that never says frozen fail the step after freeze_timeout, and the freezes already held are released', async () => {
    rmSync(journal, { force: true });
    const a = holds('a');
    // What it started holds its pipes too: it is killed with it, as one process group.
    const silent = freezer('silent', `sleep 30 &\necho $! > ${dir}/silent.child\nwait`);
    const e = await failure(freezeAll([a, silent], options(800)));
    expect(e.message).toMatch(/freezer .*silent\.freeze did not say "ready" or "frozen" within 1 s/);
    expect(e.hint).toMatch(/snapshot\.freeze_timeout/);
    expect(journalLines()).toContain('thaw a');
    const child = Number(readFileSync(join(dir, 'silent.child'), 'utf8'));
    await waitUntil("the silent freezer's child to be gone with it", async () => !alive(child), 1000);
  });

  it('that exit 1 before frozen fail the step with what they said, and the freezes already held are released', async () => {
    rmSync(journal, { force: true });
    const a = holds('a');
    const broken = freezer('broken', 'echo "cannot reach the database" >&2\nexit 1');
    const e = await failure(freezeAll([a, broken], options()));
    expect(e.message).toMatch(/broken\.freeze exited with 1 before it said "ready" or "frozen": cannot reach the database/);
    expect(journalLines()).toContain('thaw a');
  });

  it('that end while they should hold their freeze make the release fail: the snapshot may not be consistent', async () => {
    const quitter = freezer('quitter', 'echo frozen\nexit 0');
    const frozen = await freezeAll([quitter], options());
    await new Promise((r) => setTimeout(r, 200));
    const e = await failure(frozen.release());
    expect(e.message).toMatch(/a freeze did not hold: .*quitter\.freeze ended while it should have held its freeze/);
  });

  it('that do not thaw cleanly (exit 3 when released) make the release fail', async () => {
    const f = freezer('badthaw', 'echo frozen\ncat > /dev/null\nexit 3');
    const e = await failure((await freezeAll([f], options())).release());
    expect(e.message).toMatch(/badthaw\.freeze did not thaw cleanly \(exit 3\)/);
  });

  it('that cannot be run (not found) fail the step naming it', async () => {
    const e = await failure(freezeAll([join(dir, 'missing.freeze')], options()));
    expect(e.message).toMatch(/missing\.freeze/);
  });

  it('are logged with what they print besides "frozen"', async () => {
    const f = freezer('chatty', 'echo "checkpoint done"\necho frozen\ncat > /dev/null\necho "bye" >&2');
    const o = options();
    await (await freezeAll([f], o)).release();
    expect(o.lines.join('\n')).toMatch(/chatty\.freeze said: checkpoint done/);
    expect(o.lines.join('\n')).toMatch(/chatty\.freeze said on stderr: bye/);
  });

  it('that say "ready" are told to freeze together, only once the slowest is ready: none holds through another\'s preparation', async () => {
    rmSync(journal, { force: true });
    const quick = prepares('quick', 0);
    const slow = prepares('slow', 0.6);
    const frozen = await freezeAll([quick, slow], options());
    const lines = journalLines();
    const lastReady = Math.max(lines.indexOf('ready quick'), lines.indexOf('ready slow'));
    const firstFreeze = Math.min(lines.indexOf('freeze quick'), lines.indexOf('freeze slow'));
    expect(lastReady).toBeGreaterThanOrEqual(0);
    expect(firstFreeze).toBeGreaterThan(lastReady);
    // The quick one was ready some 600 ms before it was frozen: that wait is not in the window.
    expect(frozen.frozenAt - frozen.firstFrozenAt).toBeLessThan(300);
    expect(frozen.firstFrozenAt - frozen.startedAt).toBeGreaterThanOrEqual(550);
    await frozen.release();
    expect(journalLines().slice(-2)).toEqual(['thaw slow', 'thaw quick']);
  });

  it('run beforeFreeze once every freezer is ready and before any is told to freeze', async () => {
    rmSync(journal, { force: true });
    const a = prepares('a', 0);
    const b = prepares('b', 0.2);
    const frozen = await freezeAll([a, b], {
      ...options(),
      beforeFreeze: async () => writeFileSync(journal, 'flush\n', { flag: 'a' }),
    });
    const lines = journalLines();
    expect(lines.indexOf('flush')).toBeGreaterThan(Math.max(lines.indexOf('ready a'), lines.indexOf('ready b')));
    expect(lines.indexOf('flush')).toBeLessThan(Math.min(lines.indexOf('freeze a'), lines.indexOf('freeze b')));
    await frozen.release();
  });

  it('mix with freezers that say "frozen" straight away: the window starts at the first "frozen"', async () => {
    rmSync(journal, { force: true });
    const old = holds('old');
    const ready = prepares('ready', 0.3);
    const frozen = await freezeAll([old, ready], options());
    expect(frozen.frozenAt - frozen.firstFrozenAt).toBeGreaterThanOrEqual(250);
    expect(journalLines()).toContain('freeze ready');
    await frozen.release();
    expect(journalLines().slice(-2)).toEqual(['thaw ready', 'thaw old']);
  });

  it('that are ready when another fails are let go without freezing, and exit 0', async () => {
    rmSync(journal, { force: true });
    const ready = prepares('ready', 0);
    const broken = freezer('broken', 'sleep 0.3\necho "cannot reach the database" >&2\nexit 1');
    const e = await failure(freezeAll([ready, broken], options()));
    expect(e.message).toMatch(/broken\.freeze exited with 1 before it said "ready" or "frozen": cannot reach the database/);
    expect(journalLines()).toContain('untold ready');
    expect(journalLines()).not.toContain('freeze ready');
  });

  it('that say "ready" but not "frozen" when told fail the step after freeze_timeout, naming it', async () => {
    rmSync(journal, { force: true });
    const stuck = freezer('stuck', 'echo ready\nread -r word\ncat > /dev/null');
    const e = await failure(freezeAll([stuck], options(800)));
    expect(e.message).toMatch(/freezer .*stuck\.freeze did not say "frozen" within 1 s/);
    expect(e.hint).toMatch(/said "ready" but did not freeze when told/);
  });

  it('thaw by themselves within a second when the process holding them is killed with SIGKILL', async () => {
    rmSync(journal, { force: true });
    const a = holds('a');
    const b = holds('b');
    // The built library, in a process of its own that is killed as a crash would kill syn3-backup.
    const holder = join(dir, 'holder.mjs');
    writeFileSync(
      holder,
      `import { freezeAll } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'src', 'system', 'freeze.js'))};\n` +
        `await freezeAll(${JSON.stringify([a, b])}, { env: {}, cwd: '/', timeoutMs: 5000, log: () => {} });\n` +
        `process.stdout.write('held\\n');\nsetInterval(() => {}, 1000);\n`,
    );
    const child = spawn(process.execPath, [holder], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => d.toString().includes('held') && resolve()));
    expect(journalLines()).toEqual(['start a', 'start b']);
    child.kill('SIGKILL');
    const ms = await eventually(() => journalLines().includes('thaw a') && journalLines().includes('thaw b'), 1000);
    console.info(`freezers thawed ${ms} ms after their holder was killed`);
  });
});
