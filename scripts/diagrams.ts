/**
 * Draws each state machine's flow into diagrams/: a Mermaid state diagram in
 * markdown (readable in a code review, rendered by the forge) and an SVG laid
 * out by Graphviz (viewable anywhere, offline). Both come from the machine
 * definitions themselves, so they cannot drift from the code unnoticed:
 *
 *   node dist/scripts/diagrams.js          write diagrams/<name>.md and .svg
 *   node dist/scripts/diagrams.js --check  exit 1 if any file is stale or missing
 *
 * The machine's own StateNode tree is walked rather than @xstate/graph's
 * toDirectedGraph: the tree keeps the invoked actors' names, the guards and the
 * nesting as written, which is what a reader of machines/ needs to recognise.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { instance, type Viz } from '@viz-js/viz';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { backupMachine } from '../machines/backup.js';
import { restoreMachine } from '../machines/restore.js';

/** The machines to draw: adding one is one line (and its import). */
export const MACHINES: readonly MachineSource[] = [
  { name: 'backup', source: 'machines/backup.ts', machine: backupMachine },
  { name: 'restore', source: 'machines/restore.ts', machine: restoreMachine },
];

export interface MachineSource {
  /** File stem in diagrams/. */
  name: string;
  /** Where the definition lives, named in the generated markdown. */
  source: string;
  machine: AnyStateMachine;
}

// ---------------------------------------------------------------------------
// A renderer-neutral model of the machine: both outputs are drawn from it.

type StateKind = AnyStateNode['type'];

export interface DiagramState {
  /** XState's unique id, e.g. "backup.running.preflight". */
  id: string;
  key: string;
  path: readonly string[];
  kind: StateKind;
  /** Sources of the actors this state invokes, in definition order. */
  invokes: string[];
  children: DiagramState[];
  /** Id of the initial child of a compound state. */
  initial?: string;
}

export interface DiagramEdge {
  from: DiagramState;
  to: DiagramState;
  label: string;
}

export interface Diagram {
  root: DiagramState;
  edges: DiagramEdge[];
}

/** The transition fields used here; XState's own types are generic over the machine. */
interface TransitionLike {
  target?: ReadonlyArray<AnyStateNode> | undefined;
  guard?: unknown;
}

const INLINE_ACTOR_PREFIX = 'xstate.invoke.';

function actorName(src: unknown): string {
  // XState names an inline (non-`setup`) actor after its invoke id; nothing a reader would recognise.
  return typeof src === 'string' && !src.startsWith(INLINE_ACTOR_PREFIX) ? src : 'inline actor';
}

function toDiagramState(node: AnyStateNode): DiagramState {
  const children = Object.values(node.states).map(toDiagramState);
  const initialTarget = node.type === 'compound' ? node.initial.target[0] : undefined;
  return {
    id: node.id,
    key: node.key,
    path: node.path,
    kind: node.type,
    invokes: node.invoke.map((def) => actorName(def.src)),
    children,
    ...(initialTarget ? { initial: initialTarget.id } : {}),
  };
}

/** Names a guard as written: a string, a parameterised object, or and()/or()/not() of those. */
export function describeGuard(guard: unknown): string {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const inner: unknown = (guard as { guards?: unknown }).guards;
    if (Array.isArray(inner)) return `${guard.name}(${inner.map(describeGuard).join(', ')})`;
    return guard.name || 'guard';
  }
  if (guard && typeof guard === 'object' && 'type' in guard && typeof guard.type === 'string') return guard.type;
  return 'guard';
}

/** Turns XState's internal event descriptors back into what the definition says. */
function describeEvent(descriptor: string, node: AnyStateNode): string {
  const actorEvent = /^xstate\.(done|error|snapshot)\.actor\.(.+)$/.exec(descriptor);
  if (actorEvent) {
    const [, kind, invokeId] = actorEvent;
    const def = node.invoke.find((d) => d.id === invokeId);
    return `${kind}: ${def ? actorName(def.src) : invokeId}`;
  }
  if (descriptor === `xstate.done.state.${node.id}`) return 'done';
  const afterPrefix = 'xstate.after.';
  const afterSuffix = `.${node.id}`;
  if (descriptor.startsWith(afterPrefix) && descriptor.endsWith(afterSuffix)) {
    const delay = descriptor.slice(afterPrefix.length, -afterSuffix.length);
    return /^\d+$/.test(delay) ? `after ${delay} ms` : `after ${delay}`;
  }
  return descriptor;
}

