/**
 * The tape target, end to end against STAND-INS: no tape drive or emulator
 * runs here (nor in CI). A regular file stands in for the tape (tape file n is
 * "<device>.n"), and an `mt` stand-in first on PATH records its calls and acts
 * out "no tape" and "write-protected" (test/support/standins/tape.ts).
 * The Target contract runs on a blank stand-in tape for each of its tests.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { BackupMetadata } from '../../src/targets/target.js';
import { parseMtStatus } from '../../src/targets/tape/drive.js';
import { TapeTarget } from '../../src/targets/tape/target.js';
import { tapeTargetSchema } from '../../src/targets/tape-config.js';
import { createTapeStandIn, type TapeStandIn } from '../support/standins/tape.js';
import { expectIntact, failure, KiB, MiB, metadataFor as anyMetadataFor, readAll, sha256, streamOf } from '../support/target-helpers.js';
import { describeTargetContract } from './contract.js';

const BLOCK = 64 * KiB;
/** Not a multiple of the block size: the last block is padded. */
const LENGTH = 5 * MiB + 12_345;

/** The backup on the tape "b1" kept on the shelf: written and committed once, loaded by the tests that need it. */
const B1 = randomBytes(LENGTH);
let shelf: string;
let standIn: TapeStandIn;

beforeAll(async () => {
  shelf = mkdtempSync(join(tmpdir(), 'syn3-tape-shelf-'));
  const master = createTapeStandIn();
  try {
    await backUp(tapeIn(master), 'b1', B1);
    master.saveTape(shelf);
  } finally {
    master.cleanup();
  }
});
afterAll(() => {
  rmSync(shelf, { recursive: true, force: true });
});
beforeEach(() => {
  standIn = createTapeStandIn();
});
afterEach(() => {
  standIn.cleanup();
});

function tapeIn(drive: TapeStandIn, options: Record<string, unknown> = {}): TapeTarget {
  return new TapeTarget(tapeTargetSchema.parse({ type: 'tape', device: drive.device, block_size: '64KiB', ...options }));
}

function tape(options: Record<string, unknown> = {}): TapeTarget {
  return tapeIn(standIn, options);
}

/** Puts the tape that holds backup b1 (of B1) in the drive. */
function loadB1(): void {
  standIn.loadTape(shelf);
}

/** The backups of these tests are all of tapehost, made at one time: the refusal to overwrite names both. */
function metadataFor(id: string, data: Buffer): BackupMetadata {
  return anyMetadataFor(id, data, { host: 'tapehost', created: '2025-01-02T03:04:05.000Z' });
}

async function backUp(target: TapeTarget, id: string, data: Buffer): Promise<void> {
  await target.write(id, streamOf(data));
  await target.commit(id, metadataFor(id, data));
}

