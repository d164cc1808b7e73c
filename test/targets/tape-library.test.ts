/**
 * The tape target with a tape library, against STAND-INS: the drive's (a
 * regular file for the tape and an `mt` on PATH, ./standins/tape.ts) and the
 * changer's (an `mtx` on PATH keeping the slots in files,
 * ./standins/changer.ts). No library runs here; tgt's virtual one runs in the
 * VM lane (test/lane/tape-library.lane.test.ts).
 *
 * Covered: the rotation across backups (keep below and equal to the number of
 * slots), the newest backup's tape never written over, the catalogue (used
 * without loading tapes, rebuilt from the tapes' labels when missing or when
 * a barcode changed), a restore loading the tape that holds the chosen
 * backup, a rewind after every load, and the errors (an empty slot, a slot
 * the changer does not have, the changer missing, mtx missing, a reply that
 * is not mtx's).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Target } from '../../src/targets/target.js';
import { CATALOGUE_FILE } from '../../src/targets/tape/catalogue.js';
import { TapeLibraryTarget } from '../../src/targets/tape/library.js';
import { tapeTargetSchema } from '../../src/targets/tape-config.js';
import { type ChangerStandIn, createChangerStandIn } from '../support/standins/changer.js';
import { createTapeStandIn, type TapeStandIn } from '../support/standins/tape.js';
import { failure, KiB, metadataFor, readAll, sha256, streamOf } from '../support/target-helpers.js';

const HOST = 'tapehost';
let drive: TapeStandIn;
let changer: ChangerStandIn;
let state: string;
const data = new Map<string, Buffer>();

beforeEach(() => {
  drive = createTapeStandIn();
  changer = createChangerStandIn(drive, 4, [1, 2, 3]);
  state = mkdtempSync(join(tmpdir(), 'syn3-library-state-'));
});
afterEach(() => {
  drive.cleanup();
  rmSync(state, { recursive: true, force: true });
});

function library(
  options: { slots?: number[]; keep?: number; overwrite?: boolean; eject?: boolean; stateDir?: string; changerDevice?: string } = {},
): TapeLibraryTarget {
  const config = tapeTargetSchema.parse({
    type: 'tape',
    device: drive.device,
    block_size: '64KiB',
    changer: options.changerDevice ?? changer.device,
    slots: options.slots ?? [1, 2, 3],
    retention: { keep: options.keep ?? 2 },
    overwrite: options.overwrite ?? false,
    eject: options.eject ?? false,
  });
  return new TapeLibraryTarget(config as typeof config & { changer: string; slots: number[] }, {
    stateDir: options.stateDir ?? state,
    host: HOST,
    readyTimeoutMs: 0,
  });
}

/** A whole run as the backup's wiring makes it: check, write, read back, commit, retention. */
async function backUp(target: Target, id: string, keep: number): Promise<string[]> {
  const bytes = randomBytes(300 * KiB + id.length);
  data.set(id, bytes);
  await target.check();
  await target.write(id, streamOf(bytes));
  expect(sha256(await readAll(await target.openPending(id)))).toBe(sha256(bytes));
  await target.commit(id, metadataFor(id, bytes, { host: HOST }));
  const mine = (await target.list()).filter((b) => b.metadata.host === HOST);
  const old = mine.filter((b) => b.id !== id).slice(0, Math.max(0, mine.length - keep));
  for (const b of old) await target.remove(b.id);
  await target.cleanPending();
  return old.map((b) => b.id);
}

/** Which slot each listed backup is on, from its location. */
async function where(target: Target): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const b of await target.list()) out[b.id] = Number(/slot (\d+)/.exec(b.location)![1]);
  return out;
}

function loads(): string[] {
  return changer
    .calls()
    .filter((c) => c[0] === 'mtx-load')
    .map((c) => c[1]!);
}

