/**
 * The restore benchmark: the restoreHome phase of a real `syn3-backup restore
 * --confirm HOST` on a "new machine" (fresh root, boot and home volumes, the
 * home the size of the old one) against bare `xfsrestore -F -J -B -f FILE
 * <fresh XFS>` of the same dump, onto the same device freshly formatted, one
 * run each, cold cache for both. The program's preflight reads the whole dump
 * back before anything is formatted, so its restoreHome finds the dump in the
 * page cache: a second bare run, with the dump read once beforehand, gives
 * the comparison with the source equally warm.
 *
 * The caller must have unmounted the old home: the restore formats the new
 * home with the old one's UUID, and XFS refuses to mount a UUID twice.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { restoreHome, xfsrestoreArgs } from '../actors/xfsrestore.js';
import { FileTarget } from '../src/targets/file.js';
import type { StoredBackup } from '../src/targets/target.js';
import { createXfsVolume, type XfsVolume } from '../test/support/sandbox.js';
import { cpuSeconds, dropCaches, fmtMs, readLog, stepDurations, timeRun, timeShell } from './util.js';

export interface RestoreBenchInput {
  /** The CLI bundle copied at the start. */
  bin: string;
  host: string;
  /** The file target holding the backup (its mount point). */
  targetDir: string;
  modules: string;
  /** The public key the backup was signed with: the new machine trusts it, and has no signing key of its own. */
  publicKey: string;
  /** Size of the old home, which the new one gets too. */
  homeMiB: number;
  say: (m: string) => void;
}

export interface RestoreRun {
  ms: number;
  cpu: number;
  /** Entries under the restored home (find | wc -l), to see both restored the same. */
  entries: number;
}

export interface ProgramRestore {
  wallMs: number;
  cpu: number;
  steps: Record<string, number>;
  state: string;
  entries: number;
}

export interface RestoreDiagnosisRow {
  name: string;
  ms: number;
  bareMs: number;
  ratio: number;
  cpu: number;
  bareCpu: number;
}

