// The restore on a fresh installation (issue 12, item 6): when the new machine's /home holds
// only what an installer puts there (here: a first user with /etc/skel's files), the backup is
// not read back before /home is formatted, so it crosses the network once; the restore of /home
// verifies it as it goes. A real smbd behind a counting proxy measures what crossed. A /home
// holding data still gets the full read first (restore-targets.test.ts restores onto such a /home;
// here the same proxy counts it). A corrupted byte on the share fails the restore of /home with
// the reason, and resume, once the share is right again, finishes the restore.
import { cp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, SANDBOX_HOST } from '../support/cli.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { destroyAllDisks } from '../support/partitioned-disk.js';
import { installNewMachine, prepareOldServer, removeWork, restoreStatus, type OldMachine } from '../support/restore-machines.js';
import { allWell, expectOk, rebootAndFinish, restoredState, whatIsWrong } from '../support/restore-outcome.js';
import { destroyAll } from '../support/sandbox.js';
import { startSmbServer, type SmbServer } from '../support/servers/smb.js';

const TIMEOUT = 300_000;
const stops: Array<() => unknown> = [];
let work: string | undefined;

interface World {
  old: OldMachine;
  smb: SmbServer;
  proxy: FaultProxy;
}
let pending: Promise<World> | undefined;

// Built on first use, not in beforeAll, so a server that cannot start fails every test instead of skipping them.
function world(): Promise<World> {
  pending ??= (async () => {
    const server = await prepareOldServer();
    work = server.work;
    const smb = await startSmbServer({ shares: [{ name: 'backup' }] });
    stops.push(() => smb.stop());
    const proxy = await startFaultProxy({ upstreamPort: smb.port });
    stops.push(() => proxy.stop());
    const old = await server.backUp('smb', lines(smb, smb.port));
    await server.lose();
    return { old, smb, proxy };
  })();
  return pending;
}

afterAll(async () => {
  for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => undefined);
  await destroyAllDisks();
  await destroyAll();
  if (work) await removeWork({ work });
});

function lines(smb: SmbServer, port: number): string[] {
  return ['type: smb', `share: ${smb.unc('backup')}`, `port: ${port}`, `credentials_file: ${smb.credentialsFile}`];
}

/** What an installer leaves on /home: nothing but its first user's copy of /etc/skel. */
async function installersHome(home: string): Promise<void> {
  await rm(join(home, 'installer'), { recursive: true, force: true });
  await cp('/etc/skel', join(home, 'alice'), { recursive: true });
}

/** `restore --confirm`, which must succeed: what it said, and the bytes the server sent through the proxy meanwhile. */
async function restoreCounting(proxy: FaultProxy, config: string): Promise<{ said: string; bytes: number }> {
  const before = proxy.bytesDown;
  const r = await runCli(config, ['restore', '--confirm', SANDBOX_HOST]);
  expectOk('restore', r);
  return { said: r.stdout, bytes: proxy.bytesDown - before };
}

describe('the restore onto a fresh installation', () => {
  it(
    'reads the backup once, verifying it while /home is restored, says so, and ends as the old machine was',
    async () => {
      const { old, smb, proxy } = await world();
      const machine = await installNewMachine(old, 'fresh', { home: installersHome, targetLines: async () => lines(smb, proxy.port) });
      try {
        const { said, bytes } = await restoreCounting(proxy, machine.config);
        console.info(`fresh /home: ${bytes} bytes crossed for a ${old.backup.size}-byte backup`);
        expect(said).toMatch(/holds only what a fresh installation puts there \(alice \(as \/etc\/skel\)\)/);
        expect(said).toMatch(/verified while it is restored/);
        expect(bytes).toBeGreaterThanOrEqual(old.backup.size);
        expect(bytes).toBeLessThan(1.5 * old.backup.size);
        await rebootAndFinish(machine);
        expect(await whatIsWrong(old, await restoredState(machine))).toEqual(allWell(old));
      } finally {
        await machine.destroy();
      }
    },
    TIMEOUT,
  );

  it(
    'onto a /home holding data, reads it back in full before the format and again to restore: twice',
    async () => {
      const { old, smb, proxy } = await world();
      // installNewMachine's /home holds the installer's notes: data that is not /etc/skel's.
      const machine = await installNewMachine(old, 'data', { targetLines: async () => lines(smb, proxy.port) });
      try {
        const { said, bytes } = await restoreCounting(proxy, machine.config);
        console.info(`/home with data: ${bytes} bytes crossed for a ${old.backup.size}-byte backup`);
        expect(said).toMatch(/read back in full before anything is formatted/);
        expect(bytes).toBeGreaterThanOrEqual(2 * old.backup.size);
      } finally {
        await machine.destroy();
      }
    },
    TIMEOUT,
  );

  it(
    'fails the restore of /home on a corrupted byte, saying what differs and what to run; resume finishes once the share is right',
    async () => {
      const { old, smb } = await world();
      const machine = await installNewMachine(old, 'corrupt', { home: installersHome, targetLines: async () => lines(smb, smb.port) });
      const dump = join(smb.path('backup'), `${old.backup.id}.xfsdump`);
      const original = await readFile(dump);
      try {
        const at = Math.floor(original.length / 2);
        const f = await open(dump, 'r+');
        await f.write(Buffer.from([original[at]! ^ 0xff]), 0, 1, at);
        await f.close();
        const r = await runCli(machine.config, ['restore', '--confirm', SANDBOX_HOST]);
        expect(r.exitCode).not.toBe(0);
        expect(r.stderr).toMatch(
          /failed at restoreHome: smb target .*: the backup read from the target during the restore differs from what was recorded \(\d+ of \d+ bytes\)/,
        );
        expect(r.stderr).toMatch(/syn3-backup resume/);
        expect((await restoreStatus(machine.config))?.failedPhase).toBe('restoreHome');
        await writeFile(dump, original);
        expectOk('resume', await runCli(machine.config, ['resume']));
        await rebootAndFinish(machine);
        expect(await whatIsWrong(old, await restoredState(machine))).toEqual(allWell(old));
      } finally {
        await writeFile(dump, original);
        await machine.destroy();
      }
    },
    TIMEOUT,
  );
});
