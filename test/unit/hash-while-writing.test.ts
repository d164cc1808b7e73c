// The dump file's checksum is taken by following the file while its writer fills it, up to a
// lag behind it. Each writer here writes in bursts with pauses, so the follower meets the end
// of what is written (or its lag) many times before the writer ends; the expected digest is
// sha256sum's, run afterwards.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hashWhileWritten } from '../../src/system/hash-while-writing.js';
import { startChain } from '../../src/system/run.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function emptyFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'syn3-hash-follow-'));
  dirs.push(dir);
  const file = join(dir, 'dump');
  await writeFile(file, '');
  return file;
}

const sha256sum = (file: string): string => execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the checksum taken while the dump file is written', () => {
  it('is the digest of every byte, when the writer pauses between bursts of odd sizes', async () => {
    const file = await emptyFile();
    const sizes = [1, 4 * 1024 * 1024 + 3, 0, 65_537, 9 * 1024 * 1024, 17];
    const writing = (async () => {
      for (const n of sizes) {
        await appendFile(file, randomBytes(n));
        await sleep(60);
      }
    })();
    const hashed = await hashWhileWritten(file, writing);
    expect(hashed.bytes).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(hashed.sha256).toBe(sha256sum(file));
  });

  it('reads the last burst, written just before the writer ended', async () => {
    const file = await emptyFile();
    const writing = (async () => {
      await sleep(50);
      await appendFile(file, randomBytes(3 * 1024 * 1024));
    })();
    const hashed = await hashWhileWritten(file, writing);
    expect(hashed.bytes).toBe(3 * 1024 * 1024);
    expect(hashed.sha256).toBe(sha256sum(file));
  });

  it('follows a real program writing to the file descriptor it was given, as xfsdump does', async () => {
    const file = await emptyFile();
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync(file, 'w');
    try {
      const writing = startChain([['bash', ['-c', 'for i in 1 2 3 4 5; do head -c 1500000 /dev/urandom; sleep 0.1; done']]], {
        output: fd,
      });
      const hashed = await hashWhileWritten(file, writing.done);
      expect(hashed.bytes).toBe(5 * 1_500_000);
      expect(hashed.sha256).toBe(sha256sum(file));
    } finally {
      closeSync(fd);
    }
  });

  it('stays the lag behind the writer, and hashes the rest once the writer has ended', async () => {
    const file = await emptyFile();
    const MiB = 1024 * 1024;
    const writing = (async () => {
      for (let i = 0; i < 10; i++) {
        await appendFile(file, randomBytes(MiB));
        await sleep(40);
      }
    })();
    const hashed = await hashWhileWritten(file, writing, { lagBytes: 4 * MiB });
    expect(hashed.bytes).toBe(10 * MiB);
    expect(hashed.sha256).toBe(sha256sum(file));
    // Never closer than the lag while it was written: at most 10 - 4 MiB were hashed by then.
    expect(hashed.hashedWhileWriting).toBeLessThanOrEqual(6 * MiB);
    expect(hashed.hashedWhileWriting).toBeGreaterThanOrEqual(4 * MiB);
  });

  it('with a lag larger than the file, hashes all of it after the writer ended, and the same digest', async () => {
    const file = await emptyFile();
    const writing = (async () => {
      await appendFile(file, randomBytes(2_000_000));
      await sleep(50);
      await appendFile(file, randomBytes(3_000_001));
    })();
    const hashed = await hashWhileWritten(file, writing, { lagBytes: 1024 * 1024 * 1024 });
    expect(hashed.hashedWhileWriting).toBe(0);
    expect(hashed.bytes).toBe(5_000_001);
    expect(hashed.sha256).toBe(sha256sum(file));
  });

  it('reports the bytes written about every 256 MiB, from the file, not from how far the hash is', async () => {
    const file = await emptyFile();
    const seen: number[] = [];
    const writing = (async () => {
      for (let i = 0; i < 3; i++) {
        await appendFile(file, Buffer.alloc(200 * 1024 * 1024));
        await sleep(60);
      }
    })();
    const hashed = await hashWhileWritten(file, writing, { lagBytes: 1024 * 1024 * 1024, onProgress: (n) => seen.push(n) });
    expect(hashed.hashedWhileWriting).toBe(0);
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen.every((n) => n >= 256 * 1024 * 1024 && n <= 600 * 1024 * 1024)).toBe(true);
  });

  it("rejects with the writer's own failure, without waiting for a file that stops growing", async () => {
    const file = await emptyFile();
    const writing = (async () => {
      await appendFile(file, randomBytes(1000));
      await sleep(50);
      throw new Error('xfsdump: the writer failed');
    })();
    const started = Date.now();
    await expect(hashWhileWritten(file, writing)).rejects.toThrow('xfsdump: the writer failed');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
