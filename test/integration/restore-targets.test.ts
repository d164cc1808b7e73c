// The whole disaster recovery through every target that is not a local
// file (issue 12, item 1): one old sandbox machine is backed up through a
// real smbd, vsftpd and Ceph RGW on 127.0.0.1 and through the tape target
// on its STAND-IN (a file for the tape, an mt stand-in on PATH: the real st
// driver is the VM lane's), then lost. For each target a fresh new machine
// is restored with `restore --confirm HOST`, `resume --initrd`, `resume`, and
// must hold what the old machine held at that backup.
//
// Then the targets' faults, during the preflight and during the restore of
// /home, on a new machine whose /home holds data of its own: the connection
// dropped mid-stream (a proxy in front of the server cuts it after so many
// bytes), the server gone (killed, its port refusing), wrong credentials;
// for the tape, no tape in the drive and the tape coming out. Until the
// backup has been read back whole, /home keeps its data and its UUID; a
// failure after the format says in one paragraph what to do; once the fault
// is gone, `resume` finishes the restore.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { looksLikeStackTrace, runCli, SANDBOX_HOST, type CliResult } from '../support/cli.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { destroyAllDisks, probeFs } from '../support/partitioned-disk.js';
import {
  installNewMachine,
  prepareOldServer,
  removeWork,
  restoreStatus,
  type NewMachine,
  type OldMachine,
  type RestoreStatus,
} from '../support/restore-machines.js';
import { allWell, expectOk, rebootAndFinish, restoredState, whatIsWrong, type RestoredState } from '../support/restore-outcome.js';
import { destroyAll } from '../support/sandbox.js';
import { SERVED_TYPES, startTargetServer, tapeStandInLines, type ServedType, type TargetServer } from '../support/servers/targets.js';
import { createTapeStandIn, type TapeStandIn } from '../support/standins/tape.js';

const TIMEOUT = 300_000;
const TYPES = [...SERVED_TYPES, 'tape'] as const;
type TargetType = (typeof TYPES)[number];

/** Data of the new machine's own on its /home: a restore may destroy it only once the backup is proven. */
const PRECIOUS = 'alice/thesis.tex';
const PRECIOUS_TEXT = 'chapter 1, the only copy\n';

interface World {
  servers: Record<ServedType, TargetServer>;
  tape: TapeStandIn;
  /** The old machine as each target's backup has it. */
  olds: Record<TargetType, OldMachine>;
}

let work: string | undefined;
const stops: Array<() => unknown> = [];
let worldPending: Promise<World> | undefined;

// Built on first use, not in beforeAll, so a server that cannot start fails every test instead of skipping them.
function world(): Promise<World> {
  worldPending ??= (async () => {
    const [server, ...started] = await Promise.all([
      prepareOldServer(),
      ...SERVED_TYPES.map((type) =>
        startTargetServer(type).then((s) => {
          stops.push(() => s.stop());
          return s;
        }),
      ),
    ]);
    work = server.work;
    const servers = Object.fromEntries(started.map((s) => [s.type, s])) as Record<ServedType, TargetServer>;
    const olds: Partial<Record<TargetType, OldMachine>> = {};
    for (const s of started) olds[s.type] = await server.backUp(s.type, s.lines());
    const tape = createTapeStandIn();
    stops.push(() => tape.cleanup());
    olds.tape = await server.backUp('tape', tapeStandInLines(tape));
    await server.lose();
    return { servers, tape, olds: olds as Record<TargetType, OldMachine> };
  })();
  return worldPending;
}

afterAll(async () => {
  for (const stop of stops.reverse()) await Promise.resolve(stop()).catch(() => undefined);
  await destroyAllDisks();
  await destroyAll();
  if (work) await removeWork({ work });
});

/** Runs a restore's first command and the rest of it, recording what they said and what the machine ends as. */
async function restoreThrough(type: TargetType) {
  const old = (await world()).olds[type];
  const machine = await installNewMachine(old, `${type}-restore`);
  try {
    const restore = await runCli(machine.config, ['restore', '--confirm', SANDBOX_HOST]);
    expectOk('restore', restore);
    const stateAfterRestore = (await restoreStatus(machine.config))?.state;
    const firstBoot = await rebootAndFinish(machine);
    return { old, machine, restore, stateAfterRestore, firstBoot, end: await restoredState(machine) };
  } catch (error) {
    // Its volumes carry the old machine's UUIDs now: they must go before the next new machine mounts its own.
    await machine.destroy();
    throw error;
  }
}

