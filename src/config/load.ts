/**
 * Reads the YAML configuration, validates it and turns it into the effective
 * Config. Every rejection names the file and line and says how to fix it.
 */
import { lstatSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LineCounter, parseDocument, isMap, isScalar, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { UserError } from '../errors.js';
import { requireTrusted } from '../system/trust.js';
import { configSchema, type Config, type RawConfig, type Schedule } from './schema.js';

export const DEFAULT_CONFIG_FILE = '/etc/syn3-backup/config.yaml';

export function loadConfig(file: string = DEFAULT_CONFIG_FILE): Config {
  // It names what runs as root, what is deleted and where secrets are read: only root may have written it.
  // (A missing file gets the message below, which says how to make one.)
  if (lstatOrUndefined(file)) requireTrusted(file, 'file', 'the configuration file');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(
      'config',
      code === 'ENOENT' ? 'the configuration file does not exist' : `cannot read the configuration file (${code})`,
      {
        where: file,
        hint: 'Create it (see "Configuration" in the README, or run "syn3-backup config example") or name another with --config FILE',
      },
    );
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file: string): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax) {
    // An over-indented "key: value" line continues the value above it: yaml reports where that value
    // starts, but the line to fix is the one where that multi-line implicit key ends.
    const multiline = doc.errors.find((e) => e.code === 'MULTILINE_IMPLICIT_KEY');
    const at = lines.linePos(multiline ? multiline.pos[1] : syntax.pos[0]);
    throw new UserError('config', `the YAML is malformed: ${firstLine(syntax.message)}`, {
      where: `${file}:${at.line}`,
      hint: 'Fix the indentation or quoting on that line (a value with ":" or "#" needs quotes)',
    });
  }
  const data: unknown = doc.toJS() ?? {};
  // reportInput: without it zod leaves issue.input unset, and every wrong type would read as a missing key.
  const parsed = configSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) {
    // A misspelt key ("targett") also makes the right one missing: name the typo, which says how to fix both.
    const issue = parsed.error.issues.find((i) => i.code === 'unrecognized_keys') ?? parsed.error.issues[0]!;
    throw new UserError('config', describeIssue(issue), {
      where: `${file}:${lineOf(doc, lines, issue)}`,
      hint: hintFor(issue),
    });
  }
  return effective(parsed.data, file, doc.hasIn(['paths', 'modules']));
}

function lstatOrUndefined(file: string): ReturnType<typeof lstatSync> | undefined {
  try {
    return lstatSync(file);
  } catch {
    return undefined;
  }
}

function effective(raw: RawConfig, file: string, modulesExplicit: boolean): Config {
  const home = raw.paths.home;
  const schedule: Schedule = raw.schedule.daily
    ? { kind: 'daily', at: raw.schedule.daily }
    : raw.schedule.every
      ? { kind: 'every', ms: raw.schedule.every }
      : { kind: 'cron', expr: raw.schedule.cron! };
  return {
    file,
    host: raw.host ?? hostname(),
    schedule,
    mode: raw.mode,
    snapshot: raw.snapshot,
    compression: raw.compression,
    paths: {
      ...raw.paths,
      systemCopy: join(home, '.syn3systembackup'),
      spool: join(home, 'system', 'spool'),
    },
    modulesExplicit,
    moduleTimeoutMs: raw.modules.timeout,
    systemSyncExclude: raw.system_sync.exclude,
    target: raw.target,
    restore: raw.restore,
    trust: raw.trust,
  };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const at = issue.path.length ? `"${issue.path.join('.')}"` : 'the top level';
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => `"${k}"`).join(', ');
    return `unknown key ${keys} in ${at}`;
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) return `${at} is missing`;
  if (issue.code === 'invalid_type') return `${at} must be ${EXPECTED[issue.expected] ?? issue.expected}, not ${kindOf(issue.input)}`;
  if (issue.code === 'invalid_union' || (issue.code === 'invalid_value' && issue.path.at(-1) === 'type')) {
    return `${at} has an unsupported value`;
  }
  return `${at} ${issue.message.replace(/^Invalid input: /, '')}`;
}

const EXPECTED: Record<string, string> = {
  object: 'a mapping (key: value lines)',
  array: 'a list',
  string: 'text',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
};

function kindOf(value: unknown): string {
  if (value === null) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the text ${JSON.stringify(value)}`;
  return `${typeof value === 'number' ? 'the number' : 'the value'} ${String(value)}`;
}

const TARGET_TYPES = ['file', 'smb', 'ftp', 's3', 'tape'];

const KNOWN_KEYS: Record<string, string[]> = {
  '': ['host', 'schedule', 'mode', 'snapshot', 'compression', 'paths', 'modules', 'system_sync', 'target', 'restore', 'trust'],
  trust: ['signing_key', 'public_keys'],
  restore: ['grub_devices', 'update_grub', 'update_initramfs', 'stop_timeout'],
  schedule: ['daily', 'every', 'cron'],
  paths: ['root', 'boot', 'home', 'state', 'modules'],
  modules: ['timeout'],
  snapshot: ['size', 'freeze_timeout'],
  system_sync: ['exclude'],
  target: ['type', 'path', 'require_mount', 'retention'],
  'target.retention': ['keep'],
};

function hintFor(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    const known = KNOWN_KEYS[issue.path.join('.')] ?? [];
    const guess = closest(issue.keys[0] ?? '', known);
    const list = known.length ? ` Known keys there: ${known.join(', ')}.` : '';
    return `${guess ? `Did you mean "${guess}"?` : 'Remove it.'}${list}`;
  }
  const field = issue.path.join('.');
  if (field === 'target.type' || field === 'target') return `Supported target types: ${TARGET_TYPES.join(', ')}`;
  if (field === 'target.secure') {
    return 'Write secure: true for FTPS (AUTH TLS), or secure: false to accept that the password and the backups cross the network in clear';
  }
  if (field === 'mode')
    return 'Use mode: spool (modules/*.backup dump the databases first) or mode: snapshot (/home on LVM, frozen briefly)';
  if (field === 'snapshot.size') return 'Write size: 20% (of the volume of /home) or size: 4G; the volume group needs that much free';
  if (field.startsWith('schedule')) return 'Write one of: daily: "02:00", every: 6h, cron: "0 2 * * 1-5"';
  return 'See "Configuration" in the README for the allowed values';
}

function lineOf(doc: Document, lines: LineCounter, issue: z.core.$ZodIssue): number {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  let node = path.length ? (doc.getIn(path, true) as Node | undefined) : (doc.contents as Node | null);
  // A missing key has no node: point at its nearest parent instead.
  for (let n = path.length - 1; !node && n >= 0; n--) node = doc.getIn(path.slice(0, n), true) as Node | undefined;
  if (issue.code === 'unrecognized_keys' && isMap(node)) {
    const pair = node.items.find((i) => isScalar(i.key) && i.key.value === issue.keys[0]);
    if (pair && isScalar(pair.key) && pair.key.range) return lines.linePos(pair.key.range[0]).line;
  }
  const offset = node?.range?.[0];
  return offset === undefined ? 1 : lines.linePos(offset).line;
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}
