/**
 * The restore of /home from the SMB target on a fresh installation, against a
 * bare `smbclient get <dump> - | xfsrestore -F -J -B - <home>` of the same
 * backup from the same smbd, onto the same device freshly formatted, from a
 * cold page cache each (the share is on disk, so the server reads it cold too).
 *
 *  - fresh:        what the restore runs when /home holds only what an installer
 *                  puts there (src/system/fresh-home.ts): the restoreHome phase
 *                  alone, verifying the stream as it restores (goal <= 1.15 of bare);
 *  - verify first: a /home that holds data: the preflight's full read-back
 *                  (verifyStream), then the same restoreHome: the backup crosses
 *                  the network twice.
 * Rounds rotate which variant goes first; the best round of each counts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { verifyStream } from '../actors/verify.js';
import { restoreHome } from '../actors/xfsrestore.js';
import { SmbTarget } from '../src/targets/smb.js';
import { smbTargetSchema } from '../src/targets/smb-config.js';
import { createXfsVolume } from '../test/support/sandbox.js';
import { startSmbServer } from '../test/support/servers/smb.js';
import { type HomeShape, populateHome } from './data.js';
import { dropCaches, fmtBytes, fmtMs } from './util.js';

const ID = 'bench-fresh-restore';
const VARIANTS = ['bare', 'fresh', 'verifyFirst'] as const;
type Variant = (typeof VARIANTS)[number];

export interface FreshRestoreBench {
  dumpBytes: number;
  entries: number;
  runs: Record<Variant, number[]>;
  best: Record<Variant, number>;
  /** fresh / bare: the goal is <= 1.15. */
  ratio: number;
  /** verifyFirst / bare, for information: what a /home holding data costs. */
  verifyFirstRatio: number;
}

export async function benchFreshRestoreSmb(o: {
  homeMiB: number;
  shape: HomeShape;
  rounds?: number;
  say: (m: string) => void;
}): Promise<FreshRestoreBench> {
  const dir = mkdtempSync(join(tmpdir(), 'syn3-bench-smb-restore-'));
  const home = await createXfsVolume(dir, 'home', o.homeMiB);
  const server = await startSmbServer({ shares: [{ name: 'bench' }] });
  try {
    const stats = populateHome(home.mountPoint, o.shape, 13);
    o.say(`smb restore: home of ${stats.files} files, ${fmtBytes(stats.bytes)}; dumping it onto the share`);
    const dump = join(server.path('bench'), `${ID}.xfsdump`);
    must('xfsdump', ['-l0', '-L', 'bench', '-M', 'bench', '-f', dump, home.mountPoint]);
    const expected = { bytes: statSync(dump).size, sha256: await sha256(dump) };
    const target = new SmbTarget(
      smbTargetSchema.parse({ type: 'smb', share: server.unc('bench'), port: server.port, credentials_file: server.credentialsFile }),
    );
    const where = `${target.description}: backup ${ID}`;
    const bare = async () => {
      const get = spawn(
        'smbclient',
        [server.unc('bench'), '-p', String(server.port), '-A', server.credentialsFile, '-c', `get ${ID}.xfsdump -`],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      // smbclient's stdout is xfsrestore's stdin, as in a shell pipe: no Node in between.
      const restore = spawn('xfsrestore', ['-F', '-J', '-B', '-', home.mountPoint], { stdio: [get.stdout, 'ignore', 'pipe'] });
      let said = '';
      for (const c of [get, restore]) c.stderr?.setEncoding('utf8').on('data', (d: string) => (said += d));
      // 'exit', not 'close': smbclient's stdout, handed on to xfsrestore, is never read or ended here.
      const [g, r] = await Promise.all([exitOf(get, 'exit'), exitOf(restore)]);
      get.stdout?.destroy();
      if (g !== 0 || r !== 0) throw new Error(`bare smbclient get | xfsrestore failed (${g}, ${r}): ${said.trim()}`);
    };
    const run: Record<Variant, () => Promise<unknown>> = {
      bare,
      fresh: async () => restoreHome(await target.open(ID), home.mountPoint, expected, where),
      verifyFirst: async () => {
        await verifyStream(() => target.open(ID), expected, where);
        return restoreHome(await target.open(ID), home.mountPoint, expected, where);
      },
    };
    const runs: Record<Variant, number[]> = { bare: [], fresh: [], verifyFirst: [] };
    let entries = 0;
    for (let r = 0; r < (o.rounds ?? 2); r++) {
      for (let i = 0; i < VARIANTS.length; i++) {
        const v = VARIANTS[(i + r) % VARIANTS.length]!;
        await home.unmount();
        must('mkfs.xfs', ['-f', '-q', home.device]);
        await home.mount();
        dropCaches();
        const t0 = performance.now();
        await run[v]();
        const ms = performance.now() - t0;
        runs[v].push(ms);
        const n = countEntries(home.mountPoint);
        if (entries && n !== entries) throw new Error(`the ${v} restore brought back ${n} entries, an earlier one ${entries}`);
        entries = n;
        o.say(`smb restore ${v} #${r + 1}: ${fmtMs(ms)}, ${(expected.bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`);
      }
    }
    const best = { bare: Math.min(...runs.bare), fresh: Math.min(...runs.fresh), verifyFirst: Math.min(...runs.verifyFirst) };
    return {
      dumpBytes: expected.bytes,
      entries,
      runs,
      best,
      ratio: best.fresh / best.bare,
      verifyFirstRatio: best.verifyFirst / best.bare,
    };
  } catch (e) {
    o.say(`smb restore: failed: ${(e as Error).message}`);
    throw e;
  } finally {
    await server.stop();
    await home.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

function must(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
}

function exitOf(child: ReturnType<typeof spawn>, event: 'close' | 'exit' = 'close'): Promise<number | null> {
  return new Promise((resolve) => child.once(event, (code) => resolve(code)));
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function countEntries(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    n++;
    if (e.isDirectory()) n += countEntries(join(dir, e.name));
  }
  return n;
}