for (const type of TYPES) {
  const name = type === 'tape' ? 'the tape target (on the STAND-IN tape and mt)' : `the ${type} target (a real server)`;
  describe(`restore onto a new machine through ${name}`, () => {
    let pending: ReturnType<typeof restoreThrough> | undefined;
    const restored = () => (pending ??= restoreThrough(type));
    afterAll(async () => (await pending?.catch(() => undefined))?.machine.destroy());

    it(
      'restore --confirm HOST asks for the reboot; resume --initrd and resume finish, saying from which backup',
      async () => {
        const { old, restore, stateAfterRestore, firstBoot } = await restored();
        expect(restore.stdout).toMatch(/reboot/i);
        expect(restore.stderr).toBe('');
        expect(stateAfterRestore).toBe('awaitingReboot');
        expect(firstBoot.stdout).toContain(`restored from backup ${old.backup.id}`);
      },
      TIMEOUT,
    );

    it(
      'ends as the old machine was at that backup: trees, labels and UUIDs, GRUB, module restore, markers, status',
      async () => {
        const { old, end } = await restored();
        expect(await whatIsWrong(old, end)).toEqual(allWell(old));
      },
      TIMEOUT,
    );
  });
}

// ---- faults ----

/** What a step of a fault chain saw: the command's output, the restore's status, and the new machine's /home. */
interface Seen {
  result: CliResult;
  status: RestoreStatus | null;
  home: HomeSeen;
  /** The proxy's cuts so far (network targets). */
  cuts: number;
}

interface HomeSeen {
  uuid: string | undefined;
  precious: string | undefined;
}

async function homeSeen(m: NewMachine): Promise<HomeSeen> {
  return {
    uuid: (await probeFs(m.home.device)).uuid,
    precious: await readFile(join(m.home.mountPoint, PRECIOUS), 'utf8').catch(() => undefined),
  };
}

async function writePrecious(home: string): Promise<void> {
  await mkdir(join(home, 'alice'));
  await writeFile(join(home, PRECIOUS), PRECIOUS_TEXT);
}

/** A fault: put in place before a command, taken away after it. */
interface Fault {
  before(): Promise<void>;
  after?(): Promise<void>;
}

interface Chain {
  old: OldMachine;
  machine: NewMachine;
  /** /home before anything ran. */
  fresh: HomeSeen;
  steps: Record<string, Seen>;
  /** After the last resume, which must exit 0. */
  back: Seen;
  end: RestoredState;
}

/** Runs the steps one after the other on one new machine, then the resume that must finish, and the rest of the restore. */
async function runChain(
  machine: NewMachine,
  old: OldMachine,
  plan: Array<[name: string, args: string[], fault: Fault]>,
  cuts: () => number,
  run: (args: string[]) => Promise<CliResult> = (args) => runCli(machine.config, args),
): Promise<Chain> {
  const see = async (result: CliResult): Promise<Seen> => ({
    result,
    status: await restoreStatus(machine.config),
    home: await homeSeen(machine),
    cuts: cuts(),
  });
  const fresh = await homeSeen(machine);
  const steps: Record<string, Seen> = {};
  for (const [name, args, fault] of plan) {
    await fault.before();
    const result = await run(args);
    await fault.after?.();
    steps[name] = await see(result);
  }
  const resumed = await runCli(machine.config, ['resume']);
  const back = await see(resumed);
  expectOk('resume once the faults are gone', resumed);
  await rebootAndFinish(machine);
  return { old, machine, fresh, steps, back, end: await restoredState(machine) };
}

const RESTORE = ['restore', '--confirm', SANDBOX_HOST];
const RESUME = ['resume'];

/** The faults of a network target, through a proxy in front of its server and a credentials file of the new machine's. */
async function networkChain(type: ServedType): Promise<Chain> {
  const { olds, servers } = await world();
  const old = olds[type];
  const server = servers[type];
  const proxy: FaultProxy = await startFaultProxy({ upstreamPort: server.port, ftp: type === 'ftp' });
  stops.push(() => proxy.stop());
  const credentials = { file: '' };
  const machine = await installNewMachine(old, `${type}-faults`, {
    home: writePrecious,
    // Beside the machine's directory, not in it: the machine removes only what it made.
    targetLines: async () => {
      credentials.file = join(old.work, `${type}-faults.credentials`);
      await server.writeCredentials(credentials.file);
      return server.lines({ port: proxy.port, credentials: credentials.file });
    },
  });
  const size = old.backup.size;
  /** Cut once the server has sent this share of the backup's size: the preflight reads it all once, the restore of /home once more. */
  const dropped = (share: number): Fault => ({
    before: async () => proxy.cutAfter(share * size),
    after: async () => proxy.cutAfter(Number.POSITIVE_INFINITY),
  });
  const gone: Fault = {
    before: async () => {
      await server.gone();
      await proxy.unplug();
    },
    after: async () => {
      await proxy.plugIn();
      await server.back();
    },
  };
  const wrongCredentials: Fault = {
    before: () => server.writeCredentials(credentials.file, { wrong: true }),
    after: () => server.writeCredentials(credentials.file),
  };
  const none: Fault = { before: async () => undefined };
  try {
    return await runChain(
      machine,
      old,
      [
        ['preflight: dropped mid-stream', RESTORE, dropped(0.5)],
        ['preflight: server gone', RESUME, gone],
        ['preflight: wrong credentials', RESUME, wrongCredentials],
        ['restoreHome: dropped mid-stream', RESUME, dropped(1.5)],
        ['restoreHome: server gone', RESUME, gone],
        ['restoreHome: wrong credentials', RESUME, wrongCredentials],
        ['abort after the format', ['abort'], none],
      ],
      () => proxy.cuts,
    );
  } catch (error) {
    await machine.destroy();
    throw error;
  }
}

