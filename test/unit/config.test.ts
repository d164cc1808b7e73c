/**
 * The configuration file: what a valid file means, and how each kind of
 * mistake is reported. Every rejection is a UserError whose paragraph names
 * the file and the line to fix and says how to fix it.
 */
import { chmodSync, chownSync, symlinkSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { UserError } from '../../src/errors.js';

const FILE = '/etc/syn3-backup/config.yaml';
const HOUR = 3_600_000;

/** Lines joined as a file, so a test's line numbers can be counted in its source. */
function yaml(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

const SCHEDULE = ['schedule:', '  every: 6h'];
const TARGET = ['target:', '  type: file', '  path: /mnt/backup'];
/** The smallest valid configuration: lines 1-5. */
const MINIMAL = [...SCHEDULE, ...TARGET];

/** The UserError parseConfig throws for text (failing the test when it accepts it). */
function rejection(text: string): UserError {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    expect((e as UserError).kind).toBe('config');
    return e as UserError;
  }
  throw new Error(`parseConfig accepted:\n${text}`);
}

function thrown(f: () => unknown): UserError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return e as UserError;
  }
  throw new Error('it was accepted');
}

/** The paragraph an administrator reads, checked to start with <file>:<line>. */
function rejectedAt(text: string, line: number): string {
  const paragraph = rejection(text).paragraph();
  expect(paragraph).toMatch(new RegExp(`^${FILE}:${line}: `));
  return paragraph;
}

describe('a valid configuration', () => {
  it('with only a schedule and a target gets the default paths, spool mode, keep 7, a 1h module timeout and no system_sync excludes', () => {
    const config = parseConfig(yaml(...MINIMAL), FILE);
    // toMatchObject: sections added later (restore, …) have their own tests.
    expect(config).toMatchObject({
      file: FILE,
      host: hostname(),
      schedule: { kind: 'every', ms: 6 * HOUR },
      mode: 'spool',
      paths: {
        root: '/',
        boot: '/boot',
        home: '/home',
        state: '/var/lib/syn3-backup',
        modules: '/usr/backup/modules',
        systemCopy: '/home/.syn3systembackup',
        spool: '/home/system/spool',
      },
      moduleTimeoutMs: HOUR,
      systemSyncExclude: [],
      target: { type: 'file', path: '/mnt/backup', require_mount: true, retention: { keep: 7 } },
    });
  });

  it("requires a mount at the file target by default, as the README's example has it (issue 10, finding 8)", () => {
    const config = parseConfig(yaml(...MINIMAL), FILE);
    expect(config.target.type === 'file' && config.target.require_mount).toBe(true);
    const off = parseConfig(yaml(...MINIMAL, '  require_mount: false'), FILE);
    expect(off.target.type === 'file' && off.target.require_mount).toBe(false);
  });

  it('records whether paths.modules was written in the file (a missing one is then a typo) or is the default', () => {
    expect(parseConfig(yaml(...MINIMAL), FILE).modulesExplicit).toBe(false);
    expect(parseConfig(yaml(...MINIMAL, 'paths:', '  state: /s'), FILE).modulesExplicit).toBe(false);
    const explicit = parseConfig(yaml(...MINIMAL, 'paths:', '  modules: /usr/backup/modules'), FILE);
    expect(explicit.modulesExplicit).toBe(true);
    expect(explicit.paths.modules).toBe('/usr/backup/modules');
  });

  it('refuses an FTP target without secure, on its line, saying both choices (plain FTP needs an explicit secure: false)', () => {
    const ftp = ['target:', '  type: ftp', '  host: ftp.example.org', '  user: b', '  password_file: /etc/p', '  directory: /b'];
    // Line 4: where the target's mapping starts (a missing key has no line of its own).
    const p = rejectedAt(yaml(...SCHEDULE, ...ftp), 4);
    expect(p).toBe(
      `${FILE}:4: "target.secure" is missing. Write secure: true for FTPS (AUTH TLS), or secure: false to accept that the password and the backups cross the network in clear.`,
    );
    const plain = parseConfig(yaml(...SCHEDULE, ...ftp, '  secure: false'), FILE);
    expect(plain.target.type === 'ftp' && plain.target.secure).toBe(false);
  });

  it('puts the system copy and the spool under paths.home: <home>/.syn3systembackup and <home>/system/spool', () => {
    const config = parseConfig(yaml(...MINIMAL, 'paths:', '  home: /srv/home'), FILE);
    expect(config.paths).toMatchObject({ home: '/srv/home', systemCopy: '/srv/home/.syn3systembackup', spool: '/srv/home/system/spool' });
  });

  it('keeps every value given explicitly: host, paths, module timeout, excludes, require_mount and retention', () => {
    const config = parseConfig(
      yaml(
        'host: web1.example.org',
        ...SCHEDULE,
        'paths:',
        '  root: /r',
        '  boot: /r/boot',
        '  home: /h',
        '  state: /s',
        '  modules: /m',
        'modules:',
        '  timeout: 30m',
        'system_sync:',
        '  exclude: [/var/cache, /srv/scratch]',
        ...TARGET,
        '  require_mount: true',
        '  retention:',
        '    keep: 3',
      ),
      FILE,
    );
    expect(config).toMatchObject({
      host: 'web1.example.org',
      paths: { root: '/r', boot: '/r/boot', home: '/h', state: '/s', modules: '/m' },
      moduleTimeoutMs: 30 * 60_000,
      systemSyncExclude: ['/var/cache', '/srv/scratch'],
      target: { require_mount: true, retention: { keep: 3 } },
    });
  });

  it('reads schedule daily "02:00" as a daily slot at 02:00', () => {
    const config = parseConfig(yaml('schedule:', '  daily: "02:00"', ...TARGET), FILE);
    expect(config.schedule).toEqual({ kind: 'daily', at: '02:00' });
  });

  it('reads schedule every 6h as an interval of six hours', () => {
    expect(parseConfig(yaml(...MINIMAL), FILE).schedule).toEqual({ kind: 'every', ms: 6 * HOUR });
  });

  it('reads schedule every with seconds, minutes and days too (90s, 30m, 1d)', () => {
    const every = (d: string) => parseConfig(yaml('schedule:', `  every: ${d}`, ...TARGET), FILE).schedule;
    expect([every('90s'), every('30m'), every('1d')]).toEqual([
      { kind: 'every', ms: 90_000 },
      { kind: 'every', ms: 30 * 60_000 },
      { kind: 'every', ms: 24 * HOUR },
    ]);
  });

  it('reads schedule cron "0 2 * * 1-5" as that cron expression', () => {
    const config = parseConfig(yaml('schedule:', '  cron: "0 2 * * 1-5"', ...TARGET), FILE);
    expect(config.schedule).toEqual({ kind: 'cron', expr: '0 2 * * 1-5' });
  });

  it('accepts mode: snapshot, with a snapshot of 20% of /home and a 60 s freeze timeout by default', () => {
    const config = parseConfig(yaml(...MINIMAL, 'mode: snapshot'), FILE);
    expect(config.mode).toBe('snapshot');
    expect(config.snapshot).toEqual({ size: { percent: 20 }, freeze_timeout: 60_000 });
  });

  it('reads snapshot.size as a percentage or as a size with a binary unit, and freeze_timeout as a duration', () => {
    const sized = (size: string) =>
      parseConfig(yaml(...MINIMAL, 'mode: snapshot', 'snapshot:', `  size: ${size}`, '  freeze_timeout: 90s'), FILE).snapshot;
    expect(sized('"35%"')).toEqual({ size: { percent: 35 }, freeze_timeout: 90_000 });
    expect(sized('4G').size).toEqual({ bytes: 4 * 1024 ** 3 });
    expect(sized('512MiB').size).toEqual({ bytes: 512 * 1024 ** 2 });
    expect(sized('1.5g').size).toEqual({ bytes: 1.5 * 1024 ** 3 });
  });
});