export interface RestoreBench {
  backup: { id: string; size: number; file: string };
  bareCold: RestoreRun;
  bareWarm: RestoreRun;
  program: ProgramRestore;
  bareCommand: string[];
  diagnosis?: RestoreDiagnosisRow[];
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function countEntries(dir: string): number {
  const r = spawnSync('bash', ['-c', `find ${q(dir)} -mindepth 1 | wc -l`], { encoding: 'utf8' });
  return Number(String(r.stdout).trim());
}

/** Reads a file once so it sits in the page cache, as the program's preflight leaves the dump. */
function warm(file: string): void {
  timeShell(`cat ${q(file)} > /dev/null`);
}

interface NewMachine {
  dir: string;
  root: XfsVolume;
  boot: XfsVolume;
  home: XfsVolume;
  /** Unmounts home, formats it afresh (label newhome, a new UUID) and mounts it again. */
  fresh(): Promise<void>;
  destroy(): Promise<void>;
}

async function newMachine(homeMiB: number): Promise<NewMachine> {
  const dir = mkdtempSync(join(tmpdir(), 'syn3-bench-restore-'));
  const made: XfsVolume[] = [];
  const destroy = async () => {
    for (const v of [...made].reverse())
      await v.destroy().catch((e: unknown) => process.stderr.write(`[bench] restore cleanup: ${String(e)}\n`));
    // Only what is left unmounted goes: never a recursive rm through a mount.
    const below = String(spawnSync('findmnt', ['-n', '-r', '-o', 'TARGET'], { encoding: 'utf8' }).stdout ?? '')
      .split('\n')
      .filter((t) => t.startsWith(`${dir}/`));
    if (below.length) {
      process.stderr.write(`[bench] restore cleanup: left ${dir} in place, still mounted: ${below.join(' ')}\n`);
      return;
    }
    for (const name of readdirSync(dir)) spawnSync('rm', ['-rf', '--one-file-system', join(dir, name)]);
    try {
      rmdirSync(dir);
    } catch (e) {
      process.stderr.write(`[bench] restore cleanup: ${String(e)}\n`);
    }
  };
  try {
    const root = await createXfsVolume(dir, 'root', 300, { label: 'newroot' });
    made.push(root);
    const boot = await createXfsVolume(dir, 'boot', 300, { label: 'newboot' });
    made.push(boot);
    const home = await createXfsVolume(dir, 'home', homeMiB, { label: 'newhome' });
    made.push(home);
    mkdirSync(join(root.mountPoint, 'etc'));
    writeFileSync(join(root.mountPoint, 'etc/hostname'), 'fresh-install\n');
    const fresh = async () => {
      await home.unmount();
      timeRun('mkfs.xfs', ['-f', '-q', '-L', 'newhome', home.device]);
      await home.mount();
    };
    return { dir, root, boot, home, fresh, destroy };
  } catch (e) {
    await destroy();
    throw e;
  }
}

function bareRestore(file: string, home: string): RestoreRun {
  const args = xfsrestoreArgs(home, file);
  const cpu0 = cpuSeconds();
  const t = timeRun('xfsrestore', args);
  const cpu = cpuSeconds() - cpu0;
  if (!/Restore Status: SUCCESS/.test(t.stdout + t.stderr))
    throw new Error(`bare xfsrestore did not report success:\n${(t.stdout + t.stderr).slice(-2000)}`);
  return { ms: t.ms, cpu, entries: countEntries(home) };
}

function programRestore(m: NewMachine, i: RestoreBenchInput): ProgramRestore {
  const state = join(m.root.mountPoint, 'var/lib/syn3-backup');
  const config = join(m.dir, 'config.yaml');
  writeFileSync(
    config,
    [
      `host: ${i.host}`,
      'schedule:',
      '  every: 1d',
      'paths:',
      `  root: ${m.root.mountPoint}`,
      `  boot: ${m.boot.mountPoint}`,
      `  home: ${m.home.mountPoint}`,
      `  state: ${state}`,
      `  modules: ${i.modules}`,
      'target:',
      '  type: file',
      `  path: ${i.targetDir}`,
      '  retention:',
      '    keep: 1',
      'restore:',
      '  update_grub: false',
      '  update_initramfs: false',
      'trust:',
      `  signing_key: ${join(m.dir, 'no-signing.key')}`,
      '  public_keys:',
      `    - "${i.publicKey}"`,
      '',
    ].join('\n'),
  );
  dropCaches();
  const cpu0 = cpuSeconds();
  const r = timeRun(process.execPath, [i.bin, '--config', config, 'restore', '--confirm', i.host, '--json']);
  const cpu = cpuSeconds() - cpu0;
  const out = JSON.parse(r.stdout) as { state: string };
  if (out.state !== 'awaitingReboot') throw new Error(`the restore ended in ${out.state}, not awaitingReboot:\n${r.stdout}\n${r.stderr}`);
  const steps = stepDurations(readLog(join(state, 'syn3-backup.log')));
  if (steps.restoreHome === undefined) throw new Error('the restore log has no "restoreHome: started"/"restoreHome: done" pair');
  return { wallMs: r.ms, cpu, steps, state: out.state, entries: countEntries(m.home.mountPoint) };
}

function exitOf(child: ReturnType<typeof spawn>): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  return new Promise((resolve, reject) =>
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`xfsrestore exited with ${code}: ${stderr.slice(-500)}`)))),
  );
}

/**
 * The restoreHome phase taken apart, each variant right after a bare
 * `xfsrestore -f FILE`, both with the dump in the page cache (as the
 * program finds it after its preflight) and everything else cold.
 */