/**
 * A PATH on which `mt` is the stand-in's, except that the tape comes out of
 * the drive (the stand-in's own eject) just before the nth call of `mt <call>`.
 */
async function tapeComesOut(tape: TapeStandIn, dir: string, call: string, nth: number): Promise<string> {
  const bin = join(dir, `tape-out-${call.replace(/\W/g, '-')}-${nth}`);
  await mkdir(bin);
  const count = join(bin, 'count');
  await writeFile(count, `${nth}\n`);
  const real = join(tape.bin, 'mt');
  await writeFile(
    join(bin, 'mt'),
    `#!/bin/sh
# A test's fault: the tape comes out just before the ${nth}th "mt ${call}".
if [ "$3 $4" = '${call}' ] || [ "$3" = '${call}' ]; then
  n=$(($(cat '${count}') - 1)); echo "$n" > '${count}'
  if [ "$n" -eq 0 ]; then '${real}' -f "$2" eject; fi
fi
exec '${real}' "$@"
`,
    { mode: 0o755 },
  );
  return `${bin}:${process.env.PATH}`;
}

/** The tape's faults: no tape in the drive, and the tape coming out as the dump is read (the dump is tape file 1: "asf 1"). */
async function tapeChain(): Promise<Chain> {
  const { olds, tape } = await world();
  const old = olds.tape;
  const machine = await installNewMachine(old, 'tape-faults', { home: writePrecious });
  const paths = new Map<string, string>();
  const noTape: Fault = {
    before: async () => tape.setState('no-tape'),
    after: async () => tape.setState('ok'),
  };
  /** The tape comes out as the nth read of the dump starts: the preflight's is the first, the restore of /home's the second. */
  const comesOut = (nth: number): Fault => ({
    before: async () => void paths.set('next', await tapeComesOut(tape, old.work, 'asf 1', nth)),
    after: async () => {
      paths.delete('next');
      tape.setState('ok');
    },
  });
  const run = (args: string[]) => runCli(machine.config, args, paths.has('next') ? { path: paths.get('next')! } : {});
  try {
    return await runChain(
      machine,
      old,
      [
        ['before the restore: no tape', RESTORE, noTape],
        ['preflight: the tape comes out', RESTORE, comesOut(1)],
        ['restoreHome: the tape comes out', RESUME, comesOut(2)],
        ['restoreHome: no tape', RESUME, noTape],
      ],
      () => 0,
      run,
    );
  } catch (error) {
    await machine.destroy();
    throw error;
  }
}

/** One paragraph on stderr: one line, no stack trace, no internal error. */
function expectOneParagraph(r: CliResult): void {
  expect(r.exitCode, r.stderr).not.toBe(0);
  expect(looksLikeStackTrace(r.stderr), r.stderr).toBe(false);
  expect(r.stderr).not.toMatch(/internal error/i);
  expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
}

/** What each fault must be called: by what happened, in the target's own words. */
const CAUSE: Record<string, RegExp> = {
  'dropped mid-stream': /the connection to the (SMB|FTP|S3) server was lost/,
  'server gone': /cannot reach|cannot be reached|ECONNREFUSED|CONNECTION_REFUSED/,
  'wrong credentials': /refused the (login|credentials)/,
  'the tape comes out': /no tape is loaded/,
  'no tape': /no tape is loaded/,
};

/** A restore that failed at `phase`: one paragraph naming the cause, that says to resume. Returns its stderr. */
function expectFailedAt(c: Chain, step: string, phase: 'preflight' | 'restoreHome'): string {
  const s = c.steps[step]!;
  expectOneParagraph(s.result);
  expect(s.result.exitCode, step).toBe(1);
  expect(s.status?.failedPhase, step).toBe(phase);
  expect(s.result.stderr, step).toMatch(CAUSE[step.slice(step.indexOf(': ') + 2)]!);
  // Nothing of what did not happen: no corrupted or different data, no partial upload.
  expect(s.result.stderr, step).not.toMatch(/corrupt|differs|partial upload/i);
  expect(s.result.stderr, step).toContain('syn3-backup resume');
  return s.result.stderr;
}