describe('rotation', () => {
  it('keep 2 of 3 slots: each backup goes to the next free tape, retention frees the oldest, the fourth goes round to slot 1', async () => {
    const t = library({ keep: 2 });
    expect(await backUp(t, 'b1', 2)).toEqual([]);
    expect(await backUp(t, 'b2', 2)).toEqual([]);
    expect(await where(t)).toEqual({ b1: 1, b2: 2 });
    expect(await backUp(t, 'b3', 2)).toEqual(['b1']);
    expect(await where(t)).toEqual({ b2: 2, b3: 3 });
    expect(await backUp(t, 'b4', 2)).toEqual(['b2']);
    expect(await where(t)).toEqual({ b3: 3, b4: 1 });
    for (const id of ['b3', 'b4']) expect(sha256(await readAll(await t.open(id)))).toBe(sha256(data.get(id)!));
  });

  it('keep 3 of 3 slots: once all hold a backup the next one writes over the oldest, never the newest', async () => {
    const t = library({ keep: 3 });
    for (const id of ['b1', 'b2', 'b3']) await backUp(t, id, 3);
    expect(await where(t)).toEqual({ b1: 1, b2: 2, b3: 3 });
    await backUp(t, 'b4', 3);
    expect(await where(t)).toEqual({ b2: 2, b3: 3, b4: 1 });
    await backUp(t, 'b5', 3);
    expect(await where(t)).toEqual({ b3: 3, b4: 1, b5: 2 });
  });

  it('rewinds after every load before anything else touches the tape (the position is unknown after a changer load)', async () => {
    const t = library();
    await backUp(t, 'b1', 2);
    await backUp(t, 'b2', 2);
    await readAll(await t.open('b1'));
    const calls = changer.calls();
    const loadsAt = calls.flatMap((c, i) => (c[0] === 'mtx-load' ? [i] : []));
    expect(loadsAt.length).toBeGreaterThanOrEqual(3);
    for (const i of loadsAt) {
      const next = calls.slice(i + 1).find((c) => !c[0]!.startsWith('mtx-'));
      expect(next, `mt's first command after load ${calls[i]!.join(' ')}`).toEqual(['rewind']);
    }
  });

  it("never writes over the only tape holding the newest backup: with the other tapes foreign, the backup is refused and b1's tape is intact", async () => {
    const t = library({ slots: [1, 2], keep: 1 });
    await backUp(t, 'b1', 1);
    // Slot 2's tape gets data that is not ours (another program wrote it).
    drive.setState('ok');
    await library({ slots: [1, 2], keep: 1, overwrite: true }).check(); // loads slot 2 (the free one), blank
    expect(changer.loaded()).toBe(2);
    writeFileSync(drive.device, Buffer.alloc(64 * KiB, 7));
    const e = await failure(t.check());
    expect(e.paragraph()).toMatch(
      /no tape in target\.slots may be written.*slot 1: the newest backup b1, the only copy.*slot 2: data that is not a syn3-backup backup/,
    );
    expect(e.paragraph()).toMatch(/Put a blank tape into one of target\.slots/);
    expect(sha256(await readAll(await t.open('b1')))).toBe(sha256(data.get('b1')!));
  });

  it('writeFrom: the dump goes from its programs straight onto the chosen tape (no byte through this process), then verifies and commits', async () => {
    const t = library();
    await backUp(t, 'b1', 2);
    const bytes = randomBytes(200 * KiB + 3);
    const file = join(state, 'dump');
    writeFileSync(file, bytes);
    await t.check();
    expect(await t.writeFrom('b2', [['cat', [file]]])).toEqual({ bytes: bytes.length, sha256: sha256(bytes) });
    expect(sha256(await readAll(await t.openPending('b2')))).toBe(sha256(bytes));
    await t.commit('b2', metadataFor('b2', bytes, { host: HOST }));
    expect(await where(t)).toEqual({ b1: 1, b2: 2 });
  });

  it('skips an empty slot in the rotation', async () => {
    changer.takeOut(2);
    const t = library({ keep: 2 });
    await backUp(t, 'b1', 2);
    await backUp(t, 'b2', 2);
    expect(await where(t)).toEqual({ b1: 1, b2: 3 });
  });

  it('eject: the tape goes back into its slot after the commit, and list still shows it', async () => {
    const t = library({ eject: true });
    await backUp(t, 'b1', 2);
    expect(changer.loaded()).toBeUndefined();
    expect(Object.keys(await where(t))).toEqual(['b1']);
  });
});