async function diagnoseRestore(
  m: NewMachine,
  backup: StoredBackup,
  target: FileTarget,
  say: (s: string) => void,
): Promise<RestoreDiagnosisRow[]> {
  const file = backup.location;
  const home = m.home.mountPoint;
  const toStdin = xfsrestoreArgs(home);
  const variants: Array<[string, () => Promise<void>]> = [
    [
      'shell pipe: cat FILE | xfsrestore - (the floor of any pipe)',
      async () => void timeShell(`cat ${q(file)} | xfsrestore ${toStdin.map(q).join(' ')} > /dev/null`),
    ],
    [
      'node pipe: createReadStream (64 KiB) -> stdin, no hash',
      async () => {
        const child = spawn('xfsrestore', toStdin, { stdio: ['pipe', 'pipe', 'pipe'] });
        child.stdout!.resume();
        const exited = exitOf(child);
        await pipeline(createReadStream(file), child.stdin!);
        await exited;
      },
    ],
    [
      "actor: restoreHome fed target.open() (64 KiB reads, sha256; the program's phase, no CLI)",
      async () =>
        void (await restoreHome(await target.open(backup.id), home, { bytes: backup.size, sha256: backup.metadata.sha256 }, 'bench')),
    ],
    [
      'actor with 1 MiB reads: restoreHome fed createReadStream(FILE, 1 MiB chunks)',
      async () =>
        void (await restoreHome(
          createReadStream(file, { highWaterMark: 1024 * 1024 }),
          home,
          { bytes: backup.size, sha256: backup.metadata.sha256 },
          'bench',
        )),
    ],
    [
      'sha256 of FILE alone in Node (1 MiB reads), no restore',
      async () => {
        const hash = createHash('sha256');
        for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
        if (hash.digest('hex') !== backup.metadata.sha256) throw new Error('the dump hashed differently');
      },
    ],
    [
      'possible fix: xfsrestore -f FILE, Node hashing FILE beside it',
      async () => {
        const child = spawn('xfsrestore', xfsrestoreArgs(home, file), { stdio: ['ignore', 'pipe', 'pipe'] });
        child.stdout!.resume();
        const exited = exitOf(child);
        const hash = createHash('sha256');
        for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
        await exited;
        if (hash.digest('hex') !== backup.metadata.sha256) throw new Error('the dump hashed differently');
      },
    ],
  ];
  const measure = async (body: () => Promise<void>): Promise<{ ms: number; cpu: number }> => {
    await m.fresh();
    dropCaches();
    warm(file);
    const cpu0 = cpuSeconds();
    const t0 = performance.now();
    await body();
    const ms = performance.now() - t0;
    const cpu = cpuSeconds() - cpu0;
    return { ms, cpu };
  };
  const rows: RestoreDiagnosisRow[] = [];
  for (const [name, body] of variants) {
    const bare = await measure(async () => void bareRestore(file, home));
    const v = await measure(body);
    rows.push({ name, ms: v.ms, bareMs: bare.ms, ratio: v.ms / bare.ms, cpu: v.cpu, bareCpu: bare.cpu });
    say(
      `restore diagnosis: ${name}: ${fmtMs(v.ms)} (${v.cpu.toFixed(2)} s CPU) against bare ${fmtMs(bare.ms)} (${bare.cpu.toFixed(2)} s CPU)`,
    );
  }
  return rows;
}

export async function benchRestore(i: RestoreBenchInput, diagnose: (r: RestoreBench) => boolean): Promise<RestoreBench> {
  const target = new FileTarget({ type: 'file', path: i.targetDir, require_mount: false, retention: { keep: 1 } });
  const backup = (await target.list()).filter((b) => b.metadata.host === i.host).at(-1);
  if (!backup) throw new Error(`no backup of ${i.host} on ${i.targetDir}`);
  const file = backup.location;
  i.say(`restore: new machine (root 300 MiB, boot 300 MiB, home ${i.homeMiB} MiB); backup ${backup.id}, ${file}`);
  const m = await newMachine(i.homeMiB);
  try {
    const bareCommand = ['xfsrestore', ...xfsrestoreArgs(m.home.mountPoint, file)];
    i.say(`restore: bare = ${bareCommand.join(' ')}`);

    await m.fresh();
    dropCaches();
    const bareCold = bareRestore(file, m.home.mountPoint);
    i.say(`restore: bare, cold: ${fmtMs(bareCold.ms)} (${bareCold.cpu.toFixed(2)} s CPU, ${bareCold.entries} entries)`);

    await m.fresh();
    writeFileSync(join(m.home.mountPoint, 'installer-notes.txt'), 'fresh install\n');
    const program = programRestore(m, i);
    i.say(
      `restore: program: restoreHome ${fmtMs(program.steps.restoreHome!)}; whole restore ${fmtMs(program.wallMs)} (${program.cpu.toFixed(2)} s CPU, ${program.entries} entries); steps ${Object.entries(
        program.steps,
      )
        .map(([k, v]) => `${k} ${fmtMs(v)}`)
        .join(', ')}`,
    );

    await m.fresh();
    dropCaches();
    warm(file);
    const bareWarm = bareRestore(file, m.home.mountPoint);
    i.say(`restore: bare, dump in the page cache: ${fmtMs(bareWarm.ms)} (${bareWarm.cpu.toFixed(2)} s CPU)`);

    const result: RestoreBench = { backup: { id: backup.id, size: backup.size, file }, bareCold, bareWarm, program, bareCommand };
    if (diagnose(result)) {
      i.say('restore goal missed (or --diagnose): taking the restoreHome phase apart');
      result.diagnosis = await diagnoseRestore(m, backup, target, i.say);
    }
    return result;
  } finally {
    spawnSync('sync');
    await m.destroy();
  }
}
