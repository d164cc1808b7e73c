// `syn3-backup install --prefix <sandbox root>`: every file lands with its mode,
// a second run changes nothing, the configuration is never overwritten,
// --dry-run writes nothing, and the example database modules land where none
// of them runs. Runs the built CLI when it has the install command,
// otherwise installCommand in this process.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { INSTALL_PATHS } from '../../src/install.js';
import { installCommand, type InstallReport } from '../../src/cli/install.js';
import { EXAMPLE_CONFIG } from '../../src/cli/config.js';
import { isUserError } from '../../src/errors.js';
import { CLI, REPO_ROOT } from '../support/cli.js';

const CLI_HAS_INSTALL =
  existsSync(CLI) && spawnSync(process.execPath, [CLI, 'install', '--help'], { encoding: 'utf8' }).stdout.includes('--prefix');

interface Outcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Parses the few flags the tests use into installCommand's options. */
function optionsOf(args: string[]) {
  const o: { prefix?: string; dryRun?: boolean; json?: boolean; scheduler?: string } = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--prefix') o.prefix = args[++i];
    else if (a === '--dry-run') o.dryRun = true;
    else if (a === '--json') o.json = true;
    else if (a === '--scheduler') o.scheduler = args[++i];
    else throw new Error(`optionsOf: ${a}`);
  }
  return o;
}

