/**
 * The Target contract: what every target (file, smb, ftp, s3, tape) must do,
 * one suite run against each, each against its real server or medium. A
 * target whose server cannot start fails here (its fixture throws): nothing
 * is ever skipped. Each run says which target it covered and how it went
 * (printed at the end, and appended to $SYN3_CONTRACT_RECORD when set);
 * contract-coverage.test.ts checks that every target type has its run.
 */
import { appendFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import type { BackupMetadata, Target } from '../../src/targets/target.js';
import { backUp, expectIntact, failure, KiB, MiB, metadataFor, readAll, sha256, streamOf } from '../support/target-helpers.js';

export interface ContractFixture {
  /** Starts what the target needs (once for the suite); it throws when that cannot be had. */
  start?(): Promise<void>;
  stop?(): Promise<void>;
  /** A target on a fresh, empty place (directory, folder, bucket, blank tape). */
  fresh(): Promise<Target>;
  /**
   * Replaces the committed metadata of `id` on the target, as anyone with
   * write access to it could: `change` gets what is there and returns what
   * goes in its place (a string is written as it is).
   */
  tamper(target: Target, id: string, change: (metadata: Record<string, unknown>) => unknown): Promise<void>;
  /** The target holds one backup at a time (a tape): a second one replaces the first. */
  holdsOne?: boolean;
}

/** Everything each target's metadata must be refused for when it comes back (kit/metadata.ts). */
const TAMPERED: [string, (m: Record<string, unknown>) => unknown][] = [
  ['cut short (not JSON)', (m) => JSON.stringify(m).slice(0, 40)],
  ['a sha256 that is not 64 lowercase hex digits', (m) => ({ ...m, sha256: 'not-a-hash' })],
  ['a negative size', (m) => ({ ...m, size: -1 })],
  ['the id of another backup', (m) => ({ ...m, id: 'someone-else' })],
  ['a format this program does not know', (m) => ({ ...m, format: 2 })],
  ['a layout without /home', (m) => ({ ...m, layout: { ...(m.layout as object), home: undefined } })],
  ['a date that is not ISO 8601', (m) => ({ ...m, created: 'yesterday' })],
  ['a field no version of this program writes', (m) => ({ ...m, restoreCommand: 'rm -rf /' })],
];

export function describeTargetContract(name: string, fixture: ContractFixture): void {
  describe(`target contract: ${name}`, () => {
    const outcome = { passed: 0, failed: 0 };
    beforeAll(async () => {
      await fixture.start?.();
    });
    afterEach((context) => {
      if (context.task.result?.state === 'fail') outcome.failed++;
      else outcome.passed++;
    });
    afterAll(async () => {
      await fixture.stop?.();
      const line = `target contract: ${name}: ${outcome.passed} passed, ${outcome.failed} failed`;
      process.stdout.write(`${line}\n`);
      const record = process.env.SYN3_CONTRACT_RECORD;
      if (record) appendFileSync(record, `${JSON.stringify({ target: name, ...outcome, at: new Date().toISOString() })}\n`);
    });

    it('check passes on a fresh target', async () => {
      await (await fixture.fresh()).check();
    });

    it('write stores a multi-MB stream that openPending reads back byte for byte', async () => {
      const target = await fixture.fresh();
      const data = randomBytes(6 * MiB + 12_345);
      await target.write('b1', streamOf(data));
      const back = await readAll(await target.openPending('b1'));
      expect(back.length).toBe(data.length);
      expect(sha256(back)).toBe(sha256(data));
    });

    it('write replaces an earlier partial of the same id', async () => {
      const target = await fixture.fresh();
      await target.write('b1', streamOf(randomBytes(2 * MiB)));
      const data = randomBytes(MiB + 7);
      await target.write('b1', streamOf(data));
      expect(sha256(await readAll(await target.openPending('b1')))).toBe(sha256(data));
    });

    it('lists nothing that is written but not committed', async () => {
      const target = await fixture.fresh();
      await target.write('b1', streamOf(randomBytes(300 * KiB)));
      expect(await target.list()).toEqual([]);
    });

    it('commit publishes the backup with its metadata, and open reads back exactly its bytes', async () => {
      const target = await fixture.fresh();
      const data = randomBytes(3 * MiB + 1);
      await target.write('b1', streamOf(data));
      const metadata = metadataFor('b1', data);
      const stored = await target.commit('b1', metadata);
      expect(stored).toEqual({ id: 'b1', created: metadata.created, size: data.length, location: expect.any(String), metadata });
      expect(await target.list()).toEqual([stored]);
      expect(sha256(await readAll(await target.open('b1')))).toBe(sha256(data));
    });

    it('commit is idempotent', async () => {
      const target = await fixture.fresh();
      const data = await backUp(target, 'b1');
      const first = (await target.list())[0]!;
      const again = await target.commit('b1', first.metadata);
      expect(again).toEqual(first);
      expect(await target.list()).toEqual([first]);
      await expectIntact(target, 'b1', data);
    });

    it('refuses a different backup under the same id, and keeps the first', async () => {
      const target = await fixture.fresh();
      const data = await backUp(target, 'b1');
      const other = metadataFor('b1', randomBytes(data.length));
      const e = await failure(target.commit('b1', other));
      expect(e.kind).toBe('target');
      expect(e.message).toBe('a different backup with id b1 is already on the target');
      expect(e.hint).toBe('Run the backup again: it gets a new id; the backup already there is kept');
      await expectIntact(target, 'b1', data);
    });

    it(fixture.holdsOne ? 'lists the one backup it holds' : 'lists committed backups oldest first, not by name', async () => {
      const target = await fixture.fresh();
      if (fixture.holdsOne) {
        const data = await backUp(target, 'b1');
        await expectIntact(target, 'b1', data);
        return;
      }
      // Made in this order, with these times: b2 is the oldest, then b3, then b1.
      await backUp(target, 'b3', randomBytes(KiB), '2030-01-02T00:00:00.000Z');
      await backUp(target, 'b1', randomBytes(KiB), '2030-01-03T00:00:00.000Z');
      await backUp(target, 'b2', randomBytes(KiB), '2030-01-01T00:00:00.000Z');
      expect((await target.list()).map((b) => b.id)).toEqual(['b2', 'b3', 'b1']);
    });

    it('remove deletes a backup: it is no longer listed, a second remove does nothing, the others are intact', async () => {
      const target = await fixture.fresh();
      if (fixture.holdsOne) {
        await backUp(target, 'b1');
        await target.remove('b1');
        expect(await target.list()).toEqual([]);
        await target.remove('b1');
        return;
      }
      await backUp(target, 'b1');
      const kept = await backUp(target, 'b2');
      await target.remove('b1');
      await expectIntact(target, 'b2', kept);
      await target.remove('b1');
      await expectIntact(target, 'b2', kept);
    });

    it('cleanPending removes the unfinished writes of earlier runs except `keep`, and leaves backups alone', async () => {
      const target = await fixture.fresh();
      if (fixture.holdsOne) {
        await target.write('b2', streamOf(randomBytes(300 * KiB)));
        expect(await target.cleanPending('b2')).toEqual([]);
        expect(await target.cleanPending()).toEqual(['b2']);
        expect(await target.cleanPending()).toEqual([]);
        const kept = await backUp(target, 'b1');
        expect(await target.cleanPending()).toEqual([]);
        await expectIntact(target, 'b1', kept);
        return;
      }
      const kept = await backUp(target, 'b1');
      await target.write('b2', streamOf(randomBytes(300 * KiB)));
      await target.write('b3', streamOf(randomBytes(300 * KiB)));
      expect(await target.cleanPending('b3')).toEqual(['b2']);
      expect(sha256(await readAll(await target.openPending('b3')))).toHaveLength(64);
      expect(await target.cleanPending()).toEqual(['b3']);
      expect(await target.cleanPending()).toEqual([]);
      await expectIntact(target, 'b1', kept);
    });

    it('a source that fails mid-stream fails the write with its own error, and nothing is listed', async () => {
      const target = await fixture.fresh();
      const broken = new Error('xfsdump went away');
      const source = Readable.from(
        (async function* () {
          yield randomBytes(2 * MiB + 7);
          throw broken;
        })(),
        { objectMode: false },
      );
      await expect(target.write('b1', source)).rejects.toBe(broken);
      expect(await target.list()).toEqual([]);
    });

    it('open of a backup that is not there is a target error', async () => {
      const target = await fixture.fresh();
      const e = await failure(target.open('nothere'));
      expect(e.kind).toBe('target');
    });

    it('refuses an id that could leave its place on the target', async () => {
      const target = await fixture.fresh();
      for (const bad of ['../b1', '.hidden', 'a/b', '']) {
        const e = await failure(target.open(bad));
        expect(e.kind).toBe('usage');
      }
    });

    describe('metadata that comes back changed is not trusted: the backup is not listed, or listing refuses', () => {
      it.each(TAMPERED)('%s', async (_what, change) => {
        const target = await fixture.fresh();
        const data = await backUp(target, 'b1');
        const others: [string, Buffer][] = fixture.holdsOne ? [] : [['b2', await backUp(target, 'b2')]];
        await fixture.tamper(target, 'b1', change);
        const listed = await target.list().then(
          (backups) => backups,
          (e: unknown) => e,
        );
        if (listed instanceof UserError) {
          expect(listed.kind).toBe('target');
          expect(listed.message).toMatch(/trusted|cannot be read/);
        } else {
          expect(listed, 'list() failed with something else than a UserError').toBeInstanceOf(Array);
          const ids = (listed as { id: string; metadata: BackupMetadata }[]).map((b) => b.id);
          expect(ids).not.toContain('b1');
          expect(ids).toEqual(others.map(([id]) => id));
        }
        for (const [id, bytes] of others) await expectIntact(target, id, bytes);
        expect(data.length).toBeGreaterThan(0);
      });
    });
  });
}
