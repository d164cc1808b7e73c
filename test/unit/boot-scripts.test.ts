// The shell scripts in boot/: they parse under dash, bash --posix and (when
// installed) busybox sh, and the initrd ones do what the restore expects when
// run against stub commands that log their arguments.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initrdConfText } from '../../actors/markers.js';
import { REPO_ROOT } from '../support/cli.js';

const BOOT = join(REPO_ROOT, 'boot');
const PREMOUNT = join(BOOT, 'initramfs-premount');
const HOOK = join(BOOT, 'initramfs-hook');
const POST_RESTORE = join(BOOT, 'post.restore');

function onPath(tool: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const shellScripts = readdirSync(BOOT).filter((name) => readFileSync(join(BOOT, name), 'utf8').startsWith('#!/bin/sh'));

describe('boot/ shell scripts parse as POSIX sh', () => {
  it('finds the scripts', () => {
    expect(shellScripts.sort()).toEqual(['initramfs-hook', 'initramfs-premount', 'post.restore']);
  });
  const shells: Array<[string, string[]]> = [
    ['dash', ['-n']],
    ['bash', ['--posix', '-n']],
    ...(onPath('busybox') ? ([['busybox', ['sh', '-n']]] as Array<[string, string[]]>) : []),
  ];
  for (const name of shellScripts) {
    for (const [shell, args] of shells) {
      it(`${shell} ${args.join(' ')} ${name}`, () => {
        const r = spawnSync(shell, [...args, join(BOOT, name)], { encoding: 'utf8' });
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
      });
    }
  }
});

/** A sandbox: stub commands on PATH that append their argv to a log, and a fake /syn3home. */
interface Fake {
  dir: string;
  bin: string;
  log: string;
  mnt: string;
  conf: string;
  functions: string;
  uuid: string;
}

let fake: Fake;

function stub(name: string, body = ''): void {
  const file = join(fake.bin, name);
  writeFileSync(
    file,
    `#!/bin/sh\nprintf '%s' ${JSON.stringify(name)} >>"$STUB_LOG"\nfor a in "$@"; do printf ' [%s]' "$a" >>"$STUB_LOG"; done\necho >>"$STUB_LOG"\n${body}\n`,
  );
  chmodSync(file, 0o755);
}

beforeEach(() => {
  const dir = mkdtempSync(join(tmpdir(), 'syn3-boot-'));
  fake = {
    dir,
    bin: join(dir, 'bin'),
    log: join(dir, 'calls.log'),
    mnt: join(dir, 'syn3home'),
    conf: join(dir, 'initrd.conf'),
    functions: join(dir, 'functions'),
    uuid: randomUUID(),
  };
  mkdirSync(fake.bin);
  writeFileSync(fake.log, '');
  for (const name of ['mount', 'umount', 'modprobe', 'lvm', 'findfs', 'sleep']) stub(name);
  stub('blkid', 'echo "$STUB_DIR/fake-home"');
  writeFileSync(join(dir, 'fake-home'), '');
  // Fails STUB_CHROOT_FAILS times (counted in a file), then succeeds and removes the marker like the program would.
  stub(
    'chroot',
    [
      'printf "SYN3_ROOT_DEVICE=%s\\n" "$SYN3_ROOT_DEVICE" >>"$STUB_LOG"',
      'n=$(cat "$STUB_DIR/chroot-count" 2>/dev/null || echo 0); n=$((n + 1)); echo $n >"$STUB_DIR/chroot-count"',
      'if [ "$n" -le "${STUB_CHROOT_FAILS:-0}" ]; then exit 9; fi',
      'rm -f "$STUB_MNT/.syn3restore/pending-initrd"',
    ].join('\n'),
  );
  // The initramfs-tools panic: logs; PANIC_EXIT makes it leave the script (panic= reboot), PANIC_FIXES removes the marker.
  writeFileSync(
    fake.functions,
    [
      'panic() {',
      '  printf "panic %s\\n" "$*" >>"$STUB_LOG"',
      '  if [ -n "${PANIC_EXIT:-}" ]; then exit "$PANIC_EXIT"; fi',
      '  if [ -n "${PANIC_FIXES:-}" ]; then rm -f "$STUB_MNT/.syn3restore/pending-initrd"; fi',
      '}',
      '',
    ].join('\n'),
  );
  writeFileSync(
    fake.conf,
    [
      `SYN3_HOME_UUID=${fake.uuid}`,
      'SYN3_HOME_FSTYPE=xfs',
      'SYN3_CONFIG=/etc/syn3-backup/config.yaml',
      'SYN3_NODE=/usr/bin/node',
      'SYN3_CLI=/opt/syn3-backup/dist/bin/syn3-backup.mjs',
      `SYN3_ROOT_AFTER=UUID=${ROOT_AFTER}`,
      '',
    ].join('\n'),
  );
});

afterEach(() => {
  rmSync(fake.dir, { recursive: true, force: true });
});

function pendingRestore(): void {
  mkdirSync(join(fake.mnt, '.syn3systembackup'), { recursive: true });
  mkdirSync(join(fake.mnt, '.syn3restore'), { recursive: true });
  writeFileSync(join(fake.mnt, '.syn3restore', 'pending-initrd'), '');
}

/** The shells the initrd scripts run under: dash (Debian's sh), with and without -e, and busybox ash, the initramfs's own. */
const BUSYBOX = onPath('busybox') ?? 'busybox';
const RUNTIMES: Array<{ name: string; shell: string[] }> = [
  { name: 'sh', shell: ['sh'] },
  { name: 'sh -e', shell: ['sh', '-e'] },
  { name: 'busybox sh -e', shell: [BUSYBOX, 'sh', '-e'] },
];

describe('the shells of the initramfs', () => {
  it('busybox is installed, so the scripts are tried in the shell they meet at boot (scripts/setup.sh installs busybox-static)', () => {
    expect(onPath('busybox')).toBeDefined();
  });
});

/**
 * Debian's busybox runs its own applets (mount, chroot …) before anything on
 * PATH, as it does in the initramfs; so under busybox the stubs are made shell
 * functions that win over the applets, and the script is sourced after them.
 */
function withStubFunctions(script: string): string {
  const wrapper = join(fake.dir, 'with-stub-functions.sh');
  const functions = readdirSync(fake.bin).map((name) => `${name}() { "${join(fake.bin, name)}" "$@"; }`);
  writeFileSync(wrapper, [...functions, `. "${script}"`, ''].join('\n'));
  return wrapper;
}

function runScript(script: string, env: Record<string, string> = {}, o: { errexit?: boolean; shell?: string[] } = {}) {
  const [cmd, ...args] = o.shell ?? ['sh', ...(o.errexit ? ['-e'] : [])];
  const target = cmd === BUSYBOX ? withStubFunctions(script) : script;
  const r = spawnSync(cmd!, [...args, target], {
    encoding: 'utf8',
    cwd: fake.dir,
    timeout: 20_000,
    env: {
      PATH: `${fake.bin}:/usr/bin:/bin`,
      STUB_LOG: fake.log,
      STUB_DIR: fake.dir,
      STUB_MNT: fake.mnt,
      SYN3_INITRD_CONF: fake.conf,
      SYN3_FUNCTIONS: fake.functions,
      SYN3_MNT: fake.mnt,
      SYN3_PARAM_CONF: paramConf(),
      ROOT: '/dev/sda2',
      ...env,
    },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, calls: readFileSync(fake.log, 'utf8').split('\n').filter(Boolean) };
}

const sys = () => join(fake.mnt, '.syn3systembackup');
const ROOT_AFTER = '0b1e2f3a-4c5d-4e6f-8a9b-0c1d2e3f4a5b';
const paramConf = () => join(fake.dir, 'param.conf');
const paramLines = () => (existsSync(paramConf()) ? readFileSync(paramConf(), 'utf8') : '');
const chrootLine = () =>
  `chroot [${sys()}] [/usr/bin/node] [/opt/syn3-backup/dist/bin/syn3-backup.mjs] [--config] [/etc/syn3-backup/config.yaml] [resume] [--initrd]`;

describe('initramfs-premount', () => {
  for (const { name: sh, shell } of RUNTIMES) {
    it(`${sh}: prints no prerequisites`, () => {
      const r = spawnSync('sh', [PREMOUNT, 'prereqs'], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout.trim()).toBe('');
    });

    it(`${sh}: without initrd.conf does nothing and exits 0`, () => {
      const r = runScript(PREMOUNT, { SYN3_INITRD_CONF: join(fake.dir, 'absent.conf') }, { shell });
      expect(r.status).toBe(0);
      expect(r.calls).toEqual([]);
    });

    it(`${sh}: nothing pending: mounts /home, unmounts it, no chroot, exits 0`, () => {
      const r = runScript(PREMOUNT, {}, { shell });
      expect(r.status).toBe(0);
      expect(r.calls).toContain(`blkid [-U] [${fake.uuid}]`);
      expect(r.calls).toContain(`mount [-t] [xfs] [${fake.dir}/fake-home] [${fake.mnt}]`);
      expect(r.calls.at(-1)).toBe(`umount [${fake.mnt}]`);
      expect(r.calls.some((c) => c.startsWith('chroot'))).toBe(false);
    });

    it(`${sh}: a system copy without the pending marker is not restored`, () => {
      mkdirSync(sys(), { recursive: true });
      const r = runScript(PREMOUNT, {}, { shell });
      expect(r.status).toBe(0);
      expect(r.calls.some((c) => c.startsWith('chroot'))).toBe(false);
    });

    it(`${sh}: pending: binds /dev, /proc, /sys, /home, runs resume --initrd in the system copy, unmounts in reverse`, () => {
      pendingRestore();
      const r = runScript(PREMOUNT, {}, { shell });
      expect(r.status).toBe(0);
      expect(r.calls).toEqual([
        `blkid [-U] [${fake.uuid}]`,
        'modprobe [-q] [xfs]',
        `mount [-t] [xfs] [${fake.dir}/fake-home] [${fake.mnt}]`,
        `mount [-o] [bind] [/dev] [${sys()}/dev]`,
        `mount [-o] [bind] [/proc] [${sys()}/proc]`,
        `mount [-o] [bind] [/sys] [${sys()}/sys]`,
        `mount [-o] [bind] [${fake.mnt}] [${sys()}/home]`,
        chrootLine(),
        'SYN3_ROOT_DEVICE=/dev/sda2',
        `umount [${sys()}/home]`,
        `umount [${sys()}/sys]`,
        `umount [${sys()}/proc]`,
        `umount [${sys()}/dev]`,
        `umount [${fake.mnt}]`,
      ]);
      expect(r.stdout).toMatch(/syn3-backup: a restore is pending/);
    });

    it(`${sh}: once / is back, this boot mounts the restored root: ROOT=UUID=... goes into /conf/param.conf`, () => {
      pendingRestore();
      const r = runScript(PREMOUNT, {}, { shell });
      expect(r.status).toBe(0);
      expect(paramLines()).toBe(`ROOT=UUID=${ROOT_AFTER}\n`);
      expect(r.stdout).toMatch(/booting on with the restored root file system UUID=/);
    });

    it(`${sh}: nothing pending: the root this boot was given stays`, () => {
      const r = runScript(PREMOUNT, {}, { shell });
      expect(r.status).toBe(0);
      expect(paramLines()).toBe('');
    });

    it(`${sh}: the administrator giving up in the panic shell: the root this boot was given stays`, () => {
      pendingRestore();
      const r = runScript(PREMOUNT, { STUB_CHROOT_FAILS: '5', PANIC_FIXES: '1' }, { shell });
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/was removed: booting on without putting/);
      expect(paramLines()).toBe('');
    });

    it(`${sh}: the program failing drops to panic; exiting the shell tries again`, () => {
      pendingRestore();
      const r = runScript(PREMOUNT, { STUB_CHROOT_FAILS: '1' }, { shell });
      expect(r.status).toBe(0);
      const panics = r.calls.filter((c) => c.startsWith('panic '));
      expect(panics).toHaveLength(1);
      expect(panics[0]).toMatch(/putting \/ and \/boot back failed \(status 9\)/);
      expect(r.calls.filter((c) => c === chrootLine())).toHaveLength(2);
      // The binds are undone before the shell and made again for the second try.
      const panicAt = r.calls.indexOf(panics[0]!);
      expect(r.calls.slice(panicAt - 4, panicAt)).toEqual([
        `umount [${sys()}/home]`,
        `umount [${sys()}/sys]`,
        `umount [${sys()}/proc]`,
        `umount [${sys()}/dev]`,
      ]);
      expect(r.calls.at(-1)).toBe(`umount [${fake.mnt}]`);
    });

    it(`${sh}: panic with panic= (it exits) leaves the script without booting on`, () => {
      pendingRestore();
      const r = runScript(PREMOUNT, { STUB_CHROOT_FAILS: '99', PANIC_EXIT: '3' }, { shell });
      expect(r.status).toBe(3);
      expect(r.calls.filter((c) => c.startsWith('panic '))).toHaveLength(1);
      expect(r.calls.filter((c) => c === chrootLine())).toHaveLength(1);
    });

    it(`${sh}: the administrator removing the marker in the panic shell lets the boot go on`, () => {
      pendingRestore();
      const r = runScript(PREMOUNT, { STUB_CHROOT_FAILS: '99', PANIC_FIXES: '1' }, { shell });
      expect(r.status).toBe(0);
      expect(r.calls.filter((c) => c.startsWith('panic '))).toHaveLength(1);
      expect(r.calls.filter((c) => c === chrootLine())).toHaveLength(1);
      expect(r.calls.at(-1)).toBe(`umount [${fake.mnt}]`);
    });

    it(`${sh}: a home device that never appears: no mount, exit 0`, () => {
      stub('blkid', 'exit 2');
      stub('findfs', 'exit 1');
      pendingRestore();
      writeFileSync(fake.conf, `${readFileSync(fake.conf, 'utf8')}SYN3_HOME_WAIT=3\n`);
      const r = runScript(PREMOUNT, {}, { shell });
      expect(r.status).toBe(0);
      expect(r.calls.filter((c) => c === 'sleep [1]')).toHaveLength(3);
      expect(r.calls).toContain('lvm [vgchange] [-a] [ay] [--sysinit]');
      expect(r.calls.some((c) => c.startsWith('mount') || c.startsWith('chroot'))).toBe(false);
      expect(r.stdout).toMatch(/did not appear within 3s/);
    });

    it(`${sh}: /home that does not mount: exit 0 without a chroot`, () => {
      stub('mount', 'exit 32');
      pendingRestore();
      const r = runScript(PREMOUNT, {}, { shell });
      expect(r.status).toBe(0);
      expect(r.calls.some((c) => c.startsWith('chroot'))).toBe(false);
      expect(r.stdout).toMatch(/cannot mount/);
    });

    it(`${sh}: a failing bind mount counts as a failed attempt (panic), not as done`, () => {
      stub('mount', 'case "$*" in *"/proc "*) exit 1;; esac');
      pendingRestore();
      const r = runScript(PREMOUNT, { PANIC_EXIT: '3' }, { shell });
      expect(r.status).toBe(3);
      expect(r.calls.some((c) => c.startsWith('chroot'))).toBe(false);
      expect(r.calls).toContain(`umount [${sys()}/dev]`);
    });
    it(`${sh}: initrd.conf as the restore writes it (quoted values) is read alike`, () => {
      writeFileSync(
        fake.conf,
        initrdConfText({
          homeUuid: fake.uuid,
          config: '/etc/syn3-backup/config.yaml',
          node: '/usr/bin/node',
          cli: '/opt/syn3-backup/dist/bin/syn3-backup.mjs',
          rootAfter: `UUID=${ROOT_AFTER}`,
        }),
      );
      expect(readFileSync(fake.conf, 'utf8')).toContain(`SYN3_HOME_UUID='${fake.uuid}'`);
      pendingRestore();
      const r = runScript(PREMOUNT, {}, { shell });
      expect(r.status).toBe(0);
      expect(r.calls).toContain(`blkid [-U] [${fake.uuid}]`);
      expect(r.calls).toContain(chrootLine());
      expect(paramLines()).toBe(`ROOT=UUID=${ROOT_AFTER}\n`);
    });

    // Finding 4: a backup's metadata recorded a root UUID of $(id >somefile), which the sourced initrd.conf ran as root.
    for (const [what, line] of [
      ['unquoted', 'SYN3_HOME_UUID=$(id >somefile)'],
      ['quoted', "SYN3_HOME_UUID='$(id >somefile)'"],
      ['in backquotes', 'SYN3_HOME_UUID=`id >somefile`'],
      ['closing the quote', "SYN3_HOME_UUID='x'$(id >somefile)''"],
    ] as const) {
      it(`${sh}: a UUID of $(id >somefile) (${what}) runs nothing and looks for no device`, () => {
        writeFileSync(fake.conf, `${line}\nSYN3_NODE=/usr/bin/node\nSYN3_CLI=/opt/cli.mjs\n`);
        pendingRestore();
        const r = runScript(PREMOUNT, {}, { shell });
        expect(r.status).toBe(0);
        expect(existsSync(join(fake.dir, 'somefile'))).toBe(false);
        expect(r.calls).toEqual([]);
        expect(r.stdout).toMatch(/ignoring SYN3_HOME_UUID/);
      });
    }

    it(`${sh}: a root UUID of $(id >somefile) never reaches /conf/param.conf (which initramfs-tools sources)`, () => {
      writeFileSync(fake.conf, `${readFileSync(fake.conf, 'utf8')}SYN3_ROOT_AFTER='UUID=$(id >somefile)'\n`);
      pendingRestore();
      const r = runScript(PREMOUNT, {}, { shell });
      expect(r.status).toBe(0);
      expect(existsSync(join(fake.dir, 'somefile'))).toBe(false);
      // The earlier, valid line stays: a forged line cannot replace it.
      expect(paramLines()).toBe(`ROOT=UUID=${ROOT_AFTER}\n`);
      expect(r.stdout).toMatch(/ignoring SYN3_ROOT_AFTER/);
    });
  }

  it('the guard is needed: sourcing such a line, as the script once did, does run id', () => {
    writeFileSync(fake.conf, 'SYN3_HOME_UUID=$(id >somefile)\n');
    const r = spawnSync('sh', ['-c', `. "${fake.conf}"`], { cwd: fake.dir, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(existsSync(join(fake.dir, 'somefile'))).toBe(true);
  });

  it('the restore refuses to write a value that is not what it must be', () => {
    const good = {
      homeUuid: fake.uuid,
      config: '/etc/syn3-backup/config.yaml',
      node: '/usr/bin/node',
      cli: '/opt/cli.mjs',
      rootAfter: `UUID=${ROOT_AFTER}`,
    };
    expect(initrdConfText(good).split('\n')).toEqual([
      `SYN3_HOME_UUID='${fake.uuid}'`,
      "SYN3_HOME_FSTYPE='xfs'",
      "SYN3_CONFIG='/etc/syn3-backup/config.yaml'",
      "SYN3_NODE='/usr/bin/node'",
      "SYN3_CLI='/opt/cli.mjs'",
      `SYN3_ROOT_AFTER='UUID=${ROOT_AFTER}'`,
      '',
    ]);
    expect(() => initrdConfText({ ...good, homeUuid: '$(id >somefile)' })).toThrow(/SYN3_HOME_UUID.*not a UUID/);
    expect(() => initrdConfText({ ...good, homeUuid: `${fake.uuid},crc=0` })).toThrow(/not a UUID/);
    expect(() => initrdConfText({ ...good, rootAfter: 'UUID=$(id)' })).toThrow(/SYN3_ROOT_AFTER/);
    expect(() => initrdConfText({ ...good, config: "/etc/it's.yaml" })).toThrow(/SYN3_CONFIG.*plain absolute path/);
    expect(() => initrdConfText({ ...good, cli: 'relative.mjs' })).toThrow(/SYN3_CLI/);
    expect(initrdConfText({ ...good, rootAfter: '/dev/sda2' })).toContain("SYN3_ROOT_AFTER='/dev/sda2'");
  });

  it('without /scripts/functions it still stops instead of booting on', () => {
    pendingRestore();
    const r = runScript(PREMOUNT, { STUB_CHROOT_FAILS: '99', SYN3_FUNCTIONS: join(fake.dir, 'absent') });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/cannot boot half-restored/);
  });
});

describe('initramfs-hook', () => {
  let destdir: string;
  let hookFunctions: string;
  beforeEach(() => {
    destdir = join(fake.dir, 'initramfs');
    mkdirSync(destdir);
    hookFunctions = join(fake.dir, 'hook-functions');
    writeFileSync(
      hookFunctions,
      [
        'copy_exec() { echo "copy_exec $*" >>"$STUB_LOG"; }',
        'manual_add_modules() { echo "manual_add_modules $*" >>"$STUB_LOG"; }',
        '',
      ].join('\n'),
    );
  });

  it('prints no prerequisites', () => {
    const r = spawnSync('sh', [HOOK, 'prereqs'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('');
  });

  it('without initrd.conf adds nothing and succeeds', () => {
    const r = runScript(
      HOOK,
      { DESTDIR: destdir, SYN3_HOOK_FUNCTIONS: hookFunctions, SYN3_INITRD_CONF: join(fake.dir, 'absent.conf') },
      { errexit: true },
    );
    expect(r.status).toBe(0);
    expect(r.calls).toEqual([]);
    expect(readdirSync(destdir)).toEqual([]);
  });

  it('fails the build when initrd.conf is there but cannot be copied in', () => {
    writeFileSync(join(destdir, 'etc'), 'not a directory');
    const r = runScript(HOOK, { DESTDIR: destdir, SYN3_HOOK_FUNCTIONS: hookFunctions }, { errexit: true });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/could not copy/);
  });

  it('with initrd.conf copies it, adds the xfs module and blkid', () => {
    const r = runScript(HOOK, { DESTDIR: destdir, SYN3_HOOK_FUNCTIONS: hookFunctions }, { errexit: true });
    expect(r.status).toBe(0);
    expect(readFileSync(join(destdir, 'etc/syn3-backup/initrd.conf'), 'utf8')).toBe(readFileSync(fake.conf, 'utf8'));
    expect(r.calls).toContain('manual_add_modules xfs');
    if (existsSync('/sbin/blkid') || existsSync('/usr/sbin/blkid'))
      expect(r.calls.some((c) => /^copy_exec \S*blkid \/sbin\/blkid$/.test(c))).toBe(true);
  });
});

describe('post.restore', () => {
  it('runs "syn3-backup resume" and exits with its status', () => {
    const prog = join(fake.bin, 'fake-syn3-backup');
    writeFileSync(prog, '#!/bin/sh\necho "syn3-backup $*" >>"$STUB_LOG"\nexit 4\n');
    chmodSync(prog, 0o755);
    const r = runScript(POST_RESTORE, { SYN3_BACKUP_BIN: prog });
    expect(r.status).toBe(4);
    expect(r.calls).toEqual(['syn3-backup resume']);
  });

  it('finds syn3-backup on PATH', () => {
    if (existsSync('/usr/local/bin/syn3-backup')) return; // an installed one comes first, by design
    const prog = join(fake.bin, 'syn3-backup');
    writeFileSync(prog, '#!/bin/sh\necho "syn3-backup $*" >>"$STUB_LOG"\n');
    chmodSync(prog, 0o755);
    const r = runScript(POST_RESTORE);
    expect(r.status).toBe(0);
    expect(r.calls).toEqual(['syn3-backup resume']);
  });

  it('says so when syn3-backup is nowhere', () => {
    if (existsSync('/usr/local/bin/syn3-backup')) return;
    const r = spawnSync('/bin/sh', [POST_RESTORE], { encoding: 'utf8', env: { PATH: fake.bin } });
    expect(r.status).toBe(127);
    expect(r.stderr).toMatch(/syn3-backup not found/);
  });
});

describe('systemd units and the cron job', () => {
  const unit = (name: string) => readFileSync(join(BOOT, name), 'utf8');
  it('the resume unit runs resume once, before multi-user, without a time limit', () => {
    const u = unit('syn3-backup-resume.service');
    expect(u).toMatch(/^Type=oneshot$/m);
    expect(u).toMatch(/^ExecStart=\/usr\/local\/bin\/syn3-backup .*\bresume$/m);
    expect(u).toMatch(/^TimeoutStartSec=infinity$/m);
    expect(u).toMatch(/^WantedBy=multi-user.target$/m);
    expect(u).toMatch(/^ConditionPathExists=\/etc\/syn3-backup\/config.yaml$/m);
  });
  it('the timer ticks hourly', () => {
    expect(unit('syn3-backup.timer')).toMatch(/^OnCalendar=hourly$/m);
    expect(unit('syn3-backup.service')).toMatch(/^ExecStart=\/usr\/local\/bin\/syn3-backup tick$/m);
  });
  it('the cron job ticks hourly as root with a PATH', () => {
    const lines = unit('cron')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    expect(lines).toContain('0 * * * * root /usr/local/bin/syn3-backup tick');
    expect(lines.some((l) => l.startsWith('PATH=/usr/local/sbin:/usr/local/bin:'))).toBe(true);
  });
  it('systemd-analyze verify accepts the units (when available)', () => {
    if (!onPath('systemd-analyze')) return;
    const dir = join(fake.dir, 'units');
    mkdirSync(dir);
    for (const name of ['syn3-backup-resume.service', 'syn3-backup.service', 'syn3-backup.timer']) {
      writeFileSync(join(dir, name), unit(name).replace(/\/usr\/local\/bin\/syn3-backup/g, '/bin/true'));
    }
    try {
      execFileSync(
        'systemd-analyze',
        ['verify', ...['syn3-backup-resume.service', 'syn3-backup.service', 'syn3-backup.timer'].map((n) => join(dir, n))],
        {
          encoding: 'utf8',
          stdio: 'pipe',
        },
      );
    } catch (e) {
      const stderr = String((e as { stderr?: string }).stderr ?? '');
      // Without a running systemd it cannot load the dependency graph; only complaints about our files count.
      const ours = stderr
        .split('\n')
        .filter((l) => l.includes('syn3-backup') && !/Failed to (connect|initialize|create)|bus|not booted/i.test(l));
      expect(ours).toEqual([]);
    }
  });
});