describe('the catalogue', () => {
  it('lists from the catalogue without loading a tape', async () => {
    const t = library();
    await backUp(t, 'b1', 2);
    await backUp(t, 'b2', 2);
    drive.clearCalls();
    expect(await where(library())).toEqual({ b1: 1, b2: 2 });
    expect(loads()).toEqual([]);
  });

  it("is rebuilt from the tapes' labels when it is missing (a fresh installation), and written again", async () => {
    const t = library();
    await backUp(t, 'b1', 2);
    await backUp(t, 'b2', 2);
    const listed = await t.list();
    rmSync(join(state, CATALOGUE_FILE));
    drive.clearCalls();
    const fresh = library();
    expect(await fresh.list()).toEqual(listed);
    expect(loads().sort()).toEqual(['1', '3']); // slot 2's tape was in the drive already
    expect(existsSync(join(state, CATALOGUE_FILE))).toBe(true);
    drive.clearCalls();
    expect(await library().list()).toEqual(listed);
    expect(loads()).toEqual([]);
  });

  it('is rebuilt when it cannot be read, and a slot is read again when its barcode changed', async () => {
    const t = library();
    await backUp(t, 'b1', 2);
    writeFileSync(join(state, CATALOGUE_FILE), '{"format": 1, "changer": 5}');
    expect(Object.keys(await where(library()))).toEqual(['b1']);
    const catalogue = JSON.parse(readFileSync(join(state, CATALOGUE_FILE), 'utf8')) as { slots: Record<string, { barcode?: string }> };
    catalogue.slots['1']!.barcode = 'OTHER1L6';
    writeFileSync(join(state, CATALOGUE_FILE), JSON.stringify({ format: 1, changer: changer.device, ...catalogue }));
    drive.clearCalls();
    expect(Object.keys(await where(library()))).toEqual(['b1']);
    expect(loads()).toEqual(['1']);
  });

  it('a tape taken out of the library is no longer listed', async () => {
    const t = library();
    await backUp(t, 'b1', 2);
    await backUp(t, 'b2', 2);
    changer.takeOut(1);
    expect(await where(library())).toEqual({ b2: 2 });
  });
});

describe('restore', () => {
  it('open loads the tape that holds the chosen backup and reads it back', async () => {
    const t = library({ keep: 3 });
    for (const id of ['b1', 'b2', 'b3']) await backUp(t, id, 3);
    expect(changer.loaded()).toBe(3);
    drive.clearCalls();
    expect(sha256(await readAll(await t.open('b1')))).toBe(sha256(data.get('b1')!));
    expect(changer.loaded()).toBe(1);
    expect(changer.calls().filter((c) => c[0]!.startsWith('mtx-') && c[0] !== 'mtx-status')).toEqual([
      ['mtx-unload'],
      ['mtx-load', '1', '0'],
    ]);
  });

  it('on a fresh installation (no catalogue, no state at all) finds the tape by reading the labels', async () => {
    const t = library({ keep: 3 });
    for (const id of ['b1', 'b2']) await backUp(t, id, 3);
    const fresh = join(state, 'fresh-install');
    const target = library({ stateDir: fresh, keep: 3 });
    expect(sha256(await readAll(await target.open('b1')))).toBe(sha256(data.get('b1')!));
    expect(changer.loaded()).toBe(1);
  });

  it('a backup no tape holds: says so, naming the slots', async () => {
    const t = library();
    await backUp(t, 'b1', 2);
    await backUp(t, 'b2', 2);
    changer.takeOut(1);
    const e = await failure(library().open('b1'));
    expect(e.paragraph()).toMatch(
      /no tape in the library's slots 1, 2, 3 holds backup b1.*Put the tape that holds it into one of target\.slots/,
    );
  });
});

describe('errors', () => {
  it('a slot the changer does not have: names it and the slots there are', async () => {
    const e = await failure(library({ slots: [1, 7] }).check());
    expect(e.paragraph()).toMatch(/target\.slots names slot\(s\) 7, which the changer does not have \(it has slots 1, 2, 3, 4\)/);
  });

  it('the changer device missing: says to check target.changer', async () => {
    const e = await failure(library({ changerDevice: join(state, 'sch9') }).list());
    expect(e.paragraph()).toMatch(/sch9: the tape library's changer device does not exist.*target\.changer/);
  });

  it('mtx missing: says which package to install', async () => {
    rmSync(join(drive.bin, 'mtx'));
    const oldPath = process.env.PATH;
    process.env.PATH = `${drive.bin}:/nonexistent`;
    try {
      const e = await failure(library().list());
      expect(e.paragraph()).toMatch(/'mtx' was not found on PATH.*apt-get install mtx/);
    } finally {
      process.env.PATH = oldPath;
    }
  });

  it('a changer reply that is not mtx status: refused, saying which line', async () => {
    changer.replyOnce('  Storage Changer /dev/sch0:1 Drives, 4 Slots ( 0 Import/Export )\nData Transfer Element 0:Empty\nrm -rf /\n');
    const e = await failure(library().list());
    expect(e.paragraph()).toMatch(/the changer's status cannot be read: line 3 \("rm -rf \/"\) is not what mtx status prints/);
  });

  it('every tape slot empty: a backup is refused, nothing is loaded', async () => {
    for (const n of [1, 2, 3]) changer.takeOut(n);
    const e = await failure(library().check());
    expect(e.paragraph()).toMatch(/slot 1: empty; slot 2: empty; slot 3: empty/);
    expect(loads()).toEqual([]);
  });
});
