/**
 * SMB target throughput against a real smbd on 127.0.0.1: the same N bytes of
 * random data uploaded by smbclient itself (bare: `smbclient //127.0.0.1/bench
 * -p PORT -A authfile -c 'put - bare.bin'` with the bytes on its stdin) and
 * through SmbTarget.write (the same smbclient, plus reading the credentials
 * file and creating .incoming, uploading under the temporary name). Rounds
 * alternate between the two so a noisy neighbour hurts both alike; the best
 * round of each counts. Up to 4 GiB the share is a tmpfs, so the disk does not
 * decide the figures. MBps is 10^6 bytes per second.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { SmbTarget } from '../src/targets/smb.js';
import { smbTargetSchema } from '../src/targets/smb-config.js';
import { startSmbServer, type SmbServer } from '../test/support/servers/smb.js';
import { randomSource } from './util.js';

const MiB = 1024 * 1024;

export interface SmbBenchOptions {
  rounds?: number;
  /** Told each round's time, e.g. "smb bare #1: 1.23 s, 330 MB/s". */
  say?: (line: string) => void;
}

async function bare(server: SmbServer, bytes: number): Promise<number> {
  const t0 = performance.now();
  const child = spawn('smbclient', [server.unc('bench'), '-p', String(server.port), '-A', server.credentialsFile, '-c', 'put - bare.bin'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  await pipeline(randomSource(bytes), child.stdin);
  const code = await exited;
  if (code !== 0) throw new Error(`bare smbclient put failed (${code}): ${stderr.trim()}`);
  return performance.now() - t0;
}

async function program(target: SmbTarget, bytes: number, id: string): Promise<number> {
  const t0 = performance.now();
  await target.write(id, randomSource(bytes));
  return performance.now() - t0;
}

export async function benchTargetSmb(
  bytes: number,
  options: SmbBenchOptions = {},
): Promise<{ bareMBps: number; programMBps: number; ratio: number }> {
  // The server writes into RAM (a tmpfs holds one upload at a time) so its disk does not decide the figures.
  const tmpfsMiB = bytes <= 4096 * MiB ? Math.ceil(bytes / MiB) + 64 : undefined;
  const server = await startSmbServer({ shares: [{ name: 'bench', ...(tmpfsMiB ? { tmpfsMiB } : {}) }] });
  try {
    const target = new SmbTarget(
      smbTargetSchema.parse({ type: 'smb', share: server.unc('bench'), port: server.port, credentials_file: server.credentialsFile }),
    );
    const share = server.path('bench');
    const rounds = options.rounds ?? 5;
    let bareMs = Infinity;
    let programMs = Infinity;
    for (let r = 0; r < rounds; r++) {
      // Alternate which goes first, so neither always meets a cold or a warm page cache.
      const order = r % 2 === 0 ? (['bare', 'program'] as const) : (['program', 'bare'] as const);
      for (const which of order) {
        const ms = which === 'bare' ? await bare(server, bytes) : await program(target, bytes, `bench-${r}`);
        if (which === 'bare') bareMs = Math.min(bareMs, ms);
        else programMs = Math.min(programMs, ms);
        options.say?.(`smb ${which} #${r + 1}: ${(ms / 1000).toFixed(2)} s, ${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`);
        // One upload at a time on the share.
        for (const f of ['bare.bin', join('.incoming', `bench-${r}.xfsdump`)]) rmSync(join(share, f), { force: true });
      }
    }
    const bareMBps = bytes / 1e6 / (bareMs / 1000);
    const programMBps = bytes / 1e6 / (programMs / 1000);
    return { bareMBps, programMBps, ratio: programMBps / bareMBps };
  } finally {
    await server.stop();
  }
}

// Run directly: node dist/bench/target-smb.js [MiB]
if (process.argv[1]?.endsWith('/bench/target-smb.js')) {
  const mib = Number(process.argv[2] ?? 512);
  benchTargetSmb(mib * MiB, { say: (line) => console.error(line) }).then(
    (r) => console.log(JSON.stringify({ MiB: mib, ...r })),
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
