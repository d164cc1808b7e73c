/**
 * One layering rule (README, "Design"): machines/ import nothing of the
 * project but machines/ (and no package but xstate and croner); the libraries in src/
 * (running programs, mounts, state, targets, configuration) import no actor
 * and nothing of the composition; actors/ use the libraries but never the
 * composition (the wirings, the runner) nor the CLI; the CLI sits on top;
 * nothing shipped imports test/, bench/, drill/ or scripts/; no import cycles.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cycles, importsOf, layerOf, layeringViolations } from '../support/import-graph.js';

const ROOT = resolve(import.meta.dirname, '../..');
const FILES = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts'], { cwd: ROOT, encoding: 'utf8' })
  .split('\n')
  .filter((f) => f.endsWith('.ts'));
const imports = importsOf(ROOT, FILES);

describe('the layering rule', () => {
  it('reads a graph that covers every layer', () => {
    const layers = new Set(FILES.map(layerOf));
    expect([...layers].sort()).toEqual(['actors', 'cli', 'composition', 'library', 'machines', 'outside']);
    // What the rule is checked against, so a reader can see it is not empty.
    const local = imports.filter((i) => i.local && layerOf(i.from) !== 'outside');
    console.info(`layering: ${FILES.length} files, ${local.length} imports between shipped files checked`);
    expect(local.length).toBeGreaterThan(100);
  });

  it('is kept: every import points to its own layer or one below', () => {
    expect(layeringViolations(imports)).toEqual([]);
  });

  it('has no import cycles among the shipped files', () => {
    expect(cycles(imports)).toEqual([]);
  });

  it('fails when an actor imports the CLI, the runner or a test', () => {
    const planted = {
      'actors/rogue.ts':
        "import { main } from '../src/cli/main.js';\nimport { runMachine } from '../src/runner.js';\nimport '../test/support/cli.js';\n",
    };
    const bad = layeringViolations(importsOf(ROOT, Object.keys(planted), (f) => planted[f as keyof typeof planted]));
    expect(bad).toEqual([
      'actors/rogue.ts (actors) imports src/cli/main.ts (cli)',
      'actors/rogue.ts (actors) imports src/runner.ts (composition)',
      'actors/rogue.ts (actors) imports test/support/cli.ts (outside)',
    ]);
  });

  it('fails when a machine does I/O or imports an actor, and when a library imports an actor', () => {
    const planted: Record<string, string> = {
      'machines/rogue.ts': "import { readFileSync } from 'node:fs';\nimport { run } from '../actors/rsync.js';\n",
      'src/targets/rogue.ts': "import { dumpHome } from '../../actors/xfsdump.js';\n",
    };
    expect(layeringViolations(importsOf(ROOT, Object.keys(planted), (f) => planted[f]!))).toEqual([
      'machines/rogue.ts imports node:fs: a machine uses no package but xstate and croner',
      'machines/rogue.ts (machines) imports actors/rsync.ts (actors)',
      'src/targets/rogue.ts (library) imports actors/xfsdump.ts (actors)',
    ]);
  });

  it('finds a cycle such as the one finish-restore once closed through the restore runner', () => {
    const planted: Record<string, string> = {
      'actors/finish-restore.ts': "import { abandon } from '../src/restore/run.js';\n",
      'src/restore/run.ts': "import { wiring } from './wiring.js';\n",
      'src/restore/wiring.ts': "const f = await import('../../actors/finish-restore.js');\n",
    };
    expect(cycles(importsOf(ROOT, Object.keys(planted), (f) => planted[f]!))).toEqual([
      ['actors/finish-restore.ts', 'src/restore/run.ts', 'src/restore/wiring.ts', 'actors/finish-restore.ts'],
    ]);
  });
});
