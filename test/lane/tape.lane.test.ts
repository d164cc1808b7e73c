/**
 * The tape target on the REAL SCSI tape driver: one lane guest runs tgt's
 * emulated tape drives, logged in over its loopback with open-iscsi, so the
 * guest kernel's st driver gives /dev/nst0 … (tape-server.ts). Nothing here
 * uses the stand-in tape (test/targets/tape.test.ts does, on the host).
 *
 * - The Target contract, whole, against drive 0: the suite runs here on the
 *   host and every call is carried out by a TapeTarget in the guest
 *   (tape-remote.ts, tape-runner.ts); each fresh target gets an erased tape.
 * - The real CLI against drive 1: backup (tee into dd, openssl, wc: no Node in
 *   the data path), its verification, list, and a restore of /home through
 *   `syn3-backup restore --confirm`.
 * - Faults, each with the administrator's error and nothing listed as a
 *   backup where it failed: no tape loaded (tgt's online=0), a write-protected
 *   tape (readonly=1), a tape that ends before the dump does (drive 2, a 4 MiB
 *   tape), a tape holding a published backup with overwrite: false.
 */
import { describe, expect, it } from 'vitest';
import { describeTargetContract } from '../targets/contract.js';
import { type Guest, useGuest } from './guest.js';
import { startTapeRunner, type TapeRunner } from './tape-remote.js';
import { startTapeServer, type TapeServer, tapeHostConfig } from './tape-server.js';

const MINUTES = 60_000;
const CONTRACT_BLOCK = 64 * 1024;
const ROOT = '/srv/root';
const HOME = `${ROOT}/home`;
const STATE = '/var/lib/syn3-backup';
const CONFIG = '/etc/syn3-backup/config.yaml';

interface Listed {
  id: string;
  size: number;
  sha256: string;
}

function tapeConfig(device: string, target: string[] = []): string {
  return tapeHostConfig({ host: 'lane', root: ROOT, home: HOME, device, blockSize: '256KiB', target });
}