function edgeLabel(event: string, transition: TransitionLike): string {
  return transition.guard === undefined ? event : `${event} [${describeGuard(transition.guard)}]`;
}

/** Builds the model: states in definition order, edges in definition order per state. */
export function describeMachine(machine: AnyStateMachine): Diagram {
  const root = toDiagramState(machine.root);
  const byId = new Map<string, DiagramState>();
  const index = (s: DiagramState): void => {
    byId.set(s.id, s);
    s.children.forEach(index);
  };
  index(root);
  const lookup = (id: string): DiagramState => {
    const state = byId.get(id);
    if (!state) throw new Error(`state ${id} is not in machine ${machine.id}`);
    return state;
  };

  const edges: DiagramEdge[] = [];
  const collect = (node: AnyStateNode): void => {
    const from = lookup(node.id);
    const add = (event: string, transitions: ReadonlyArray<TransitionLike>): void => {
      for (const t of transitions) {
        // A targetless transition only runs actions: draw it as a self-loop so it is not lost.
        const targets = t.target && t.target.length > 0 ? t.target : [node];
        for (const target of targets) edges.push({ from, to: lookup(target.id), label: edgeLabel(event, t) });
      }
    };
    for (const [descriptor, transitions] of node.transitions) add(describeEvent(descriptor, node), transitions);
    if (node.always) add('always', node.always);
    Object.values(node.states).forEach(collect);
  };
  collect(machine.root);
  return { root, edges };
}

function isCompound(s: DiagramState): boolean {
  return s.kind === 'compound' || s.kind === 'parallel';
}

function isInside(s: DiagramState, ancestor: DiagramState): boolean {
  return ancestor.path.every((key, i) => s.path[i] === key) && s.path.length > ancestor.path.length;
}

// ---------------------------------------------------------------------------
// Mermaid

/** Mermaid ids share one namespace across nesting levels, so keys are qualified by their path. */
function mermaidId(s: DiagramState): string {
  return s.path.join('_').replace(/[^A-Za-z0-9_]/g, '_');
}

