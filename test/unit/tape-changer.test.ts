/**
 * The tape library's pure parts: reading `mtx status` (a changer's reply is
 * not trusted) and the rotation that picks the tape a backup goes to, with its
 * one hard rule: never the only tape holding this host's newest good backup.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseMtxStatus } from '../../src/targets/tape/changer.js';
import { chooseTape, type RotationChoice, type RotationInput, type SlotHolds } from '../../src/targets/tape/rotation.js';

/** tgt's virtual library as the lane sets it up (real-servers.md): one drive, 4 slots at element address 100…, barcodes. */
const TGT_EMPTY_DRIVE = `  Storage Changer /dev/sch0:1 Drives, 4 Slots ( 0 Import/Export )
Data Transfer Element 0:Empty
      Storage Element 1:Full :VolumeTag=A0000001
      Storage Element 2:Full :VolumeTag=A0000002
      Storage Element 3:Full :VolumeTag=A0000003
      Storage Element 4:Empty
`;

const TGT_LOADED = `  Storage Changer /dev/sch0:1 Drives, 4 Slots ( 0 Import/Export )
Data Transfer Element 0:Full (Storage Element 2 Loaded):VolumeTag = A0000002
      Storage Element 1:Full :VolumeTag=A0000001
      Storage Element 2:Empty
      Storage Element 3:Full :VolumeTag=A0000003
      Storage Element 4:Empty
`;

/** mtx's usual output for a bigger library: two drives, a mail slot (counted among the slots), a tape whose home is unknown. */
const MTX_LIBRARY = `  Storage Changer /dev/sg4:2 Drives, 6 Slots ( 1 Import/Export )
Data Transfer Element 0:Full (Unknown Storage Element Loaded):VolumeTag = CLN001L1
Data Transfer Element 1:Empty
      Storage Element 1:Full :VolumeTag=000001L6
      Storage Element 2:Full :VolumeTag=000002L6
      Storage Element 3:Empty
      Storage Element 4:Full :VolumeTag=000004L6                        :AlternateVolumeTag=ALT4
      Storage Element 5:Full
      Storage Element 6 IMPORT/EXPORT:Empty
`;

/** A library without a barcode reader. */
const NO_BARCODES = `  Storage Changer /dev/sch0:1 Drives, 2 Slots ( 0 Import/Export )
Data Transfer Element 0:Full (Storage Element 1 Loaded)
      Storage Element 1:Empty
      Storage Element 2:Full 
`;

describe('mtx status', () => {
  it("reads tgt's virtual library: the empty drive, full slots with their barcodes, an empty slot", () => {
    expect(parseMtxStatus(TGT_EMPTY_DRIVE)).toEqual({
      drives: [{ drive: 0, full: false }],
      slots: [
        { slot: 1, full: true, barcode: 'A0000001', importExport: false },
        { slot: 2, full: true, barcode: 'A0000002', importExport: false },
        { slot: 3, full: true, barcode: 'A0000003', importExport: false },
        { slot: 4, full: false, importExport: false },
      ],
    });
  });

  it('reads a loaded drive with the slot its tape came from and its barcode', () => {
    const s = parseMtxStatus(TGT_LOADED);
    expect(s.drives).toEqual([{ drive: 0, full: true, from: 2, barcode: 'A0000002' }]);
    expect(s.slots.find((x) => x.slot === 2)).toEqual({ slot: 2, full: false, importExport: false });
  });

  it('reads two drives, an unknown home, alternate tags, a tape without a barcode and an import/export slot', () => {
    const s = parseMtxStatus(MTX_LIBRARY);
    expect(s.drives).toEqual([
      { drive: 0, full: true, barcode: 'CLN001L1' },
      { drive: 1, full: false },
    ]);
    expect(s.slots.map((x) => [x.slot, x.full, x.barcode ?? null, x.importExport])).toEqual([
      [1, true, '000001L6', false],
      [2, true, '000002L6', false],
      [3, false, null, false],
      [4, true, '000004L6', false],
      [5, true, null, false],
      [6, false, null, true],
    ]);
  });

  it('reads a library without barcodes', () => {
    const s = parseMtxStatus(NO_BARCODES);
    expect(s.drives).toEqual([{ drive: 0, full: true, from: 1 }]);
    expect(s.slots).toEqual([
      { slot: 1, full: false, importExport: false },
      { slot: 2, full: true, importExport: false },
    ]);
  });

  it.each([
    ['an empty reply', '', /header/],
    ['a line mtx does not print', `${TGT_EMPTY_DRIVE}Storage Element 5:Maybe\n`, /line 7 .* is not what mtx status prints/],
    ['a slot listed twice', TGT_EMPTY_DRIVE.replace('Storage Element 4:Empty', 'Storage Element 3:Empty'), /slot 3 twice/],
    ['fewer slots than the header says', TGT_EMPTY_DRIVE.replace('      Storage Element 4:Empty\n', ''), /says 4 slot/],
    [
      'more drives than the header says',
      TGT_EMPTY_DRIVE.replace('Data Transfer Element 0:Empty', 'Data Transfer Element 0:Empty\nData Transfer Element 1:Empty'),
      /says 1 drive/,
    ],
    ['a barcode with a shell metacharacter', TGT_EMPTY_DRIVE.replace('A0000002', 'A0$(rm)'), /is not a barcode/],
    [
      'a drive loaded from a slot that is still full',
      TGT_LOADED.replace('Storage Element 2:Empty', 'Storage Element 2:Full :VolumeTag=X'),
      /listed as full/,
    ],
    [
      'a drive loaded from a slot that does not exist',
      TGT_LOADED.replace('Storage Element 2 Loaded', 'Storage Element 9 Loaded'),
      /slot 9, which is not listed/,
    ],
    ['slot 0', TGT_EMPTY_DRIVE.replace('Storage Element 4:Empty', 'Storage Element 0:Empty'), /start at 1/],
    [
      'a number that is not one',
      TGT_EMPTY_DRIVE.replace('Storage Element 4:Empty', 'Storage Element 4x:Empty'),
      /is not what mtx status prints/,
    ],
  ])('refuses %s', (_what, text, says) => {
    expect(() => parseMtxStatus(text)).toThrow(says);
  });
});

