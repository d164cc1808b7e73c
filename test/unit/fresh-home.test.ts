// What counts as a /home that holds only what a fresh installation puts there: the one case in
// which the restore may format /home before it has read the backup back in full. Each case is
// a folder built by hand with a skeleton of its own; the verdicts are written down here.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { judgeHome, MAX_ENTRIES } from '../../src/system/fresh-home.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A skeleton like Debian's /etc/skel, and an empty /home beside it. */
async function scene(): Promise<{ home: string; skel: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'syn3-fresh-home-'));
  dirs.push(dir);
  const skel = join(dir, 'skel');
  await mkdir(join(skel, '.config'), { recursive: true });
  await writeFile(join(skel, '.bashrc'), '# ~/.bashrc\nalias ll="ls -l"\n');
  await writeFile(join(skel, '.profile'), '# ~/.profile\n');
  await writeFile(join(skel, '.config', 'user-dirs.conf'), 'enabled=True\n');
  const home = join(dir, 'home');
  await mkdir(home);
  return { home, skel };
}

async function firstUser(home: string, name = 'alice'): Promise<string> {
  const h = join(home, name);
  await mkdir(join(h, '.config'), { recursive: true });
  await writeFile(join(h, '.bashrc'), '# ~/.bashrc\nalias ll="ls -l"\n');
  await writeFile(join(h, '.profile'), '# ~/.profile\n');
  return h;
}

describe('a fresh /home', () => {
  it('is an empty one', async () => {
    const { home, skel } = await scene();
    expect(await judgeHome(home, { skel })).toEqual({ fresh: true, holds: 'nothing' });
  });

  it('may hold an empty lost+found and the installer user with files from the skeleton, unchanged', async () => {
    const { home, skel } = await scene();
    await mkdir(join(home, 'lost+found'));
    await firstUser(home);
    expect(await judgeHome(home, { skel })).toEqual({ fresh: true, holds: `alice (as ${skel}), lost+found (empty)` });
  });

  it("may hold this program's own folders, empty, also nested", async () => {
    const { home, skel } = await scene();
    await mkdir(join(home, 'system', 'spool'), { recursive: true });
    await mkdir(join(home, '.syn3systembackup'));
    const verdict = await judgeHome(home, { skel, ownFolders: [join(home, 'system', 'spool'), join(home, '.syn3systembackup')] });
    expect(verdict.fresh).toBe(true);
  });
});

describe('a /home holding data', () => {
  const cases: Array<[string, (home: string) => Promise<unknown>, RegExp]> = [
    ['a file of its own at the top', (home) => writeFile(join(home, 'notes.txt'), 'x'), /notes\.txt is not a folder/],
    [
      'a file in a user folder that the skeleton lacks',
      async (home) => writeFile(join(await firstUser(home), 'thesis.odt'), 'x'),
      /thesis\.odt is not in/,
    ],
    [
      'a skeleton file changed (same size)',
      async (home) => writeFile(join(await firstUser(home), '.bashrc'), '# ~/.bashrc\nalias ll="ls -L"\n'),
      /\.bashrc differs from/,
    ],
    [
      'a skeleton file changed (longer)',
      async (home) => writeFile(join(await firstUser(home), '.profile'), '# ~/.profile\nPATH=x\n'),
      /\.profile differs/,
    ],
    [
      'a file inside a skeleton sub-folder that the skeleton lacks',
      async (home) => writeFile(join(await firstUser(home), '.config', 'mine'), 'x'),
      /mine is not in/,
    ],
    ['a symbolic link', async (home) => symlink('/etc/passwd', join(await firstUser(home), '.bashrc.link')), /\.bashrc\.link is not in/],
    [
      'a link where a skeleton file should be',
      async (home) => {
        const h = join(home, 'bob');
        await mkdir(h);
        await symlink('/etc/passwd', join(h, '.bashrc'));
      },
      /bob\/\.bashrc differs from/,
    ],
    [
      'a lost+found with something in it',
      async (home) => {
        await mkdir(join(home, 'lost+found'));
        await writeFile(join(home, 'lost+found', '#1234'), 'x');
      },
      /lost\+found is not empty/,
    ],
    [
      'its own folder, not empty',
      async (home) => {
        await mkdir(join(home, 'system', 'spool'), { recursive: true });
        await writeFile(join(home, 'system', 'spool', 'db.sql'), 'x');
      },
      /spool is not empty/,
    ],
    [
      'something else beside its own folder',
      async (home) => {
        await mkdir(join(home, 'system', 'spool'), { recursive: true });
        await mkdir(join(home, 'system', 'other'));
      },
      /system\/other is not one of this program's empty folders/,
    ],
    [
      'more entries than a fresh installation makes',
      async (home) => {
        for (let i = 0; i <= MAX_ENTRIES; i++) await mkdir(join(home, `u${i}`));
      },
      new RegExp(`more than ${MAX_ENTRIES} entries`),
    ],
  ];
  for (const [what, make, because] of cases) {
    it(`is one with ${what}`, async () => {
      const { home, skel } = await scene();
      await make(home);
      const verdict = await judgeHome(home, { skel, ownFolders: [join(home, 'system', 'spool')] });
      expect(verdict.fresh).toBe(false);
      expect(verdict.fresh ? '' : verdict.because).toMatch(because);
    });
  }
});