describeTargetContract('tape', {
  holdsOne: true,
  fresh: async () => tape(),
  tamper: async (_target, _id, change) => {
    // Tape file 3, the commit record: JSON padded with NULs to whole blocks.
    const file = `${standIn.device}.3`;
    const bytes = readFileSync(file);
    const end = bytes.indexOf(0);
    const record = JSON.parse(bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8')) as { metadata: Record<string, unknown> };
    const json = Buffer.from(`${JSON.stringify({ ...record, metadata: change(record.metadata) })}\n`);
    const padded = Buffer.alloc(Math.ceil(json.length / BLOCK) * BLOCK);
    json.copy(padded);
    writeFileSync(file, padded);
  },
});

describe('tape target: writing and reading a dump', () => {
  it('writes the dump in whole blocks (the last one padded) and openPending reads back exactly the bytes written', async () => {
    const data = randomBytes(LENGTH);
    const target = tape();
    await target.write('b1', streamOf(data));
    const [label, dump, end] = standIn.tapeFiles();
    expect(label).toBe(BLOCK);
    expect(dump).toBe(Math.ceil(LENGTH / BLOCK) * BLOCK);
    expect(end).toBe(BLOCK);
    expect(sha256(await readAll(await target.openPending('b1')))).toBe(sha256(data));
  });

  it('asks the drive for its status before writing, rewinds, and writes label, dump and end record one after the other', async () => {
    await tape().write('b1', streamOf(randomBytes(300 * KiB)));
    expect(standIn.calls()).toEqual([
      ['status'],
      ['rewind'], // read the label: the tape is blank
      ['rewind'], // then tape files 0 (label), 1 (dump), 2 (end record), each closed by a file mark
    ]);
    expect(standIn.tapeFiles()).toEqual([BLOCK, 320 * KiB, BLOCK]);
  });

  it('makes the backup visible only on commit, with its metadata, and open reads it back', async () => {
    const data = randomBytes(LENGTH);
    const target = tape();
    await target.write('b1', streamOf(data));
    expect(await target.list()).toEqual([]);
    const stored = await target.commit('b1', metadataFor('b1', data));
    expect(stored).toMatchObject({ id: 'b1', size: LENGTH, location: `${standIn.device} (tape file 1)` });
    const listed = await target.list();
    expect(listed).toEqual([stored]);
    expect(listed[0]!.metadata).toEqual(metadataFor('b1', data));
    expect(sha256(await readAll(await target.open('b1')))).toBe(sha256(data));
    expect(standIn.tapeFiles()).toHaveLength(4);
  });

  it('commits by appending tape file 3, never rewriting the label (which would end the tape there)', async () => {
    const data = randomBytes(LENGTH);
    const target = tape();
    await target.write('b1', streamOf(data));
    standIn.clearCalls();
    await target.commit('b1', metadataFor('b1', data));
    expect(standIn.calls()).toEqual([
      ['status'],
      ['rewind'], // the label (tape file 0)
      ['asf', '2'], // the end record (tape file 2); no commit record after it yet
      ['asf', '3'], // append the commit record as tape file 3
      ['rewind'],
    ]);
  });

  it('reads a tape back with the block size it was written with, even after block_size was changed', async () => {
    loadB1();
    await expectIntact(tape({ block_size: '1MiB' }), 'b1', B1);
  });

  it('ejects the tape after the commit when eject is true, and still lists the ejected backup in that run', async () => {
    const data = randomBytes(LENGTH);
    const target = tape({ eject: true });
    await backUp(target, 'b1', data);
    expect(standIn.calls().at(-1)).toEqual(['eject']);
    expect((await target.list()).map((b) => b.id)).toEqual(['b1']);
    expect(await target.cleanPending()).toEqual([]);
    const e = await failure(tape().list());
    expect(e.paragraph()).toMatch(/no tape is loaded in the tape drive.*Load the tape/);
  });
});

describe('tape target: the drive refuses', () => {
  it('no tape loaded: a clear error and nothing written; the backup on the tape is intact once it is back', async () => {
    loadB1();
    standIn.setState('no-tape');
    const e = await failure(tape({ overwrite: true }).write('b2', streamOf(randomBytes(KiB))));
    expect(e.kind).toBe('target');
    expect(e.where).toBe(standIn.device);
    expect(e.paragraph()).toBe(
      `${standIn.device}: no tape is loaded in the tape drive. Load a tape (a blank one, or one whose backup may be overwritten) and run again; nothing was written.`,
    );
    expect((await failure(tape().check())).message).toMatch(/no tape is loaded/);
    expect((await failure(tape().list())).message).toMatch(/no tape is loaded/);
    expect(standIn.tapeFiles()).toHaveLength(4);
    standIn.setState('ok');
    await expectIntact(tape(), 'b1', B1);
  });

  it('a write-protected tape: a clear error and nothing written; the backup on it stays readable', async () => {
    loadB1();
    standIn.setState('write-protected');
    const before = standIn.tapeFiles();
    const e = await failure(tape({ overwrite: true }).write('b2', streamOf(randomBytes(KiB))));
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `${standIn.device}: the loaded tape is write-protected. Move the write-protect switch on the cartridge to "write", or load another tape, and run again; nothing was written.`,
    );
    expect((await failure(tape().check())).message).toMatch(/write-protected/);
    expect((await failure(tape().remove('b1'))).message).toMatch(/write-protected/);
    expect(standIn.tapeFiles()).toEqual(before);
    // Reading needs no write access: a write-protected tape restores.
    await expectIntact(tape(), 'b1', B1);
  });

  it('a missing tape device: a clear error that says where to look', async () => {
    const target = new TapeTarget(tapeTargetSchema.parse({ type: 'tape', device: join(standIn.dir, 'nst9') }));
    const e = await failure(target.check());
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toMatch(/nst9: the tape device does not exist\. Check target\.device .*st driver is loaded/);
    expect((await failure(target.write('b1', streamOf(randomBytes(KiB))))).message).toBe('the tape device does not exist');
  });

  it('refuses to write over a tape that holds a committed backup unless overwrite is true; the backup stays listed and intact', async () => {
    loadB1();
    const before = standIn.tapeFiles();
    for (const attempt of [() => tape().check(), () => tape().write('b2', streamOf(randomBytes(KiB)))]) {
      const e = await failure(attempt());
      expect(e.kind).toBe('target');
      expect(e.paragraph()).toMatch(
        /: the loaded tape holds backup b1 of tapehost \(made 2025-01-02T03:04:05\.000Z\), and target\.overwrite is false: writing would destroy it before a new backup is verified\. Load another tape \(rotate tapes.*mt -f .* weof.*target\.overwrite: true/,
      );
    }
    expect(standIn.tapeFiles()).toEqual(before);
    await expectIntact(tape(), 'b1', B1);
  });

  it('writes over a committed backup when overwrite is true', async () => {
    loadB1();
    const data = randomBytes(2 * MiB + 1);
    await tape({ overwrite: true }).check();
    await backUp(tape({ overwrite: true }), 'b2', data);
    await expectIntact(tape(), 'b2', data);
  });

  it('refuses a tape with data syn3-backup did not write, unless overwrite is true', async () => {
    writeFileSync(standIn.device, randomBytes(BLOCK));
    const e = await failure(tape().write('b1', streamOf(randomBytes(KiB))));
    expect(e.message).toBe('the loaded tape holds data that syn3-backup did not write, and target.overwrite is false');
    await tape({ overwrite: true }).write('b1', streamOf(randomBytes(KiB)));
  });

  it('writes a tape erased with "mt weof" at its start without asking', async () => {
    loadB1();
    for (const args of [['rewind'], ['weof']]) expect(spawnSync('mt', ['-f', standIn.device, ...args]).status).toBe(0);
    expect(await tape().list()).toEqual([]);
    const data = randomBytes(MiB);
    await backUp(tape(), 'b2', data);
    await expectIntact(tape(), 'b2', data);
  });

  it('open of a backup that is not on the loaded tape names what the tape holds', async () => {
    loadB1();
    const e = await failure(tape().open('b0'));
    expect(e.paragraph()).toMatch(/: backup b0 is not on the loaded tape \(it holds backup b1\)\. Load the tape that holds it/);
  });
});

describe('tape target: retention and leftovers', () => {
  it('remove erases the tape: nothing is listed, and the next backup needs no overwrite', async () => {
    loadB1();
    const target = tape();
    await target.remove('b1');
    expect(await target.list()).toEqual([]);
    expect(standIn.tapeFiles()).toEqual([BLOCK]);
    await target.remove('b1');
    const data = randomBytes(MiB);
    await backUp(target, 'b2', data);
    await expectIntact(target, 'b2', data);
  });

  it('cleanPending erases an unfinished write of an earlier run, but keeps the one it is told to keep', async () => {
    const target = tape();
    await target.write('b1', streamOf(randomBytes(MiB)));
    expect(await target.cleanPending('b1')).toEqual([]);
    expect(standIn.tapeFiles()).toHaveLength(3);
    expect(await target.cleanPending()).toEqual(['b1']);
    expect(standIn.tapeFiles()).toEqual([BLOCK]);
    expect(await target.cleanPending()).toEqual([]);
  });

  it('cleanPending leaves a committed backup alone', async () => {
    loadB1();
    expect(await tape().cleanPending()).toEqual([]);
    await expectIntact(tape(), 'b1', B1);
  });

  it('the dump stream breaks off mid-way: write fails with its error, nothing is listed, and the next run cleans up', async () => {
    const data = randomBytes(LENGTH);
    const broken = Readable.from(
      (async function* () {
        yield data.subarray(0, 2 * MiB + 7);
        throw new Error('xfsdump stopped');
      })(),
      { objectMode: false },
    );
    await expect(tape().write('b1', broken)).rejects.toThrow('xfsdump stopped');
    expect(await tape().list()).toEqual([]);
    expect((await failure(tape().openPending('b1'))).message).toBe(
      'backup b1 is not on the loaded tape (it holds an unfinished write of b1)',
    );
    expect(await tape().cleanPending()).toEqual(['b1']);
    await backUp(tape(), 'b2', data);
    await expectIntact(tape(), 'b2', data);
  });

  it('the tape is full: a clear error, nothing listed, and the next run can reuse the tape', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test mounts a small tmpfs as the "tape": run it as root');
    const small = mkdtempSync(join(tmpdir(), 'syn3-tape-full-'));
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m,mode=0700', 'tmpfs', small]).status).toBe(0);
    const full = createTapeStandIn({ deviceDir: small });
    try {
      const target = new TapeTarget(tapeTargetSchema.parse({ type: 'tape', device: full.device, block_size: '64KiB' }));
      const e = await failure(target.write('b1', streamOf(randomBytes(LENGTH))));
      expect(e.kind).toBe('target');
      expect(e.paragraph()).toMatch(
        /tape0: the tape is full: the dump did not fit on it \([\d.]+ MiB written\); what is on the tape is not a backup\. Use a tape with more capacity/,
      );
      expect(await target.list()).toEqual([]);
      expect(await target.cleanPending()).toEqual(['b1']);
      const data = randomBytes(MiB);
      await backUp(target, 'b2', data);
      expect(sha256(await readAll(await target.open('b2')))).toBe(sha256(data));
    } finally {
      full.cleanup();
      spawnSync('umount', [small]);
      rmSync(small, { recursive: true, force: true });
    }
  });
});