describe('the tape target on the real st driver (tgt in a lane guest)', () => {
  const guest = useGuest({
    name: 'tape',
    memoryMb: 3072,
    disks: [
      { serial: 'sysroot', sizeMiB: 96 },
      { serial: 'sysboot', sizeMiB: 48 },
      { serial: 'home', sizeMiB: 512 },
      // The contract's streams cross on it (tape-remote.ts).
      { serial: 'xfer', sizeMiB: 32 },
    ],
  });
  const g = (): Guest => guest();
  let tapes: TapeServer | undefined;
  let runner: TapeRunner | undefined;
  const sh = (script: string, timeoutMs = 120_000) => g().ok(['bash', '-euo', 'pipefail', '-c', script], { timeoutMs });
  const cli = (args: string[], file = CONFIG, timeoutMs = 10 * MINUTES) =>
    g().run(['syn3-backup', '--config', file, ...args], { timeoutMs });
  const server = (): TapeServer => {
    if (!tapes) throw new Error('the tape server did not start (see the first test)');
    return tapes;
  };
  async function listed(file = CONFIG): Promise<Listed[]> {
    const r = await cli(['list', '--json'], file);
    expect(r.exitCode, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Listed[];
  }

  it('starts tgt with three drives, logs in with open-iscsi, and the st driver gives /dev/nst0-2', { timeout: 5 * MINUTES }, async () => {
    const t0 = Date.now();
    tapes = await startTapeServer(g(), { drives: [{ sizeMiB: 96 }, { sizeMiB: 256 }, { sizeMiB: 4 }] });
    runner = await startTapeRunner(g());
    console.info(`tape lane: tgt, iscsi login and the tape runner up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(tapes.drives.map((d) => d.nst).sort()).toEqual(['/dev/nst0', '/dev/nst1', '/dev/nst2']);
    // The kernel's st driver, not a stand-in: sysfs says which driver owns the device.
    expect((await sh(`readlink -f /sys/class/scsi_tape/${tapes.drives[0]!.nst.slice(5)}/device/driver`)).stdout.trim()).toMatch(/\/st$/);
    expect(await tapes.mt(0, ['status'])).toMatch(/BOT ONLINE/);
  });

  describeTargetContract('tape (real st driver, tgt in a lane guest)', {
    holdsOne: true,
    fresh: async () => {
      await server().erase(0);
      if (!runner) throw new Error('the tape runner did not start (see the first test)');
      return runner.target({ type: 'tape', device: server().drives[0]!.nst, block_size: CONTRACT_BLOCK });
    },
    tamper: async (_target, _id, change) => {
      // Tape file 3, the commit record, read and rewritten with dd on the real device.
      const nst = server().drives[0]!.nst;
      await sh(`mt -f ${nst} asf 3 && dd if=${nst} of=/run/record bs=${CONTRACT_BLOCK} count=1 status=none && mt -f ${nst} rewind`);
      const bytes = await g().readFile('/run/record');
      const end = bytes.indexOf(0);
      const record = JSON.parse(bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8')) as { metadata: Record<string, unknown> };
      await g().writeFile('/run/record', `${JSON.stringify({ ...record, metadata: change(record.metadata) })}\n`);
      await sh(`mt -f ${nst} asf 3 && dd if=/run/record of=${nst} bs=${CONTRACT_BLOCK} conv=sync status=none && mt -f ${nst} rewind`);
    },
  });

  it('sets up a small server: / and /boot ext4, /home XFS with 24 MiB in it, a tape configuration and a signing key', {
    timeout: 5 * MINUTES,
  }, async () => {
    await sh(
      [
        `mkfs.ext4 -q ${g().disk('sysroot')} && mkdir -p ${ROOT} && mount ${g().disk('sysroot')} ${ROOT}`,
        `mkdir -p ${ROOT}/boot ${HOME} ${ROOT}/etc && mkfs.ext4 -q ${g().disk('sysboot')} && mount ${g().disk('sysboot')} ${ROOT}/boot`,
        `mkfs.xfs -q -L home ${g().disk('home')} && mount ${g().disk('home')} ${HOME}`,
        `echo server > ${ROOT}/etc/hostname && echo kernel > ${ROOT}/boot/vmlinuz`,
        `mkdir -p ${HOME}/alice ${HOME}/bob && for i in $(seq 1 100); do echo "note $i" > ${HOME}/alice/n$i.txt; done`,
        `head -c 24M /dev/urandom > ${HOME}/bob/big.bin && setfattr -n user.colour -v blue ${HOME}/alice/n1.txt`,
        `install -d -m 0700 /etc/syn3-backup /etc/syn3-backup/modules ${STATE}`,
      ].join(' && '),
    );
    await g().writeFile(CONFIG, tapeConfig(server().drives[1]!.nst), 0o600);
    await g().ok(['syn3-backup', 'key', 'init', '--config', CONFIG], { timeoutMs: 5 * MINUTES });
    const check = await cli(['config', 'check']);
    expect(check.exitCode, check.stderr).toBe(0);
  });

  it('backs up /home to the tape with the real CLI: verified, published, listed, and the tape holds what the records say', {
    timeout: 10 * MINUTES,
  }, async () => {
    const r = await cli(['backup']);
    expect(r.exitCode, r.stderr).toBe(0);
    const [b, ...more] = await listed();
    expect(more).toEqual([]);
    expect(b!.size).toBeGreaterThan(24 * 2 ** 20);
    // Read back with plain mt and dd, not the program: tape file 1 holds the dump, padded to whole 256 KiB blocks.
    const dump = await tapeFile1(server().drives[1]!.nst);
    expect(dump.padded).toBe(Math.ceil(b!.size / 262_144) * 262_144);
    expect(await sha256OfDump(b!.size)).toBe(b!.sha256);
    // The dump is xfsdump's: plain xfsrestore gives the tree back.
    await sh(
      `rm -rf /tmp/plain && mkdir /tmp/plain && head -c ${b!.size} /tmp/tape-dump | xfsrestore -q - /tmp/plain >/dev/null && cmp /tmp/plain/bob/big.bin ${HOME}/bob/big.bin`,
    );
  });

  /** Tape file 1 read with plain mt and dd into /tmp/tape-dump (not through the program); its size in whole blocks. */
  async function tapeFile1(nst: string): Promise<{ padded: number }> {
    const r = await sh(
      `mt -f ${nst} asf 1 && dd if=${nst} of=/tmp/tape-dump bs=256K status=none && mt -f ${nst} rewind && stat -c %s /tmp/tape-dump`,
    );
    return { padded: Number(r.stdout.trim()) };
  }
  async function sha256OfDump(size: number): Promise<string> {
    return (await sh(`head -c ${size} /tmp/tape-dump | sha256sum | cut -d' ' -f1`)).stdout.trim();
  }

  /** The backup published on drive 1 is still listed, and tape file 1 still holds its dump (read with mt and dd). */
  async function expectIntact(b: Listed): Promise<void> {
    expect((await listed()).map((x) => x.id)).toEqual([b.id]);
    await tapeFile1(server().drives[1]!.nst);
    expect(await sha256OfDump(b.size)).toBe(b.sha256);
  }

  it('no tape loaded (tgt online=0): backup and list say so, nothing is written, and the backup is there once the tape is back', {
    timeout: 10 * MINUTES,
  }, async () => {
    const [b] = await listed();
    await server().setOnline(1, false);
    try {
      const r = await cli(['backup']);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(
        /\/dev\/nst\d: no tape is loaded in the tape drive\. Load a tape \(a blank one, or one whose backup may be overwritten\) and run again; nothing was written/,
      );
      const l = await cli(['list']);
      expect(l.exitCode).not.toBe(0);
      expect(l.stderr).toMatch(/no tape is loaded in the tape drive/);
    } finally {
      await server().setOnline(1, true);
    }
    await expectIntact(b!);
  });

  it('a write-protected tape (tgt readonly=1): the backup is refused, saying so; the backup is intact once the tape is writable again', {
    timeout: 10 * MINUTES,
  }, async () => {
    const [b] = await listed();
    await g().writeFile('/etc/syn3-backup/overwrite.yaml', tapeConfig(server().drives[1]!.nst, ['overwrite: true']), 0o600);
    await server().setReadonly(1, true);
    try {
      const r = await cli(['backup'], '/etc/syn3-backup/overwrite.yaml');
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(
        /the loaded tape is write-protected\. Move the write-protect switch on the cartridge to "write", or load another tape, and run again; nothing was written/,
      );
      // Not asked here: list on the protected tape. Under tgt's readonly=1 the spacing to tape file 2
      // (mt asf 2) failed with EIO in this spec's run, which a real drive does not do; see the README.
    } finally {
      await server().setReadonly(1, false);
    }
    await expectIntact(b!);
  });

  it('a tape holding a published backup with overwrite: false: refused before anything is written, the backup intact', {
    timeout: 10 * MINUTES,
  }, async () => {
    const [b] = await listed();
    const r = await cli(['backup']);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(
      new RegExp(
        `the loaded tape holds backup ${b!.id} of lane \\(made [^)]+\\), and target\\.overwrite is false: writing would destroy it before a new backup is verified`,
      ),
    );
    await expectIntact(b!);
  });

  it('a tape that ends before the dump does (4 MiB): the backup fails, saying the tape is full, and the tape lists no backup', {
    timeout: 10 * MINUTES,
  }, async () => {
    const small = '/etc/syn3-backup/small-tape.yaml';
    await g().writeFile(small, tapeConfig(server().drives[2]!.nst), 0o600);
    const r = await cli(['backup'], small);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(
      /the tape is full: the dump did not fit on it \([\d.]+ MiB written\); what is on the tape is not a backup\. Use a tape with more capacity/,
    );
    expect(await listed(small)).toEqual([]);
    // What dd got onto the tape before ENOSPC: the label, then part of the dump; no end record, no commit record.
    const nst = server().drives[2]!.nst;
    await sh(`mt -f ${nst} rewind && dd if=${nst} of=/tmp/label bs=256K count=1 status=none && mt -f ${nst} rewind`);
    expect((await g().readFile('/tmp/label')).toString('latin1')).toMatch(/^\{"magic":"syn3-backup tape","format":1,"kind":"label"/);
  });

  // Last: once restore --confirm has run, the machine waits for its reboot and refuses backups.
  it('restores /home from the tape through syn3-backup restore', { timeout: 10 * MINUTES }, async () => {
    const before = (await sh(`cd ${HOME} && find alice bob -type f -print0 | sort -z | xargs -0 sha256sum`)).stdout;
    // The disaster: /home loses its files.
    await sh(`rm -rf ${HOME}/alice ${HOME}/bob`);
    const r = await cli(['restore', '--confirm', 'lane']);
    console.info(`tape restore: exit ${r.exitCode}\n${r.stdout.slice(-1500)}\n${r.stderr.slice(-1500)}`);
    expect(r.exitCode, r.stderr).toBe(0);
    const after = (await sh(`cd ${HOME} && find alice bob -type f -print0 | sort -z | xargs -0 sha256sum`)).stdout;
    expect(after).toBe(before);
    expect((await sh(`getfattr --only-values -n user.colour ${HOME}/alice/n1.txt`)).stdout).toBe('blue');
  });
});