/** Mermaid ends a label at ';' or '#' (and a newline); keep labels on one clean line. */
function mermaidText(text: string): string {
  return text.replace(/[;#\n]/g, ' ');
}

function mermaidStateLines(s: DiagramState, indent: string): string[] {
  const id = mermaidId(s);
  const lines: string[] = [];
  const alias = s.key === id ? '' : `"${mermaidText(s.key)}" as `;
  if (isCompound(s)) {
    lines.push(`${indent}state ${alias}${id} {`);
    lines.push(...mermaidBody(s, `${indent}  `));
    lines.push(`${indent}}`);
  } else if (alias) {
    lines.push(`${indent}state ${alias}${id}`);
  } else {
    lines.push(`${indent}${id}`);
  }
  for (const src of s.invokes) lines.push(`${indent}${id} : invoke ${mermaidText(src)}`);
  return lines;
}

function mermaidBody(parent: DiagramState, indent: string): string[] {
  const lines: string[] = [];
  const initial = parent.children.find((c) => c.id === parent.initial);
  if (initial) lines.push(`${indent}[*] --> ${mermaidId(initial)}`);
  parent.children.forEach((child, i) => {
    // Regions of a parallel state are separated by "--" in Mermaid.
    if (parent.kind === 'parallel' && i > 0) lines.push(`${indent}--`);
    lines.push(...mermaidStateLines(child, indent));
    if (child.kind === 'final') lines.push(`${indent}${mermaidId(child)} --> [*]`);
  });
  return lines;
}

/** Path-joined ids could in principle collide ("a_b.c" and "a.b_c"): fail loudly rather than merge two states. */
function assertUniqueMermaidIds(root: DiagramState): void {
  const seen = new Map<string, string>();
  const visit = (s: DiagramState): void => {
    const id = mermaidId(s);
    const other = seen.get(id);
    if (other !== undefined) throw new Error(`diagrams: states ${other} and ${s.id} both map to Mermaid id ${id}`);
    seen.set(id, s.id);
    s.children.forEach(visit);
  };
  root.children.forEach(visit);
}

export function toMermaid(diagram: Diagram): string {
  assertUniqueMermaidIds(diagram.root);
  const lines = ['stateDiagram-v2', ...mermaidBody(diagram.root, '  ')];
  // Edges go after every state is declared: an edge naming a state inside a
  // composite block would otherwise make Mermaid create it there.
  for (const e of diagram.edges) lines.push(`  ${mermaidId(e.from)} --> ${mermaidId(e.to)} : ${mermaidText(e.label)}`);
  return lines.join('\n');
}

export function toMarkdown(entry: MachineSource, diagram: Diagram): string {
  return [
    `# ${entry.name} machine`,
    '',
    `Generated from \`${entry.source}\` by \`scripts/diagrams.ts\`: do not edit, run \`npm run diagrams\`.`,
    `The same graph laid out by Graphviz: [${entry.name}.svg](${entry.name}.svg).`,
    '',
    '```mermaid',
    toMermaid(diagram),
    '```',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------
// Graphviz DOT

function dotString(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function htmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function clusterName(s: DiagramState): string {
  return dotString(`cluster_${s.id}`);
}

/**
 * Graphviz cannot point an edge at a cluster, so a compound state is
 * represented by its start point inside the cluster; lhead/ltail then clip the
 * edge at the cluster's border.
 */
function anchor(s: DiagramState): string {
  return isCompound(s) ? dotString(`${s.id}.[*]`) : dotString(s.id);
}

function dotLeaf(s: DiagramState, indent: string): string {
  const name = `<b>${htmlText(s.key)}</b>`;
  const invokes = s.invokes.map((src) => `<br/><font point-size="10" color="#555555">invoke ${htmlText(src)}</font>`);
  const shape = s.kind === 'final' ? ', peripheries=2' : '';
  return `${indent}${dotString(s.id)} [label=<${name}${invokes.join('')}>${shape}];`;
}

function dotCluster(s: DiagramState, indent: string): string[] {
  const inner = `${indent}  `;
  const invokes = s.invokes.map((src) => `\\ninvoke ${src}`).join('');
  const lines = [
    `${indent}subgraph ${clusterName(s)} {`,
    `${inner}label=${dotString(s.key + invokes)}; style=${s.kind === 'parallel' ? '"rounded,dashed"' : 'rounded'};`,
    `${inner}${anchor(s)} [shape=point, width=0.12, label=""];`,
    ...dotStartEdges(s, inner),
    ...s.children.flatMap((c) => dotState(c, inner)),
    `${indent}}`,
  ];
  return lines;
}

/** The start point's arrows: to the initial child, or to every region of a parallel state. */
function dotStartEdges(s: DiagramState, indent: string): string[] {
  const targets = s.kind === 'parallel' ? s.children : s.children.filter((c) => c.id === s.initial);
  return targets.map((t) => `${indent}${anchor(s)} -> ${anchor(t)}${isCompound(t) ? ` [lhead=${clusterName(t)}]` : ''};`);
}

function dotState(s: DiagramState, indent: string): string[] {
  return isCompound(s) ? dotCluster(s, indent) : [dotLeaf(s, indent)];
}

/** Position of every state in a pre-order walk: the order the definition reads in. */
function definitionOrder(root: DiagramState): Map<DiagramState, number> {
  const order = new Map<DiagramState, number>();
  const visit = (s: DiagramState): void => {
    order.set(s, order.size);
    s.children.forEach(visit);
  };
  visit(root);
  return order;
}

function dotEdge(e: DiagramEdge, order: ReadonlyMap<DiagramState, number>): string {
  const attrs = [`label=${dotString(` ${e.label} `)}`];
  // An edge back to an earlier state (retry, return to idle) is laid out
  // reversed and drawn with its arrow flipped: otherwise Graphviz may rank the
  // earlier state below the run, and the flow no longer reads top-down.
  const back = (order.get(e.to) ?? 0) < (order.get(e.from) ?? 0);
  const [tail, head] = back ? [e.to, e.from] : [e.from, e.to];
  if (back) attrs.push('dir=back');
  // Clipping is only possible when the other end lies outside the cluster.
  if (isCompound(tail) && !isInside(head, tail) && e.to !== e.from) attrs.push(`ltail=${clusterName(tail)}`);
  if (isCompound(head) && !isInside(tail, head) && e.to !== e.from) attrs.push(`lhead=${clusterName(head)}`);
  return `  ${anchor(tail)} -> ${anchor(head)} [${attrs.join(', ')}];`;
}

export function toDot(diagram: Diagram): string {
  const { root } = diagram;
  const order = definitionOrder(root);
  return [
    `digraph ${dotString(root.id)} {`,
    `  graph [compound=true, rankdir=TB, fontname="Helvetica", fontsize=12, labelloc=t, label=${dotString(`${root.id} machine`)}, nodesep=0.4, ranksep=0.45];`,
    '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=12, margin="0.2,0.06"];',
    '  edge [fontname="Helvetica", fontsize=10, color="#333333"];',
    `  ${anchor(root)} [shape=point, width=0.15, label=""];`,
    ...dotStartEdges(root, '  '),
    ...root.children.flatMap((c) => dotState(c, '  ')),
    ...diagram.edges.map((e) => dotEdge(e, order)),
    '}',
    '',
  ].join('\n');
}

function renderSvg(viz: Viz, dot: string): string {
  const result = viz.render(dot, { format: 'svg', engine: 'dot' });
  if (result.status !== 'success') {
    throw new Error(`graphviz failed: ${result.errors.map((e) => e.message).join('; ')}`);
  }
  // Warnings (e.g. an lhead Graphviz could not honour) still give a picture; say so rather than fail.
  for (const e of result.errors) process.stderr.write(`diagrams: graphviz ${e.level ?? 'note'}: ${e.message}\n`);
  return result.output;
}

// ---------------------------------------------------------------------------
// Files

/** Every generated file, keyed by its name inside diagrams/, in MACHINES order. */
export async function renderAll(machines: readonly MachineSource[] = MACHINES): Promise<Map<string, string>> {
  const viz = await instance();
  const files = new Map<string, string>();
  for (const entry of machines) {
    const diagram = describeMachine(entry.machine);
    files.set(`${entry.name}.md`, toMarkdown(entry, diagram));
    files.set(`${entry.name}.svg`, renderSvg(viz, toDot(diagram)));
  }
  return files;
}

/** Names (inside `dir`) of the files that are missing or differ from what the machines generate. */
export async function checkDiagrams(dir: string, machines: readonly MachineSource[] = MACHINES): Promise<string[]> {
  const stale: string[] = [];
  for (const [name, expected] of await renderAll(machines)) {
    const actual = await readFile(join(dir, name), 'utf8').catch(() => undefined);
    if (actual !== expected) stale.push(name);
  }
  return stale;
}

export async function writeDiagrams(dir: string, machines: readonly MachineSource[] = MACHINES): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, content] of await renderAll(machines)) {
    await writeFile(join(dir, name), content);
    written.push(name);
  }
  return written;
}

/** The repository root: the nearest folder with a package.json, whether run from scripts/ or dist/scripts/. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('diagrams: no package.json above the script');
    dir = parent;
  }
  return dir;
}

async function main(args: readonly string[]): Promise<number> {
  const dir = join(repoRoot(), 'diagrams');
  if (args.includes('--check')) {
    const stale = await checkDiagrams(dir);
    for (const name of stale) {
      const why = existsSync(join(dir, name)) ? 'stale' : 'missing';
      process.stderr.write(`diagrams: ${why}: diagrams/${name}\n`);
    }
    if (stale.length > 0) {
      process.stderr.write('diagrams: out of date with the machine definitions: run npm run diagrams\n');
      return 1;
    }
    process.stdout.write('diagrams: up to date\n');
    return 0;
  }
  for (const name of await writeDiagrams(dir)) process.stdout.write(`diagrams: wrote diagrams/${name}\n`);
  return 0;
}

// Only as the entry point: the tests import this module for its functions.
const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(entry).href) {
  process.exitCode = await main(process.argv.slice(2));
}