describe('a rejected snapshot section says what a size looks like', () => {
  for (const bad of ['"0%"', '"150%"', 'big', '100k', '-4G']) {
    it(`snapshot.size: ${bad}`, () => {
      const p = rejection(yaml(...MINIMAL, 'mode: snapshot', 'snapshot:', `  size: ${bad}`)).paragraph();
      expect(p).toContain('config.yaml:8');
      expect(p).toMatch(/"snapshot\.size" must be a percentage of \/home's volume .* or a size of at least 1M/);
      expect(p).toMatch(/Write size: 20%/);
    });
  }

  it('an unknown key in snapshot lists the two it has', () => {
    const p = rejection(yaml(...MINIMAL, 'snapshot:', '  sise: 10%')).paragraph();
    expect(p).toMatch(/Did you mean "size"\? Known keys there: size, freeze_timeout/);
  });
});

describe('a rejected configuration names the file, the line and the fix', () => {
  it('malformed YAML (bad indentation): the line of the misplaced key, and a hint about indentation', () => {
    const text = yaml('schedule:', '  every: 6h', 'target:', '  type: file', '   path: /mnt/backup');
    const p = rejectedAt(text, 5);
    expect(p).toMatch(/YAML is malformed/);
    expect(p).toMatch(/indentation/);
  });

  it('a top-level key out of line with the others: the line of that key', () => {
    const p = rejectedAt(yaml(...SCHEDULE, ' target:', '  type: file', '  path: /mnt/backup'), 3);
    expect(p).toMatch(/YAML is malformed/);
  });

  it('an unquoted value holding ": " (path: /mnt/backup: old disk): its line, a hint about quoting', () => {
    const p = rejectedAt(yaml(...SCHEDULE, 'target:', '  type: file', '  path: /mnt/backup: old disk'), 5);
    expect(p).toMatch(/YAML is malformed/);
    expect(p).toContain('needs quotes');
  });

  it('an unknown top-level key (targt:): that key\'s line and "Did you mean "target"?"', () => {
    const p = rejectedAt(yaml(...SCHEDULE, 'targt:', '  type: file', '  path: /mnt/backup'), 3);
    expect(p).toContain('unknown key "targt"');
    expect(p).toContain('Did you mean "target"?');
  });

  it('an unknown nested key (require_mnt under target): that key\'s line and "Did you mean "require_mount"?"', () => {
    const p = rejectedAt(yaml(...MINIMAL, '  require_mnt: true'), 6);
    expect(p).toContain('unknown key "require_mnt" in "target"');
    expect(p).toContain('Did you mean "require_mount"?');
  });

  it('an unknown key far from any known one: lists the keys allowed there instead of guessing', () => {
    const p = rejectedAt(yaml(...MINIMAL, 'encryption: aes256'), 6);
    expect(p).toContain('unknown key "encryption"');
    expect(p).not.toContain('Did you mean');
    expect(p).toMatch(/Known keys there: host, schedule, mode, snapshot, compression, paths, modules, system_sync, target, restore\b/);
  });

  it('a value of the wrong type (retention: {keep: "seven"}): the value\'s line, says a number is wanted and what was given', () => {
    const p = rejectedAt(yaml(...MINIMAL, '  retention:', '    keep: "seven"'), 7);
    expect(p).toContain('"target.retention.keep" must be a number, not the text "seven"');
    expect(p).not.toContain('missing');
  });

  it('retention keep: 0: the line of keep, "must keep at least 1 backup"', () => {
    const p = rejectedAt(yaml(...MINIMAL, '  retention:', '    keep: 0'), 7);
    expect(p).toContain('"target.retention.keep" must keep at least 1 backup');
  });

  it('a fractional keep (1.5): the line of keep, "must be a whole number"', () => {
    const p = rejectedAt(yaml(...MINIMAL, '  retention:', '    keep: 1.5'), 7);
    expect(p).toContain('must be a whole number');
  });

  it('daily "25:00": its line, asks for HH:MM on a 24-hour clock and shows the three schedule forms', () => {
    const p = rejectedAt(yaml('schedule:', '  daily: "25:00"', ...TARGET), 2);
    expect(p).toContain('"schedule.daily" must be a time of day as HH:MM, 24-hour clock');
    expect(p).toContain('Write one of: daily: "02:00", every: 6h, cron: "0 2 * * 1-5"');
  });

  it('every "6 hours": its line, asks for a duration such as 6h', () => {
    const p = rejectedAt(yaml('schedule:', '  every: 6 hours', ...TARGET), 2);
    expect(p).toContain('"schedule.every" must be a duration such as 90s, 30m, 6h or 1d');
  });

  it('every 0s: its line, a zero interval is not a duration', () => {
    const p = rejectedAt(yaml('schedule:', '  every: 0s', ...TARGET), 2);
    expect(p).toContain('"schedule.every" must be a duration');
  });

  it('cron "61 * * * *": its line, asks for a five-field cron expression', () => {
    const p = rejectedAt(yaml('schedule:', '  cron: "61 * * * *"', ...TARGET), 2);
    expect(p).toContain('"schedule.cron" must be a five-field cron expression such as "0 2 * * 1-5"');
  });

  it('a six-field cron expression with seconds: rejected like any other that is not five fields', () => {
    const p = rejectedAt(yaml('schedule:', '  cron: "0 0 2 * * *"', ...TARGET), 2);
    expect(p).toContain('five-field cron expression');
  });

  it('two schedule forms at once (daily and every): the schedule\'s line, "needs exactly one of daily, every or cron"', () => {
    const p = rejectedAt(yaml('schedule:', '  daily: "02:00"', '  every: 6h', ...TARGET), 2);
    expect(p).toContain('"schedule" needs exactly one of daily, every or cron');
  });

  it('an empty schedule mapping: "needs exactly one of daily, every or cron"', () => {
    const p = rejection(yaml('schedule: {}', ...TARGET)).paragraph();
    expect(p).toContain(`${FILE}:1:`);
    expect(p).toContain('needs exactly one of daily, every or cron');
  });

  it('a relative paths.home: its line, "must be an absolute path"', () => {
    const p = rejectedAt(yaml(...MINIMAL, 'paths:', '  home: home'), 7);
    expect(p).toContain('"paths.home" must be an absolute path (starting with /)');
  });

  it('a relative target path: its line, "must be an absolute path"', () => {
    const p = rejectedAt(yaml(...SCHEDULE, 'target:', '  type: file', '  path: mnt/backup'), 5);
    expect(p).toContain('"target.path" must be an absolute path');
  });

  it('an unsupported target type (type: floppy): the line of type, lists the supported types', () => {
    const p = rejectedAt(yaml(...SCHEDULE, 'target:', '  type: floppy', '  path: /mnt/backup'), 4);
    expect(p).toContain('"target.type" has an unsupported value');
    expect(p).toContain('Supported target types: file');
  });

  it('an unknown mode: the line of mode, says to use spool', () => {
    const p = rejectedAt(yaml(...MINIMAL, 'mode: mirror'), 6);
    expect(p).toContain('"mode"');
    expect(p).toContain('Use mode: spool');
  });

  it('no schedule: "schedule" is missing, with the three forms to choose from', () => {
    const p = rejectedAt(yaml(...TARGET), 1);
    expect(p).toContain('"schedule" is missing');
    expect(p).toContain('Write one of: daily: "02:00", every: 6h, cron: "0 2 * * 1-5"');
  });

  it('no target: "target" is missing', () => {
    expect(rejectedAt(yaml(...SCHEDULE), 1)).toContain('"target" is missing');
  });

  it('an empty file: says what is missing instead of failing on nothing', () => {
    expect(rejectedAt('', 1)).toContain('is missing');
  });

  it('a file that is a list, not a mapping: says the top level must be a mapping', () => {
    expect(rejectedAt(yaml('- schedule', '- target'), 1)).toContain('the top level must be a mapping');
  });

  it('a duplicate top-level key: the line of the second one, "Map keys must be unique"', () => {
    const p = rejectedAt(yaml(...MINIMAL, 'schedule:', '  every: 1h'), 6);
    expect(p).toContain('Map keys must be unique');
  });

  it('a duplicate nested key: the line of the second one', () => {
    const p = rejectedAt(yaml('schedule:', '  every: 6h', '  every: 1h', ...TARGET), 3);
    expect(p).toContain('Map keys must be unique');
  });
});

describe('loadConfig', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  async function tempFile(content: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'syn3-config-test-'));
    dirs.push(dir);
    const file = join(dir, 'config.yaml');
    await writeFile(file, content);
    return file;
  }

  it('reads the file and records where the configuration came from', async () => {
    const file = await tempFile(yaml(...MINIMAL));
    const config = loadConfig(file);
    expect(config.file).toBe(file);
    expect(config.schedule).toEqual({ kind: 'every', ms: 6 * HOUR });
  });

  it("reports errors in the file with the file's own path and line", async () => {
    const file = await tempFile(yaml(...SCHEDULE, 'targt:', '  type: file'));
    expect(() => loadConfig(file)).toThrow(UserError);
    try {
      loadConfig(file);
    } catch (e) {
      expect((e as UserError).paragraph()).toMatch(new RegExp(`^${file}:3: unknown key "targt"`));
    }
  });

  it('refuses a configuration file that nobody owns, though its mode is 0644: it says what runs as root', async () => {
    const file = await tempFile(yaml(...MINIMAL));
    chownSync(file, 65534, 65534);
    const e = thrown(() => loadConfig(file));
    expect(e.kind).toBe('trust');
    expect(e.exitCode).toBe(3);
    expect(e.paragraph()).toBe(
      `${file}: the configuration file is owned by uid 65534, mode 0644; this program runs as root and trusts only what root alone can change. Fix it with: chown root:root ${file}.`,
    );
  });

  it('refuses a configuration file that is a link, or that group or others can write, or in a directory others can write', async () => {
    const real = await tempFile(yaml(...MINIMAL));
    const link = `${real}.link`;
    symlinkSync(real, link);
    expect(thrown(() => loadConfig(link)).message).toMatch(/^the configuration file is a symbolic link;/);
    chmodSync(real, 0o664);
    expect(thrown(() => loadConfig(real)).message).toMatch(/mode 0664 \(group or others can write it\)/);
    chmodSync(real, 0o644);
    chmodSync(dirname(real), 0o777);
    expect(thrown(() => loadConfig(real)).where).toBe(dirname(real));
    chmodSync(dirname(real), 0o700);
    expect(loadConfig(real).file).toBe(real);
  });

  it('a missing file: names it, says it does not exist, and says to create it or pass --config', () => {
    const file = join(tmpdir(), 'syn3-no-such-dir', 'config.yaml');
    let error: unknown;
    try {
      loadConfig(file);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UserError);
    const p = (error as UserError).paragraph();
    expect(p).toMatch(new RegExp(`^${file}: the configuration file does not exist`));
    expect(p).toContain('Create it');
    expect(p).toContain('syn3-backup config example');
    expect(p).toContain('--config');
    expect((error as UserError).exitCode).toBe(3);
  });
});
