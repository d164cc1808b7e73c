/**
 * compression: zstd puts zstd in the stream: the stored dump is zstd, its
 * metadata says so, verification and restore undo it, and plain
 * `zstd -d | xfsrestore` brings /home back identical.
 */
import { readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { listBackups, runCli, writeSandboxConfig } from '../support/cli.js';
import { populateRichTree } from '../support/rich-tree.js';
import { createSandbox, createXfsVolume, destroyAll, type Sandbox } from '../support/sandbox.js';
import { diffTrees, snapshotTree, XFSRESTORE_LOSSES } from '../support/tree-compare.js';

let sandbox: Sandbox | undefined;
let pending: Promise<{ config: string; compressedSize: number; plainSize: number }> | undefined;

// Built on first use, not in beforeAll, so a missing tool fails every test instead of skipping them.
function backedUp() {
  pending ??= (async () => {
    sandbox = await createSandbox();
    await populateRichTree(join(sandbox.home.mountPoint, 'alice'));
    // Text compresses: a typical home has plenty.
    await mkdir(join(sandbox.home.mountPoint, 'docs'));
    const text = Array.from({ length: 200_000 }, (_, i) => `line ${i}: the quick brown fox jumps over the lazy dog`).join('\n');
    await execa('sh', ['-c', 'cat > "$1"', 'sh', join(sandbox.home.mountPoint, 'docs/book.txt')], { input: text });
    const plainTarget = join(sandbox.dir, 'plain');
    const zstdTarget = join(sandbox.dir, 'zstd');
    await mkdir(plainTarget);
    await mkdir(zstdTarget);
    // paths.modules is written in the config: it must exist (a missing one is refused as a typo).
    await mkdir(join(sandbox.dir, 'modules'));
    const plain = await writeSandboxConfig(sandbox, {
      file: join(sandbox.dir, 'plain.yaml'),
      target: plainTarget,
      state: join(sandbox.dir, 'state-plain'),
    });
    const config = await writeSandboxConfig(sandbox, {
      file: join(sandbox.dir, 'zstd.yaml'),
      target: zstdTarget,
      state: join(sandbox.dir, 'state-zstd'),
      extra: 'compression: zstd\n',
    });
    for (const c of [plain, config]) {
      const r = await runCli(c, ['backup']);
      if (r.exitCode !== 0) throw new Error(`backup failed (exit ${r.exitCode}): ${r.stdout} ${r.stderr}`);
    }
    const [p] = await listBackups(plain);
    const [z] = await listBackups(config);
    return { config, compressedSize: z!.size, plainSize: p!.size };
  })();
  return pending;
}

afterAll(async () => {
  await sandbox?.cleanup();
  await destroyAll();
});

describe('compression: zstd', () => {
  it('stores a zstd stream, smaller than the plain dump', async () => {
    const { config, compressedSize, plainSize } = await backedUp();
    const [b] = await listBackups(config);
    const magic = (await readFile(b!.location)).subarray(0, 4);
    expect(magic).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
    // The rich tree holds 20 MiB of random bytes; the text around it is what shrinks.
    expect(compressedSize).toBeLessThan(plainSize * 0.8);
  }, 180_000);

  it('records the compression in the backup metadata', async () => {
    const { config } = await backedUp();
    const [b] = await listBackups(config);
    const meta = JSON.parse(await readFile(join(b!.location, '..', 'meta.json'), 'utf8')) as { compression: string };
    expect(meta.compression).toBe('zstd');
  }, 180_000);

  it('restores with plain zstd -d and xfsrestore to a tree identical to home', async () => {
    const { config } = await backedUp();
    const [b] = await listBackups(config);
    const fresh = await createXfsVolume(sandbox!.dir, 'restored', 300);
    await execa('sh', ['-c', 'zstd -q -d -c "$1" | xfsrestore -F -J -B - "$2"', 'sh', b!.location, fresh.mountPoint]);
    const exclude = ['.syn3systembackup', 'system'];
    const differences = diffTrees(
      await snapshotTree(sandbox!.home.mountPoint, { exclude }),
      await snapshotTree(fresh.mountPoint, { exclude }),
      XFSRESTORE_LOSSES,
    );
    expect(differences).toEqual([]);
    await fresh.destroy();
  }, 180_000);

  it('passes its verify step, which decompresses the stored stream into xfsrestore -t', async () => {
    const { config } = await backedUp();
    const status = await runCli(config, ['status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'idle', consecutiveFailures: 0 });
  }, 180_000);
});
