/**
 * The tape library on a REAL changer: tgt's virtual library (a changer LUN
 * with slots and barcodes, and a drive) in a lane guest, logged in over its
 * loopback with open-iscsi, so the guest kernel's ch driver gives /dev/sch0
 * and its st driver /dev/nst0 (tape-server.ts); the real CLI drives it with
 * mtx. Nothing here uses the stand-ins of test/targets/tape-library.test.ts.
 *
 * - tgt's `mtx status` passes the program's parser as it is.
 * - Three backups with slots [1, 2] and keep 2: the first two go to slots 1
 *   and 2 (rotation), the third to slot 1, the oldest; the tape in slot 2,
 *   holding the newest good backup, is not written (its image file in the
 *   guest is byte for byte the same before and after).
 * - The catalogue deleted, list gives the same backups on the same slots
 *   (read from the tapes' labels), and writes the catalogue again.
 * - With the catalogue deleted again (as on a fresh installation),
 *   `syn3-backup restore --from <the second backup>` loads slot 2's tape and
 *   /home comes back as it was at that backup.
 */
import { describe, expect, it } from 'vitest';
import { parseMtxStatus } from '../../src/targets/tape/changer.js';
import { type Guest, useGuest } from './guest.js';
import { startTapeServer, type TapeServer } from './tape-server.js';

const MINUTES = 60_000;
const ROOT = '/srv/lib';
const HOME = `${ROOT}/home`;
const STATE = '/var/lib/syn3-backup';
const CONFIG = '/etc/syn3-backup/config.yaml';
const CATALOGUE = `${STATE}/tape-catalogue.json`;

interface Listed {
  id: string;
  sha256: string;
  location: string;
}