/** What every step before the format must leave: /home as the new machine had it, its data and UUID. */
function expectHomeUntouched(chain: Chain, step: string): void {
  expect(chain.steps[step]!.home, step).toEqual({ uuid: chain.fresh.uuid, precious: PRECIOUS_TEXT });
}

function describeFaults(
  type: TargetType,
  chain: () => Promise<Chain>,
  steps: { before?: string[]; preflight: string[]; restoreHome: string[] },
) {
  describe(`the ${type} target's faults during a restore onto a /home that holds data`, () => {
    let pending: Promise<Chain> | undefined;
    const ran = () => (pending ??= chain());
    afterAll(async () => (await pending?.catch(() => undefined))?.machine.destroy());

    if (steps.before) {
      it(
        'a fault before the restore begins refuses it in one paragraph that says what to do; no restore begins, /home is untouched',
        async () => {
          const c = await ran();
          for (const step of steps.before!) {
            const s = c.steps[step]!;
            expectOneParagraph(s.result);
            expect(s.status?.state ?? 'idle', step).toBe('idle');
            expect(s.result.stderr, step).toMatch(/no tape|load/i);
            expectHomeUntouched(c, step);
          }
        },
        TIMEOUT,
      );
    }

    it(
      'a fault in the preflight fails it with one paragraph that says nothing was destroyed and to resume or abort',
      async () => {
        const c = await ran();
        for (const step of steps.preflight) {
          const stderr = expectFailedAt(c, step, 'preflight');
          expect(stderr, step).toMatch(/nothing was destroyed/i);
          expect(stderr, step).toContain('syn3-backup abort');
        }
      },
      TIMEOUT,
    );

    it(
      'while the backup is not proven readable, /home keeps its data and its UUID',
      async () => {
        const c = await ran();
        // The guard below can tell: the fresh /home had its own UUID, not the one the restore gives it.
        expect(c.fresh.uuid).toBeDefined();
        expect(c.fresh.uuid).not.toBe(c.old.ids.home.uuid);
        for (const step of steps.preflight) expectHomeUntouched(c, step);
      },
      TIMEOUT,
    );

    it(
      'a fault while /home is restored fails after the format with one paragraph that says to fix it and resume, not abort',
      async () => {
        const c = await ran();
        for (const step of steps.restoreHome) {
          const stderr = expectFailedAt(c, step, 'restoreHome');
          expect(stderr, step).not.toMatch(/nothing was destroyed|syn3-backup abort/i);
          // The format had happened: the old UUID, the new machine's data gone (the same check that saw it kept above).
          expect(c.steps[step]!.home, step).toEqual({ uuid: c.old.ids.home.uuid, precious: undefined });
        }
      },
      TIMEOUT,
    );

    it(
      'once the fault is gone, resume finishes the restore, and the machine ends as the old one was at the backup',
      async () => {
        const c = await ran();
        expect(c.back.result.stdout).toMatch(/reboot/i);
        expect(c.back.status?.state).toBe('awaitingReboot');
        expect(await whatIsWrong(c.old, c.end)).toEqual(allWell(c.old));
      },
      TIMEOUT,
    );

    if (type !== 'tape') {
      it(
        'the connection really was cut, once in the preflight and once in the restore of /home',
        async () => {
          const c = await ran();
          expect(c.steps['preflight: dropped mid-stream']!.cuts).toBe(1);
          expect(c.steps['restoreHome: dropped mid-stream']!.cuts).toBe(2);
          expect(c.back.cuts).toBe(2);
        },
        TIMEOUT,
      );

      it(
        'abort after the format is refused, naming the phase and resume',
        async () => {
          const c = await ran();
          const abort = c.steps['abort after the format']!;
          expectOneParagraph(abort.result);
          expect(abort.result.stderr).toMatch(/cannot be aborted/);
          expect(abort.result.stderr).toContain('syn3-backup resume');
          expect(abort.status?.failedPhase).toBe('restoreHome');
        },
        TIMEOUT,
      );
    }
  });
}

for (const type of SERVED_TYPES) {
  describeFaults(type, () => networkChain(type), {
    preflight: ['preflight: dropped mid-stream', 'preflight: server gone', 'preflight: wrong credentials'],
    restoreHome: ['restoreHome: dropped mid-stream', 'restoreHome: server gone', 'restoreHome: wrong credentials'],
  });
}

describeFaults('tape', tapeChain, {
  before: ['before the restore: no tape'],
  preflight: ['preflight: the tape comes out'],
  restoreHome: ['restoreHome: the tape comes out', 'restoreHome: no tape'],
});
