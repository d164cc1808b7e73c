/**
 * Benchmark data: a home of well over 1 GiB (many small files and a few large
 * ones) and a system tree of a few thousand files, all incompressible. Written
 * from one random pool at varying offsets, so generating it costs little more
 * than the disk writes.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { populateBootTree, populateSystemTree } from '../test/support/rich-tree.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const POOL_SIZE = 64 * MiB;

/** A small deterministic generator (mulberry32), so every run has the same shapes. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

class Pool {
  readonly buf = randomBytes(POOL_SIZE);
  constructor(private readonly next: () => number) {}

  /** length bytes of incompressible data from a random place in the pool. */
  slice(length: number): Buffer {
    const off = this.next() % (POOL_SIZE - length);
    return this.buf.subarray(off, off + length);
  }

  int(min: number, max: number): number {
    return min + (this.next() % (max - min + 1));
  }
}

function writeLarge(pool: Pool, file: string, size: number): void {
  const fd = openSync(file, 'w', 0o644);
  try {
    const chunk = 8 * MiB;
    for (let done = 0; done < size; done += chunk) writeSync(fd, pool.slice(Math.min(chunk, size - done)));
  } finally {
    closeSync(fd);
  }
}

export interface TreeStats {
  files: number;
  bytes: number;
}

export interface HomeShape {
  users: number;
  projectsPerUser: number;
  dirsPerProject: number;
  filesPerDir: number;
  smallMinKiB: number;
  smallMaxKiB: number;
  largeMiB: number[];
}

export const DEFAULT_HOME: HomeShape = {
  users: 10,
  projectsPerUser: 20,
  dirsPerProject: 10,
  filesPerDir: 10, // 20,000 small files
  smallMinKiB: 1,
  smallMaxKiB: 16,
  largeMiB: [100, 150, 200, 250, 300],
};

/** <home>/userN/projM/dK/fJ.dat (small) and <home>/userN/media/big-I.bin (large). */
export function populateHome(home: string, shape: HomeShape = DEFAULT_HOME, seed = 7): TreeStats {
  const pool = new Pool(rng(seed));
  let files = 0;
  let bytes = 0;
  for (let u = 0; u < shape.users; u++) {
    for (let p = 0; p < shape.projectsPerUser; p++) {
      for (let d = 0; d < shape.dirsPerProject; d++) {
        const dir = join(home, `user${u}`, `proj${p}`, `d${d}`);
        mkdirSync(dir, { recursive: true });
        for (let f = 0; f < shape.filesPerDir; f++) {
          const size = pool.int(shape.smallMinKiB * KiB, shape.smallMaxKiB * KiB);
          writeFileSync(join(dir, `f${f}.dat`), pool.slice(size), { mode: 0o644 });
          files++;
          bytes += size;
        }
      }
    }
  }
  shape.largeMiB.forEach((mib, i) => {
    const dir = join(home, `user${i % shape.users}`, 'media');
    mkdirSync(dir, { recursive: true });
    writeLarge(pool, join(dir, `big-${i}.bin`), mib * MiB);
    files++;
    bytes += mib * MiB;
  });
  return { files, bytes };
}

/** The rich system tree of the tests, plus ~3,000 package files (~100 MiB) and four 25 MiB blobs. */
export async function populateRoot(root: string, seed = 11): Promise<TreeStats> {
  await populateSystemTree(root, seed);
  const pool = new Pool(rng(seed));
  let files = 0;
  let bytes = 0;
  for (let pkg = 0; pkg < 100; pkg++) {
    const dir = join(root, 'usr', 'lib', `pkg${pkg}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 30; f++) {
      const size = pool.int(2 * KiB, 64 * KiB);
      writeFileSync(join(dir, `lib${f}.so`), pool.slice(size), { mode: 0o644 });
      files++;
      bytes += size;
    }
  }
  const blobs = join(root, 'var', 'lib', 'blobs');
  mkdirSync(blobs, { recursive: true });
  for (let i = 0; i < 4; i++) {
    writeLarge(pool, join(blobs, `blob-${i}.bin`), 25 * MiB);
    files++;
    bytes += 25 * MiB;
  }
  return { files, bytes };
}

export async function populateBoot(boot: string): Promise<void> {
  await populateBootTree(boot, 3);
}
