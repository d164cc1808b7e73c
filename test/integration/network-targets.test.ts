/**
 * A real backup and restore through each target that is not a local file: `syn3-backup
 * backup` streams xfsdump to the server, verifies it by reading it back and
 * publishes it; the restore's read path (the target's stream into
 * xfsrestore, as the restore's restoreHome phase does for a target that is
 * not a local file) brings /home back identical.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { restoreHome } from '../../actors/xfsrestore.js';
import { loadConfig } from '../../src/config/load.js';
import { createTarget } from '../../src/targets/index.js';
import { ensureSigningKey, listBackups, runCli, SANDBOX_HOST } from '../support/cli.js';
import { populateRichTree } from '../support/rich-tree.js';
import { createSandbox, createXfsVolume, destroyAll, type Sandbox } from '../support/sandbox.js';
import { SERVED_TYPES, startTargetServer, tapeStandInLines } from '../support/servers/targets.js';
import { createTapeStandIn } from '../support/standins/tape.js';
import { diffTrees, snapshotTree, XFSRESTORE_LOSSES } from '../support/tree-compare.js';

interface Server {
  /** The YAML lines of `target:` for this server. */
  target: string[];
  stop(): Promise<void>;
}

const SERVERS: Record<string, () => Promise<Server>> = {
  ...Object.fromEntries(
    SERVED_TYPES.map((type) => [
      type,
      async () => {
        const s = await startTargetServer(type);
        return { target: s.lines(), stop: () => s.stop() };
      },
    ]),
  ),
  // No tape drive or emulator runs here: a file stands in for the tape, and an mt stand-in on PATH.
  tape: async () => {
    const t = createTapeStandIn();
    return { target: tapeStandInLines(t), stop: async () => t.cleanup() };
  },
};

let sandbox: Sandbox | undefined;
const stops: Array<() => Promise<void>> = [];

afterAll(async () => {
  for (const stop of stops) await stop().catch(() => undefined);
  await sandbox?.cleanup();
  await destroyAll();
});

async function sandboxOnce(): Promise<Sandbox> {
  if (!sandbox) {
    sandbox = await createSandbox();
    await populateRichTree(join(sandbox.home.mountPoint, 'alice'));
    // paths.modules is written in the config: it must exist (a missing one is refused as a typo).
    await mkdir(join(sandbox.dir, 'modules'));
  }
  return sandbox;
}

for (const [type, start] of Object.entries(SERVERS)) {
  describe(`the ${type} target`, () => {
    let pending: Promise<{ config: string }> | undefined;
    // Built on first use, not in beforeAll, so a missing server fails the tests instead of skipping them.
    const backedUp = () =>
      (pending ??= (async () => {
        const sb = await sandboxOnce();
        const server = await start();
        stops.push(server.stop);
        const config = join(sb.dir, `${type}.yaml`);
        const signingKey = join(sb.dir, 'signing.key');
        ensureSigningKey(signingKey);
        const yaml = [
          `host: ${SANDBOX_HOST}`,
          'schedule:',
          '  every: 1d',
          'paths:',
          `  root: ${sb.root.mountPoint}`,
          `  boot: ${sb.boot.mountPoint}`,
          `  home: ${sb.home.mountPoint}`,
          `  state: ${join(sb.dir, `state-${type}`)}`,
          `  modules: ${join(sb.dir, 'modules')}`,
          'target:',
          ...server.target.map((l) => `  ${l}`),
          'trust:',
          `  signing_key: ${signingKey}`,
        ];
        await writeFile(config, `${yaml.join('\n')}\n`);
        const r = await runCli(config, ['backup']);
        if (r.exitCode !== 0) throw new Error(`backup to ${type} failed (exit ${r.exitCode}): ${r.stderr}`);
        return { config };
      })());

    it('takes a backup made, verified and published by syn3-backup backup', async () => {
      const { config } = await backedUp();
      const listed = await listBackups(config);
      expect(listed).toHaveLength(1);
      expect(listed[0]!.size).toBeGreaterThan(20 * 1024 * 1024);
    }, 300_000);

    it('gives it back to xfsrestore as the restore reads it, identical to /home', async () => {
      const { config } = await backedUp();
      const c = loadConfig(config);
      const target = await createTarget(c.target);
      const [b] = await target.list();
      const fresh = await createXfsVolume(sandbox!.dir, `restored-${type}`, 300);
      try {
        await restoreHome(
          await target.open(b!.id),
          fresh.mountPoint,
          { bytes: b!.size, sha256: b!.metadata.sha256 },
          target.description,
          b!.metadata.compression,
        );
        const exclude = ['.syn3systembackup', 'system'];
        const before = await snapshotTree(sandbox!.home.mountPoint, { exclude });
        const after = await snapshotTree(fresh.mountPoint, { exclude });
        expect(diffTrees(before, after, XFSRESTORE_LOSSES)).toEqual([]);
      } finally {
        await fresh.destroy();
      }
    }, 300_000);
  });
}