// ---- the rotation ----

const HOST = 'tapehost';

function committed(id: string, minute: number, host = HOST): SlotHolds {
  return { kind: 'committed', id, host, created: new Date(Date.UTC(2030, 0, 1, 0, minute)).toISOString() };
}

function input(holds: Record<number, SlotHolds>, more: Partial<RotationInput> = {}): RotationInput {
  return {
    slots: [1, 2, 3],
    holds: new Map(Object.entries(holds).map(([k, v]) => [Number(k), v])),
    host: HOST,
    keep: 2,
    overwrite: false,
    ...more,
  };
}

function slotOf(choice: RotationChoice): number | string {
  return 'slot' in choice ? choice.slot : choice.refused;
}

describe('rotation', () => {
  it('takes the next tape after the one written last that holds no backup inside retention', () => {
    const blank: SlotHolds = { kind: 'blank' };
    expect(slotOf(chooseTape(input({ 1: blank, 2: blank, 3: blank })))).toBe(1);
    expect(slotOf(chooseTape(input({ 1: committed('b1', 1), 2: blank, 3: blank }, { lastWritten: 1 })))).toBe(2);
    // b1 is past retention (keep 2: b2, b3 are kept): slot 1 comes round again.
    expect(slotOf(chooseTape(input({ 1: committed('b1', 1), 2: committed('b2', 2), 3: committed('b3', 3) }, { lastWritten: 3 })))).toBe(1);
    // After slot 1, slot 2 comes before slot 3 even though both are free.
    expect(
      slotOf(chooseTape(input({ 1: committed('b4', 4), 2: { kind: 'erased' }, 3: { kind: 'unfinished', id: 'x' } }, { lastWritten: 1 }))),
    ).toBe(2);
  });

  it('takes the oldest backup when every tape holds one inside retention (keep = slots)', () => {
    const holds = { 1: committed('b4', 4), 2: committed('b2', 2), 3: committed('b3', 3) };
    expect(slotOf(chooseTape(input(holds, { keep: 3, lastWritten: 1 })))).toBe(2);
  });

  it("skips empty slots, other hosts' backups and foreign tapes unless target.overwrite is on", () => {
    const holds = { 1: { kind: 'empty' } as SlotHolds, 2: committed('other', 2, 'elsewhere'), 3: { kind: 'foreign' } as SlotHolds };
    expect(slotOf(chooseTape(input(holds)))).toMatch(
      /no tape in target.slots may be written.*slot 1: empty.*elsewhere's backup other.*not a syn3-backup backup/,
    );
    expect(slotOf(chooseTape(input(holds, { overwrite: true })))).toBe(2);
  });

  it('refuses, saying why, when the only writable tape holds the newest backup', () => {
    const choice = chooseTape(input({ 1: committed('b1', 1), 2: { kind: 'foreign' }, 3: { kind: 'empty' } }, { keep: 1, lastWritten: 1 }));
    expect(slotOf(choice)).toMatch(/slot 1: the newest backup b1, the only copy/);
  });
});