describe('the tape library on a real changer (tgt virtual library in a lane guest)', () => {
  const guest = useGuest({
    name: 'tape-library',
    memoryMb: 3072,
    disks: [
      { serial: 'libroot', sizeMiB: 64 },
      { serial: 'libboot', sizeMiB: 32 },
      { serial: 'libhome', sizeMiB: 320 },
    ],
  });
  const g = (): Guest => guest();
  let tapes: TapeServer | undefined;
  const server = (): TapeServer => {
    if (!tapes) throw new Error('the tape library did not start (see the first test)');
    return tapes;
  };
  const sh = (script: string, timeoutMs = 3 * MINUTES) => g().ok(['bash', '-euo', 'pipefail', '-c', script], { timeoutMs });
  const cli = (args: string[]) => g().run(['syn3-backup', '--config', CONFIG, ...args], { timeoutMs: 15 * MINUTES });
  const mtx = async (...args: string[]) => (await g().ok(['mtx', '-f', server().changer!, ...args], { timeoutMs: 5 * MINUTES })).stdout;
  const slotOf = (b: Listed) => Number(/slot (\d+)/.exec(b.location)?.[1]);
  const imageSum = async (barcode: string) => (await sh(`sha256sum ${server().vtl}/${barcode} | cut -d' ' -f1`)).stdout.trim();
  async function listed(): Promise<Listed[]> {
    const r = await cli(['list', '--json']);
    expect(r.exitCode, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Listed[];
  }
  /** Each listed backup's slot, by id. */
  const onSlots = async () => Object.fromEntries((await listed()).map((b) => [b.id, slotOf(b)]));
  async function backUp(generation: number): Promise<Listed> {
    await sh(`echo "generation ${generation}" > ${HOME}/alice/generation && head -c 3M /dev/urandom > ${HOME}/bob/g${generation}.bin`);
    const t0 = Date.now();
    const r = await cli(['backup']);
    expect(r.exitCode, `${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`).toBe(0);
    const last = (await listed()).at(-1)!;
    console.info(`tape library: backup ${generation} (${last.id}) in ${((Date.now() - t0) / 1000).toFixed(0)} s to ${last.location}`);
    return last;
  }

  it("starts tgt's library (a drive, 4 slots, 3 tapes with barcodes); mtx status passes the parser; the new tapes are erased", {
    timeout: 8 * MINUTES,
  }, async () => {
    tapes = await startTapeServer(g(), {
      drives: [{ sizeMiB: 32 }],
      changer: { slots: 4, tapes: [1, 2, 3].map((slot) => ({ slot, barcode: `A000000${slot}`, sizeMiB: 96 })) },
    });
    expect(tapes.changer).toBe('/dev/sch0');
    const status = parseMtxStatus(await mtx('status'));
    console.info(`tape library: mtx status as parsed: ${JSON.stringify(status)}`);
    expect(status.slots.map((s) => [s.slot, s.full, s.barcode ?? null])).toEqual([
      [1, true, 'A0000001'],
      [2, true, 'A0000002'],
      [3, true, 'A0000003'],
      [4, false, null],
    ]);
    // A never-written tgt tape reads junk: each new tape is erased once, as an administrator erases new tapes.
    const nst = tapes.drives[0]!.nst;
    if (status.drives[0]?.full) await mtx('unload');
    for (const slot of [1, 2, 3]) {
      await mtx('load', String(slot), '0');
      await sh(`mt -f ${nst} rewind && mt -f ${nst} weof && mt -f ${nst} rewind`);
      await mtx('unload', String(slot), '0');
    }
    expect(parseMtxStatus(await mtx('status')).drives[0]?.full).toBe(false);
  });

  it('sets up a small server with a tape library configuration (slots 1 and 2, keep 2)', { timeout: 5 * MINUTES }, async () => {
    await sh(
      [
        `mkdir -p ${ROOT}`,
        `mkfs.ext4 -q ${g().disk('libroot')} && mount ${g().disk('libroot')} ${ROOT}`,
        `mkdir -p ${ROOT}/boot ${ROOT}/etc ${HOME}`,
        `mkfs.ext4 -q ${g().disk('libboot')} && mount ${g().disk('libboot')} ${ROOT}/boot`,
        `mkfs.xfs -q ${g().disk('libhome')} && mount ${g().disk('libhome')} ${HOME}`,
        `mkdir -p ${HOME}/alice ${HOME}/bob && echo hello > ${HOME}/alice/hello.txt && echo kernel > ${ROOT}/boot/vmlinuz`,
        `install -d -m 0700 /etc/syn3-backup /etc/syn3-backup/modules ${STATE}`,
      ].join(' && '),
    );
    const target = [
      'type: tape',
      `device: ${server().drives[0]!.nst}`,
      'block_size: 256KiB',
      `changer: ${server().changer}`,
      'slots: [1, 2]',
    ];
    const config = [
      'host: lane',
      'schedule: { every: 1d }',
      `paths: { root: ${ROOT}, boot: ${ROOT}/boot, home: ${HOME}, state: ${STATE}, modules: /etc/syn3-backup/modules }`,
      'target:',
      ...target.map((l) => `  ${l}`),
      '  retention: { keep: 2 }',
      'restore: { update_grub: false, update_initramfs: false }',
      '',
    ];
    await g().writeFile(CONFIG, config.join('\n'), 0o600);
    await g().ok(['syn3-backup', 'key', 'init', '--config', CONFIG], { timeoutMs: 5 * MINUTES });
    const check = await cli(['config', 'check']);
    expect(check.exitCode, check.stderr).toBe(0);
  });

  const made: Listed[] = [];

  it('backs up twice: the first backup goes to slot 1, the second to slot 2', { timeout: 30 * MINUTES }, async () => {
    made.push(await backUp(1), await backUp(2));
    expect(await onSlots()).toEqual({ [made[0]!.id]: 1, [made[1]!.id]: 2 });
  });

  it("a third backup goes to slot 1 (the oldest): slot 2's tape, holding the newest good backup, is not written", {
    timeout: 20 * MINUTES,
  }, async () => {
    const before = await imageSum('A0000002');
    made.push(await backUp(3));
    expect(await imageSum('A0000002')).toBe(before);
    expect(await onSlots()).toEqual({ [made[1]!.id]: 2, [made[2]!.id]: 1 });
  });

  it("lists the same backups with the catalogue deleted (read from the tapes' labels), and writes the catalogue again", {
    timeout: 10 * MINUTES,
  }, async () => {
    const withCatalogue = await listed();
    await g().ok(['rm', CATALOGUE]);
    const t0 = Date.now();
    expect(await listed()).toEqual(withCatalogue);
    console.info(`tape library: list without the catalogue (reading both tapes' labels) in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    expect((await g().run(['test', '-s', CATALOGUE])).exitCode).toBe(0);
  });

  it('restores the second backup with no catalogue (a fresh installation): slot 2 is loaded and /home is as it was then', {
    timeout: 20 * MINUTES,
  }, async () => {
    const second = made[1]!;
    await g().ok(['rm', CATALOGUE]);
    // The disaster: /home loses its files.
    await sh(`rm -rf ${HOME}/alice ${HOME}/bob`);
    const r = await cli(['restore', '--confirm', 'lane', '--from', second.id]);
    expect(r.exitCode, `${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`).toBe(0);
    expect((await sh(`cat ${HOME}/alice/generation`)).stdout.trim()).toBe('generation 2');
    expect((await sh(`ls ${HOME}/bob`)).stdout.trim().split('\n')).toEqual(['g1.bin', 'g2.bin']);
    const status = parseMtxStatus(await mtx('status'));
    expect(status.drives[0]).toMatchObject({ full: true, from: 2, barcode: 'A0000002' });
  });
});
