/**
 * FTP target throughput against a real vsftpd on 127.0.0.1: the same N bytes
 * of random data uploaded with basic-ftp's uploadFrom directly (bare: connect,
 * log in, upload) and through FtpTarget.write (connect, log in, change to the
 * directory, upload under the temporary name). Each round runs both back to
 * back (alternating which goes first); the figures are medians over the rounds,
 * the ratio the median of the rounds' program/bare ratios.
 * Up to 4 GiB the server's root is a tmpfs, so its disk does not decide the
 * figures. MBps is 10^6 bytes per second.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client } from 'basic-ftp';
import { FtpTarget } from '../src/targets/ftp.js';
import { ftpTargetSchema } from '../src/targets/ftp-config.js';
import { startFtpServer, type FtpServer } from '../test/support/servers/ftp.js';
import { median, randomSource } from './util.js';

const MiB = 1024 * 1024;

export interface FtpBenchOptions {
  /** Explicit FTPS for both sides (default: plain FTP). */
  tls?: boolean;
  rounds?: number;
  /** Told each round's time, e.g. "bare #1: 1.23 s". */
  say?: (line: string) => void;
}

async function bare(server: FtpServer, bytes: number): Promise<number> {
  const t0 = performance.now();
  const client = new Client(30_000);
  try {
    await client.access({
      host: server.host,
      port: server.port,
      user: server.user,
      password: server.password,
      secure: server.tls,
      ...(server.certFile ? { secureOptions: { ca: readFileSync(server.certFile) } } : {}),
    });
    await client.uploadFrom(randomSource(bytes), '/bench/bare.bin');
  } finally {
    client.close();
  }
  return performance.now() - t0;
}

async function program(target: FtpTarget, bytes: number, id: string): Promise<number> {
  const t0 = performance.now();
  await target.write(id, randomSource(bytes));
  return performance.now() - t0;
}

export async function benchTargetFtp(
  bytes: number,
  options: FtpBenchOptions = {},
): Promise<{ bareMBps: number; programMBps: number; ratio: number }> {
  // The server writes into RAM (a tmpfs holds one upload at a time) so its disk does not decide the figures.
  const tmpfsMiB = bytes <= 4096 * MiB ? Math.ceil(bytes / MiB) + 64 : undefined;
  const server = await startFtpServer({ tls: options.tls === true, ...(tmpfsMiB ? { tmpfsMiB } : {}) });
  try {
    const directory = server.makeDirectory('bench');
    const target = new FtpTarget(
      ftpTargetSchema.parse({
        type: 'ftp',
        host: server.host,
        port: server.port,
        user: server.user,
        password_file: server.passwordFile,
        directory,
        ...(server.tls ? { secure: true, ca_file: server.certFile } : { secure: false }),
      }),
    );
    const rounds = options.rounds ?? 5;
    const bareRates: number[] = [];
    const programRates: number[] = [];
    const ratios: number[] = [];
    for (let r = 0; r < rounds; r++) {
      // Alternate which goes first, so neither always meets a cold or a warm page cache.
      const order = r % 2 === 0 ? (['bare', 'program'] as const) : (['program', 'bare'] as const);
      const rate: Record<'bare' | 'program', number> = { bare: 0, program: 0 };
      for (const which of order) {
        const ms = which === 'bare' ? await bare(server, bytes) : await program(target, bytes, `bench-${r}`);
        rate[which] = bytes / 1e6 / (ms / 1000);
        options.say?.(`ftp${server.tls ? 's' : ''} ${which} #${r + 1}: ${(ms / 1000).toFixed(2)} s, ${rate[which].toFixed(0)} MB/s`);
        // Keep the server's tmpfs from filling up over the rounds.
        for (const f of ['bare.bin', `bench-${r}.xfsdump.partial`]) rmSync(join(server.root, 'bench', f), { force: true });
      }
      bareRates.push(rate.bare);
      programRates.push(rate.program);
      ratios.push(rate.program / rate.bare);
    }
    // Medians: one slow round (a busy neighbour) moves neither figure; the ratio compares
    // the two uploads of each round, which ran back to back under the same load.
    return { bareMBps: median(bareRates), programMBps: median(programRates), ratio: median(ratios) };
  } finally {
    await server.stop();
  }
}