/**
 * THE RULE: whatever the library holds and however it is configured, the
 * tape chosen is never the only one holding this host's newest good backup.
 * It is stated as a function of the rotation so it can be shown to catch a
 * broken one.
 */
function overwritesNewest(rotate: (i: RotationInput) => RotationChoice): Promise<RotationInput | undefined> {
  const holds = fc.oneof(
    fc.constant<SlotHolds>({ kind: 'empty' }),
    fc.constantFrom<SlotHolds>({ kind: 'blank' }, { kind: 'erased' }, { kind: 'foreign' }, { kind: 'unreadable' }),
    fc.record({ kind: fc.constant('unfinished' as const), id: fc.constantFrom('u1', 'u2') }),
    fc.record({
      kind: fc.constant('committed' as const),
      id: fc.constantFrom('b1', 'b2', 'b3', 'b4', 'b5'),
      host: fc.constantFrom(HOST, HOST, 'elsewhere'),
      created: fc.integer({ min: 0, max: 5 }).map((m) => new Date(Date.UTC(2030, 0, 1, 0, m)).toISOString()),
    }),
  );
  const library = fc
    .uniqueArray(fc.integer({ min: 1, max: 8 }), { minLength: 2, maxLength: 5 })
    .chain((slots) =>
      fc.record({
        slots: fc.constant(slots),
        holds: fc.array(holds, { minLength: slots.length, maxLength: slots.length }).map((h) => new Map(slots.map((s, i) => [s, h[i]!]))),
        host: fc.constant(HOST),
        keep: fc.integer({ min: 1, max: slots.length }),
        overwrite: fc.boolean(),
        lastWritten: fc.option(fc.constantFrom(...slots), { nil: undefined }),
      }),
    )
    .map((r) => {
      const { lastWritten, ...rest } = r;
      return lastWritten === undefined ? rest : { ...rest, lastWritten };
    });
  const breaks = (i: RotationInput) => {
    const choice = rotate(i);
    if (!('slot' in choice)) return false;
    const ours = [...i.holds].filter(([, h]) => h.kind === 'committed' && h.host === HOST) as Array<
      [number, Extract<SlotHolds, { kind: 'committed' }>]
    >;
    const newest = [...ours].sort((a, b) => b[1].created.localeCompare(a[1].created) || b[1].id.localeCompare(a[1].id))[0];
    if (!newest) return false;
    const copies = ours.filter(([, h]) => h.id === newest[1].id);
    return copies.length === 1 && copies[0]![0] === choice.slot;
  };
  try {
    fc.assert(
      fc.property(library, (i) => !breaks(i)),
      { numRuns: 2000, seed: 12 },
    );
    return Promise.resolve(undefined);
  } catch (e) {
    const found = (e as { counterexample?: [RotationInput] }).counterexample?.[0];
    return Promise.resolve(found ?? input({}));
  }
}

describe('the newest backup is never overwritten', () => {
  it('holds for the rotation on 2000 random libraries', async () => {
    expect(await overwritesNewest(chooseTape)).toBeUndefined();
  });

  it('is a rule that catches a broken rotation: one that takes the next tape holding anything of ours, newest or not', async () => {
    // Deliberately broken: round-robin over the slots with a tape, ignoring what it holds.
    const roundRobin = (i: RotationInput): RotationChoice => {
      const start = i.lastWritten === undefined ? -1 : i.slots.indexOf(i.lastWritten);
      const order = [...i.slots.slice(start + 1), ...i.slots.slice(0, start + 1)];
      const slot = order.find((s) => i.holds.get(s)?.kind !== 'empty');
      return slot === undefined ? { refused: 'no tape' } : { slot, why: 'next' };
    };
    const found = await overwritesNewest(roundRobin);
    expect(found, 'the rule finds a library where the broken rotation writes over the newest backup').toBeDefined();
    // And on that library the real rotation keeps the newest backup's tape.
    const choice = chooseTape(found!);
    expect(roundRobin(found!)).not.toEqual(choice);
  });
});