async function inProcess(args: string[]): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const exitCode = await installCommand(optionsOf(args));
    return { exitCode, stdout, stderr };
  } catch (e) {
    if (isUserError(e)) return { exitCode: e.exitCode, stdout, stderr: `${stderr}syn3-backup: ${e.paragraph()}\n` };
    throw e;
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

async function install(args: string[]): Promise<Outcome> {
  if (!CLI_HAS_INSTALL) return inProcess(args);
  const r = await execa(process.execPath, [CLI, 'install', ...args], {
    stdin: 'ignore',
    reject: false,
    env: { SYN3_BACKUP_CONFIG: undefined },
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

async function installJson(prefix: string, ...args: string[]): Promise<InstallReport> {
  const r = await install(['--prefix', prefix, '--json', ...args]);
  expect(r.stderr.replace(/^syn3-backup: warning: .*does not exist yet.*\n/m, '')).toBe('');
  expect(r.exitCode).toBe(0);
  return JSON.parse(r.stdout) as InstallReport;
}

const boot = (name: string) => readFileSync(join(REPO_ROOT, 'boot', name), 'utf8');
const EXAMPLES = join(REPO_ROOT, 'examples', 'modules');
const exampleNames = readdirSync(EXAMPLES).sort();
const modeOf = (file: string) => lstatSync(file).mode & 0o7777;
const actions = (report: InstallReport) => Object.fromEntries(report.files.map((f) => [f.path, f.action]));

let prefix: string;
beforeEach(() => {
  prefix = mkdtempSync(join(tmpdir(), 'syn3-install-'));
});
afterEach(() => {
  rmSync(prefix, { recursive: true, force: true });
});

const at = (path: string) => join(prefix, path);

describe(`syn3-backup install --prefix (${CLI_HAS_INSTALL ? 'built CLI' : 'installCommand in process'})`, () => {
  it('creates every file with its mode and content, and enables the resume unit', async () => {
    const report = await installJson(prefix);
    expect(report.prefix).toBe(prefix);
    expect(report.scheduler).toBe('cron');
    expect(report.commands).toEqual([]); // no systemctl, no update-initramfs under a prefix
    const expected: Array<[string, number, string | undefined]> = [
      [INSTALL_PATHS.hook, 0o755, boot('initramfs-hook')],
      [INSTALL_PATHS.premount, 0o755, boot('initramfs-premount')],
      [INSTALL_PATHS.postRestore, 0o644, boot('post.restore')],
      [INSTALL_PATHS.resumeService, 0o644, boot('syn3-backup-resume.service')],
      [INSTALL_PATHS.tickService, 0o644, boot('syn3-backup.service')],
      [INSTALL_PATHS.tickTimer, 0o644, boot('syn3-backup.timer')],
      [INSTALL_PATHS.cron, 0o644, boot('cron')],
      [INSTALL_PATHS.wrapper, 0o755, undefined],
      [INSTALL_PATHS.config, 0o600, EXAMPLE_CONFIG],
    ];
    for (const [path, mode, content] of expected) {
      expect(lstatSync(at(path)).isFile(), path).toBe(true);
      expect(modeOf(at(path)).toString(8), path).toBe(mode.toString(8));
      if (content !== undefined) expect(readFileSync(at(path), 'utf8'), path).toBe(content);
      expect(actions(report)[path], path).toBe('created');
    }
    expect(readlinkSync(at(INSTALL_PATHS.resumeWants))).toBe('/etc/systemd/system/syn3-backup-resume.service');
    expect(actions(report)[INSTALL_PATHS.resumeWants]).toBe('created');
    expect(existsSync(at(INSTALL_PATHS.timerWants))).toBe(false);
    expect(actions(report)[INSTALL_PATHS.timerWants]).toBe('unchanged');

    const wrapper = readFileSync(at(INSTALL_PATHS.wrapper), 'utf8');
    expect(wrapper).toBe(
      `#!/bin/sh\n# syn3-backup: written by "syn3-backup install"; run that again after moving node or the program.\nexec '${process.execPath}' '${CLI}' "$@"\n`,
    );
    // Directories the installer creates are readable by all, like the ones dpkg makes.
    expect(modeOf(at('/etc/postinst.d'))).toBe(0o755);
    expect(modeOf(at('/usr/share/initramfs-tools/scripts/local-premount'))).toBe(0o755);
  });

  it('copies the example database modules into /etc/syn3-backup/modules.examples, none of them executable', async () => {
    const report = await installJson(prefix);
    expect(exampleNames).toEqual(expect.arrayContaining(['mariadb.freeze', 'mariadb.backup', 'postgresql.freeze', 'postgresql.restore']));
    expect(report.moduleExamples.modules).toEqual(exampleNames);
    for (const name of exampleNames) {
      const path = join(INSTALL_PATHS.moduleExamples, name);
      expect(readFileSync(at(path), 'utf8'), path).toBe(readFileSync(join(EXAMPLES, name), 'utf8'));
      expect(modeOf(at(path)).toString(8), path).toBe('644');
      expect(actions(report)[path], path).toBe('created');
    }
    expect(readdirSync(at(INSTALL_PATHS.moduleExamples)).sort()).toEqual(exampleNames);
    // Nothing lands in the modules directory: enabling one is the administrator's choice.
    expect(existsSync(at('/usr/backup/modules'))).toBe(false);
  });

  it('says how to enable an example module: a 0700 copy in paths.modules', async () => {
    const enable = 'install -D -m 0700 /etc/syn3-backup/modules.examples/mariadb.backup /usr/backup/modules/mariadb.backup';
    const report = await installJson(prefix);
    expect(report.moduleExamples).toMatchObject({
      directory: '/etc/syn3-backup/modules.examples',
      modulesDirectory: '/usr/backup/modules',
      enable,
    });
    const human = await install(['--prefix', prefix]);
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toContain(enable);
    expect(human.stdout).toMatch(/examples, not run/);
  });

  it("puts back an example module that was edited in place (the examples are the package's, copies are the administrator's)", async () => {
    await installJson(prefix);
    const path = join(INSTALL_PATHS.moduleExamples, 'postgresql.freeze');
    writeFileSync(at(path), '#!/bin/bash\necho frozen\n');
    chmodSync(at(path), 0o755);
    const report = await installJson(prefix);
    expect(actions(report)[path]).toBe('updated');
    expect(readFileSync(at(path), 'utf8')).toBe(readFileSync(join(EXAMPLES, 'postgresql.freeze'), 'utf8'));
    expect(modeOf(at(path))).toBe(0o644);
  });

  it('the installed wrapper starts this syn3-backup', async () => {
    await installJson(prefix);
    if (!existsSync(CLI)) return;
    const r = await execa(at(INSTALL_PATHS.wrapper), ['--version'], { reject: false });
    expect(r.exitCode).toBe(0);
    expect(String(r.stdout)).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('a second run reports everything unchanged and changes nothing', async () => {
    await installJson(prefix);
    const mtimes = new Map(
      Object.values(INSTALL_PATHS)
        .filter((p) => existsSync(at(p)))
        .map((p) => [p, lstatSync(at(p)).mtimeMs]),
    );
    const report = await installJson(prefix);
    for (const f of report.files) expect(f.action, f.path).toBe('unchanged');
    for (const [p, mtime] of mtimes) expect(lstatSync(at(p)).mtimeMs, p).toBe(mtime);

    const human = await install(['--prefix', prefix]);
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toMatch(/^unchanged {2}.*\/etc\/cron\.d\/syn3-backup \(0644\)$/m);
    expect(human.stdout).not.toMatch(/^(created|updated|removed) /m);
  });

  it('never overwrites an existing config.yaml', async () => {
    await installJson(prefix);
    const mine = 'schedule:\n  every: 6h\ntarget:\n  type: file\n  path: /srv/backup\n';
    writeFileSync(at(INSTALL_PATHS.config), mine);
    chmodSync(at(INSTALL_PATHS.config), 0o640);
    const report = await installJson(prefix);
    expect(readFileSync(at(INSTALL_PATHS.config), 'utf8')).toBe(mine);
    expect(modeOf(at(INSTALL_PATHS.config))).toBe(0o640);
    const entry = report.files.find((f) => f.path === INSTALL_PATHS.config)!;
    expect(entry.action).toBe('unchanged');
    expect(entry.note).toBe('existing file kept');
  });

  it('--dry-run writes nothing and says what it would do', async () => {
    const report = await installJson(prefix, '--dry-run');
    expect(report.dryRun).toBe(true);
    expect(readdirSync(prefix)).toEqual([]);
    expect(actions(report)[INSTALL_PATHS.hook]).toBe('created');
    const human = await install(['--prefix', prefix, '--dry-run']);
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toMatch(/^dry run: nothing was changed/);
    expect(human.stdout).toMatch(/^would create {2}.*\/usr\/share\/initramfs-tools\/hooks\/syn3-backup \(0755\)$/m);
    expect(readdirSync(prefix)).toEqual([]);

    // And on an installed tree it reports the one change without making it.
    await installJson(prefix);
    writeFileSync(at(INSTALL_PATHS.hook), '#!/bin/sh\nexit 0\n');
    const again = await installJson(prefix, '--dry-run');
    expect(actions(again)[INSTALL_PATHS.hook]).toBe('updated');
    expect(readFileSync(at(INSTALL_PATHS.hook), 'utf8')).toBe('#!/bin/sh\nexit 0\n');
  });

  it('repairs a changed file or mode and reports it updated', async () => {
    await installJson(prefix);
    writeFileSync(at(INSTALL_PATHS.premount), 'old\n');
    chmodSync(at(INSTALL_PATHS.hook), 0o644);
    const report = await installJson(prefix);
    expect(actions(report)[INSTALL_PATHS.premount]).toBe('updated');
    expect(actions(report)[INSTALL_PATHS.hook]).toBe('updated');
    expect(readFileSync(at(INSTALL_PATHS.premount), 'utf8')).toBe(boot('initramfs-premount'));
    expect(modeOf(at(INSTALL_PATHS.hook))).toBe(0o755);
    expect(Object.values(actions(report)).filter((a) => a !== 'unchanged')).toHaveLength(2);
  });

  it('keeps the execute bit of post.restore that a restore set', async () => {
    await installJson(prefix);
    chmodSync(at(INSTALL_PATHS.postRestore), 0o755);
    const report = await installJson(prefix);
    expect(actions(report)[INSTALL_PATHS.postRestore]).toBe('unchanged');
    expect(modeOf(at(INSTALL_PATHS.postRestore))).toBe(0o755);
  });

  it('--scheduler timer enables the timer instead of the cron job, and back', async () => {
    await installJson(prefix);
    const timer = await installJson(prefix, '--scheduler', 'timer');
    expect(actions(timer)[INSTALL_PATHS.cron]).toBe('removed');
    expect(actions(timer)[INSTALL_PATHS.timerWants]).toBe('created');
    expect(existsSync(at(INSTALL_PATHS.cron))).toBe(false);
    expect(readlinkSync(at(INSTALL_PATHS.timerWants))).toBe('/etc/systemd/system/syn3-backup.timer');

    const none = await installJson(prefix, '--scheduler', 'none');
    expect(actions(none)[INSTALL_PATHS.timerWants]).toBe('removed');
    expect(actions(none)[INSTALL_PATHS.cron]).toBe('unchanged');
    expect(existsSync(at(INSTALL_PATHS.timerWants))).toBe(false);

    const cron = await installJson(prefix, '--scheduler', 'cron');
    expect(actions(cron)[INSTALL_PATHS.cron]).toBe('created');
    expect(readFileSync(at(INSTALL_PATHS.cron), 'utf8')).toBe(boot('cron'));
  });

  it('refuses an unknown scheduler and a prefix that is not a directory', async () => {
    const bad = await install(['--prefix', prefix, '--scheduler', 'anacron']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/anacron/);
    const missing = await install(['--prefix', join(prefix, 'nope')]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/is not a directory/);
    expect(readdirSync(prefix)).toEqual([]);
  });

  it('refuses to run as non-root, with a clear message', async () => {
    const uid = vi.spyOn(process, 'getuid').mockReturnValue(1000);
    try {
      const r = await inProcess(['--prefix', prefix]);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toMatch(/must run as root.*Run it again as root/);
      expect(readdirSync(prefix)).toEqual([]);
    } finally {
      uid.mockRestore();
    }
  });
});
