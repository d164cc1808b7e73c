/**
 * diagrams/ must match the machine definitions: the committed files are
 * checked as `npm run diagrams:check` checks them, and the check is shown to
 * catch a stale or missing file.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { backupMachine } from '../../machines/backup.js';
import { checkDiagrams, describeMachine, renderAll, toMermaid } from '../../scripts/diagrams.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const temps: string[] = [];

afterEach(async () => {
  await Promise.all(temps.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function freshCopy(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'syn3-diagrams-'));
  temps.push(dir);
  for (const [name, content] of await renderAll()) await writeFile(join(dir, name), content);
  return dir;
}

describe('diagrams', () => {
  it('committed diagrams are current (diagrams --check exits 0)', () => {
    // The suite runs after `npm run build`, which compiles the script to dist/.
    const run = spawnSync(process.execPath, ['dist/scripts/diagrams.js', '--check'], { cwd: root, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('reports a tampered file and a missing one as stale', async () => {
    const dir = await freshCopy();
    expect(await checkDiagrams(dir)).toEqual([]);

    await writeFile(join(dir, 'backup.md'), '# backup machine\n\nedited by hand\n');
    await unlink(join(dir, 'backup.svg'));
    expect(await checkDiagrams(dir)).toEqual(['backup.md', 'backup.svg']);
  });

  it('draws the backup flow from the definition', () => {
    const mermaid = toMermaid(describeMachine(backupMachine));
    expect(mermaid).toContain('state running {');
    expect(mermaid).toContain('[*] --> running_preflight');
    expect(mermaid).toContain('idle --> running : TICK [isDue]');
    expect(mermaid).toContain('running_preflight --> failed : error: checkReady');
    expect(mermaid).toContain('running_preflight : invoke checkReady');
  });
});
