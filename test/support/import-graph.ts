/**
 * The project's import graph, read with TypeScript's own pre-processor
 * (static imports, re-exports and dynamic import() alike), and the layering
 * rule it must keep (docs: README, "Design"). Kept apart from the test so the
 * test can also run it against a planted violation.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import ts from 'typescript';

export type Layer = 'machines' | 'library' | 'actors' | 'composition' | 'cli' | 'outside';

/** Which layers a layer may import from, besides its own. */
const MAY_IMPORT: Record<Layer, Layer[]> = {
  machines: [],
  library: ['machines'],
  actors: ['machines', 'library'],
  composition: ['machines', 'library', 'actors'],
  cli: ['machines', 'library', 'actors', 'composition'],
  // Tests, the benchmarks, the drill and the scripts drive the program from outside.
  outside: ['machines', 'library', 'actors', 'composition', 'cli'],
};

/** Packages a pure machine may use: the statechart library, and croner's date arithmetic for cron schedules; nothing that does I/O. */
const MACHINE_PACKAGES = new Set(['xstate', 'croner']);

export function layerOf(file: string): Layer {
  if (file.startsWith('machines/')) return 'machines';
  if (file.startsWith('actors/')) return 'actors';
  if (file.startsWith('src/cli/')) return 'cli';
  if (file.startsWith('src/backup/') || file.startsWith('src/restore/') || file === 'src/runner.ts' || file === 'src/steps.ts') {
    return 'composition';
  }
  if (file.startsWith('src/')) return 'library';
  return 'outside';
}

export interface Import {
  from: string;
  /** A project file (repository-relative, .ts) or a package name. */
  to: string;
  local: boolean;
}

/** Every import of each file; `files` are repository-relative .ts paths. */
export function importsOf(root: string, files: readonly string[], read = (f: string) => readFileSync(join(root, f), 'utf8')): Import[] {
  const out: Import[] = [];
  for (const from of files) {
    const info = ts.preProcessFile(read(from), true, true);
    for (const { fileName } of info.importedFiles) {
      if (fileName.startsWith('.')) {
        out.push({ from, to: normalize(join(dirname(from), fileName)).replace(/\.js$/, '.ts'), local: true });
      } else {
        out.push({ from, to: fileName, local: false });
      }
    }
  }
  return out;
}

export function layeringViolations(imports: readonly Import[]): string[] {
  const bad: string[] = [];
  for (const i of imports) {
    const from = layerOf(i.from);
    if (!i.local) {
      const pkg = i.to.startsWith('@') ? i.to.split('/').slice(0, 2).join('/') : i.to.split('/')[0]!;
      if (from === 'machines' && !MACHINE_PACKAGES.has(pkg))
        bad.push(`${i.from} imports ${i.to}: a machine uses no package but xstate and croner`);
      continue;
    }
    const to = layerOf(i.to);
    if (to !== from && !MAY_IMPORT[from].includes(to)) bad.push(`${i.from} (${from}) imports ${i.to} (${to})`);
  }
  return bad;
}

/** Import cycles among the shipped files, each as the path that closes it. */
export function cycles(imports: readonly Import[]): string[][] {
  const edges = new Map<string, string[]>();
  for (const i of imports) {
    if (!i.local || layerOf(i.from) === 'outside' || layerOf(i.to) === 'outside') continue;
    edges.set(i.from, [...(edges.get(i.from) ?? []), i.to]);
  }
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const next of edges.get(f) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of [...edges.keys()].sort()) if (!state.has(f)) visit(f);
  return found;
}
