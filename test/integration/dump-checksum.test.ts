// The file target's checksum is taken while xfsdump writes (tee hands a copy
// to openssl; no byte passes through Node), so the read-back is compared with
// what was written, not only with itself. Real XFS on loop devices, real
// xfsdump, the real actors.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dumpHome } from '../../actors/xfsdump.js';
import { verifyStream } from '../../actors/verify.js';
import type { DumpResult } from '../../machines/types.js';
import { FileTarget } from '../../src/targets/file.js';
import { populateRichTree } from '../support/rich-tree.js';
import { createSandbox, destroyAll, type Sandbox } from '../support/sandbox.js';

const TIMEOUT = 120_000;

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

interface Fixture {
  sandbox: Sandbox;
  target: FileTarget;
  dump: DumpResult;
  file: string;
}

let pending: Promise<Fixture> | undefined;
function fixture(): Promise<Fixture> {
  pending ??= (async () => {
    const sandbox = await createSandbox();
    await populateRichTree(sandbox.home.mountPoint);
    const dir = join(sandbox.dir, 'target');
    await mkdir(dir);
    const target = new FileTarget({ type: 'file', path: dir, require_mount: false, retention: { keep: 3 } });
    const dump = await dumpHome({ home: sandbox.home.mountPoint, id: 'h-1', sessionLabel: 's', mediaLabel: 'm', target });
    return { sandbox, target, dump, file: join(dir, '.incoming', 'h-1', 'home.xfsdump') };
  })();
  return pending;
}

afterAll(async () => {
  await (await pending?.catch(() => undefined))?.sandbox.cleanup();
  await destroyAll();
});

describe('the dump to a local file target', () => {
  it(
    "records the checksum of the file's bytes, computed independently afterwards",
    async () => {
      const { dump, file } = await fixture();
      expect(dump.bytes).toBe((await stat(file)).size);
      expect(dump.bytes).toBeGreaterThan(100_000);
      expect(dump.sha256).toBe(await sha256Of(file));
    },
    TIMEOUT,
  );

  it(
    'passes verification when the file is read back unchanged',
    async () => {
      const { dump, target } = await fixture();
      const verified = await verifyStream(() => target.openPending('h-1'), dump, target.description);
      expect(verified).toMatchObject({ bytes: dump.bytes, sha256: dump.sha256 });
      expect(verified.entries).toBeGreaterThan(10);
    },
    TIMEOUT,
  );

  it(
    'fails verification when a byte of the file changed between the write and the read-back',
    async () => {
      const { dump, target, file } = await fixture();
      // Flip a byte deep in the data, where xfsrestore -t alone would not look.
      const handle = await open(file, 'r+');
      const at = Math.floor(dump.bytes * 0.9);
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, at);
      await handle.write(Buffer.from([byte[0]! ^ 0xff]), 0, 1, at);
      await handle.close();
      await expect(verifyStream(() => target.openPending('h-1'), dump, target.description)).rejects.toThrow(
        /differs from what was written/,
      );
    },
    TIMEOUT,
  );
});
