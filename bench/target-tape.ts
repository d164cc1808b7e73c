/**
 * Tape target throughput against the STAND-IN tape (no tape drive runs here):
 * the same N bytes of random data, fed through a pipe as xfsdump's output is,
 * written to the regular file that stands in for the tape. Bare: what an
 * administrator would run, `xfsdump … - | dd of=/dev/nst0 bs=256k`, here
 * `cat data | dd bs=BLOCK iflag=fullblock conv=sync,fsync` (sync pads the last
 * block as a tape needs; fsync because the stand-in syncs each tape file when
 * it is closed). Program: `cat data` into TapeTarget.write (mt status and
 * rewinds through the mt stand-in, label, dump in whole blocks, end record).
 * Rounds alternate between the two so a noisy neighbour hurts both alike; the
 * best round of each counts. MBps is 10^6 bytes per second.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TapeTarget } from '../src/targets/tape/target.js';
import { DEFAULT_BLOCK_SIZE, tapeTargetSchema } from '../src/targets/tape-config.js';
import { createTapeStandIn } from '../test/support/standins/tape.js';

const MiB = 1024 * 1024;

export interface TapeBenchOptions {
  blockSize?: number;
  rounds?: number;
}

async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const fh = await open(file, 'w', 0o600);
  try {
    for (let done = 0; done < bytes; done += 16 * MiB) await fh.write(randomBytes(Math.min(16 * MiB, bytes - done)));
  } finally {
    await fh.close();
  }
}

export async function benchTargetTape(
  bytes: number,
  options: TapeBenchOptions = {},
): Promise<{ bareMBps: number; programMBps: number; ratio: number }> {
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  const standIn = createTapeStandIn();
  try {
    const data = join(standIn.dir, 'data');
    await writeRandomFile(data, bytes);
    const target = new TapeTarget(tapeTargetSchema.parse({ type: 'tape', device: standIn.device, block_size: blockSize, overwrite: true }));

    const bare = (): number => {
      const t0 = performance.now();
      const script = 'cat -- "$1" | dd of="$2" bs="$3" iflag=fullblock conv=sync,fsync status=none';
      const r = spawnSync('bash', ['-c', `set -o pipefail; ${script}`, 'bare', data, standIn.device, String(blockSize)], {
        encoding: 'utf8',
      });
      if (r.status !== 0) throw new Error(`cat | dd failed: ${r.stderr}`);
      return performance.now() - t0;
    };
    const program = async (id: string): Promise<number> => {
      const t0 = performance.now();
      const cat = spawn('cat', ['--', data], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise<number | null>((resolve) => cat.once('close', resolve));
      await target.write(id, cat.stdout);
      if ((await exited) !== 0) throw new Error('cat failed');
      return performance.now() - t0;
    };

    const rounds = options.rounds ?? 3;
    let bareMs = Infinity;
    let programMs = Infinity;
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? (['bare', 'program'] as const) : (['program', 'bare'] as const);
      for (const which of order) {
        standIn.loadBlankTape();
        if (which === 'bare') bareMs = Math.min(bareMs, bare());
        else programMs = Math.min(programMs, await program(`bench-${r}`));
      }
    }
    standIn.loadBlankTape();
    rmSync(data, { force: true });
    const bareMBps = bytes / 1e6 / (bareMs / 1000);
    const programMBps = bytes / 1e6 / (programMs / 1000);
    return { bareMBps, programMBps, ratio: programMBps / bareMBps };
  } finally {
    standIn.cleanup();
  }
}