describe('tape target: reading the drive', () => {
  it("reads mt-st's status words: ONLINE, WR_PROT, DR_OPEN and EOD", () => {
    const status = (bits: string) =>
      parseMtStatus(
        `SCSI 2 tape drive:\nFile number=0, block number=0, partition=0.\nTape block size 0 bytes. Density code 0x58 (LTO-5).\nSoft error count since last status=0\nGeneral status bits on (41010000):\n${bits}\n`,
      );
    expect(status(' BOT ONLINE IM_REP_EN')).toEqual({ online: true, writeProtected: false, doorOpen: false, endOfData: false });
    expect(status(' BOT WR_PROT ONLINE IM_REP_EN')).toMatchObject({ online: true, writeProtected: true });
    expect(status(' DR_OPEN IM_REP_EN')).toMatchObject({ online: false, doorOpen: true });
    expect(status(' EOD ONLINE IM_REP_EN')).toMatchObject({ online: true, endOfData: true });
    // "ONLINE" in the density line or elsewhere above the status bits does not count.
    expect(parseMtStatus('Density code 0x0 (ONLINE?)\nGeneral status bits on (50000):\n DR_OPEN IM_REP_EN\n').online).toBe(false);
  });
});

describe('tape target configuration', () => {
  it('takes block_size in bytes or as a KiB/MiB string, defaulting to 256KiB', () => {
    const parse = (block_size?: unknown) => tapeTargetSchema.parse({ type: 'tape', ...(block_size === undefined ? {} : { block_size }) });
    expect(parse()).toEqual({
      type: 'tape',
      device: '/dev/nst0',
      block_size: 256 * KiB,
      eject: false,
      overwrite: false,
      retention: { keep: 1 },
    });
    expect(parse('64KiB').block_size).toBe(64 * KiB);
    expect(parse('1MiB').block_size).toBe(MiB);
    expect(parse('512k').block_size).toBe(512 * KiB);
    expect(parse(32768).block_size).toBe(32768);
    for (const bad of ['256 kB', '1GiB', 1000, 0, 'lots']) {
      expect(tapeTargetSchema.safeParse({ type: 'tape', block_size: bad }).error?.issues[0]?.message).toMatch(/must be a size such as/);
    }
  });

  it('keeps one backup per tape: retention.keep must be 1', () => {
    const r = tapeTargetSchema.safeParse({ type: 'tape', retention: { keep: 7 } });
    expect(r.error?.issues[0]?.message).toMatch(/a tape holds one backup, so keep must be 1/);
  });
});
