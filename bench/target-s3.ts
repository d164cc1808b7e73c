/**
 * The s3 target against a bare S3 multipart upload: the same N bytes of
 * random data, streamed in 64 KiB chunks (as xfsdump's stdout pipe delivers
 * them), once with @aws-sdk/lib-storage's Upload straight from the SDK and
 * once through S3Target.write(), against a real Ceph RADOS Gateway on
 * 127.0.0.1 started for the occasion (or the run's shared one). Same part
 * size and queue size (the target's defaults) for both; alternating, the
 * median of `rounds` each: on a busy 2-core machine single runs of either
 * vary by +-25 %, since client, gateway and OSD share the CPUs.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { S3Target } from '../src/targets/s3.js';
import { s3TargetSchema } from '../src/targets/s3-config.js';
import { acquireS3Server, type S3Server } from '../test/support/servers/s3.js';

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;

export interface TargetBench {
  /** MB/s (10^6 bytes) of the median run of each. */
  bareMBps: number;
  programMBps: number;
  ratio: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** `bytes` of incompressible data as a stream of 64 KiB chunks, from a 16 MiB pool. */
function randomStream(bytes: number, pool: Buffer): Readable {
  let sent = 0;
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      if (sent >= bytes) return void this.push(null);
      const n = Math.min(CHUNK, bytes - sent);
      const off = (sent * 7) % (pool.length - CHUNK);
      sent += n;
      this.push(pool.subarray(off, off + n));
    },
  });
}

export interface TargetBenchOptions {
  /** Runs of each, alternating which goes first; the median counts (default 3). */
  rounds?: number;
  /** A running server to use (default: the process's shared one, started if need be). */
  server?: S3Server;
}

export async function benchTargetS3(bytes: number, options: TargetBenchOptions = {}): Promise<TargetBench> {
  const rounds = options.rounds ?? 3;
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { server, release } = options.server ? { server: options.server, release: async () => undefined } : await acquireS3Server();
  const dir = await mkdtemp(join(tmpdir(), 'syn3-bench-s3-'));
  const client = server.client();
  try {
    const bucket = await server.createBucket();
    const credentials = join(dir, 's3.cred');
    await server.writeCredentialsFile(credentials);
    const config = s3TargetSchema.parse({
      type: 's3',
      endpoint: server.endpoint,
      region: server.region,
      bucket,
      credentials_file: credentials,
    });
    const target = new S3Target(config);
    const pool = randomBytes(16 * MiB);

    const bare = async (key: string, size = bytes): Promise<number> => {
      const t0 = performance.now();
      await new Upload({
        client,
        params: { Bucket: bucket, Key: key, Body: randomStream(size, pool), ContentType: 'application/octet-stream' },
        partSize: config.part_size * MiB,
        queueSize: config.queue_size,
      }).done();
      return performance.now() - t0;
    };
    const program = async (id: string): Promise<number> => {
      const t0 = performance.now();
      await target.write(id, randomStream(bytes, pool));
      return performance.now() - t0;
    };
    const drop = (key: string) => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));

    // Warm-up: the bucket's index and the first connections.
    await bare('warmup', Math.min(bytes, 128 * MiB));
    await drop('warmup');
    const bareMs: number[] = [];
    const programMs: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // Alternating which goes first, so neither always follows the other's clean-up.
      const runBare = async () => {
        bareMs.push(await bare(`bare-${i}`));
        await drop(`bare-${i}`);
      };
      const runProgram = async () => {
        programMs.push(await program(`prog-${i}`));
        await target.remove(`prog-${i}`);
      };
      if (i % 2 === 0) {
        await runBare();
        await runProgram();
      } else {
        await runProgram();
        await runBare();
      }
    }
    await target.close();
    const bareMBps = bytes / 1e6 / (median(bareMs) / 1000);
    const programMBps = bytes / 1e6 / (median(programMs) / 1000);
    return { bareMBps, programMBps, ratio: programMBps / bareMBps };
  } finally {
    client.destroy();
    await rm(dir, { recursive: true, force: true });
    await release();
  }
}

// Run directly: node dist/bench/target-s3.js [MiB]
if (process.argv[1]?.endsWith('/bench/target-s3.js')) {
  const mib = Number(process.argv[2] ?? 512);
  benchTargetS3(mib * MiB).then(
    (r) => console.log(JSON.stringify({ MiB: mib, ...r })),
    (e: unknown) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
