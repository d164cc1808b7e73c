/**
 * Comparing two machine fingerprints (written by guest/fingerprint): every
 * path's type, mode, owner, link target, content hash, size and mtime (regular
 * files), and extended attributes (ACLs are among them). A difference is a
 * failure unless an entry of the explicit list of what must differ covers it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Entry {
  type: string;
  mode: string;
  owner: string;
  size: string;
  mtime: string;
  link: string;
  sha256?: string;
  xattrs?: string;
}

export type Fingerprint = Map<string, Entry>;

export interface Allowance {
  /** A path, or a folder ending in "/" that covers everything under it. */
  path: string;
  why: string;
}

export interface Difference {
  path: string;
  what: string;
}

export interface Comparison {
  compared: number;
  failures: Difference[];
  allowed: { allowance: Allowance; count: number; examples: string[] }[];
}

export function readFingerprint(dir: string): Fingerprint {
  const entries: Fingerprint = new Map();
  for (const line of readFileSync(join(dir, 'files.tsv'), 'utf8').split('\n')) {
    if (!line) continue;
    const [type = '', mode = '', owner = '', size = '', mtime = '', path = '', link = ''] = line.split('\t');
    entries.set(path, { type, mode, owner, size, mtime, link });
  }
  for (const line of readFileSync(join(dir, 'sha256.txt'), 'utf8').split('\n')) {
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    const e = m && entries.get(m[2]!);
    if (e) e.sha256 = m[1];
  }
  for (const block of readFileSync(join(dir, 'xattrs.txt'), 'utf8').split(/\n\n+/)) {
    const m = /^# file: (.+)\n([\s\S]*)$/.exec(block.trim());
    const e = m && entries.get(m[1]!);
    if (e) e.xattrs = m[2]!.split('\n').sort().join('\n');
  }
  return entries;
}

export function compareFingerprints(before: Fingerprint, after: Fingerprint, allowances: readonly Allowance[]): Comparison {
  const differences: Difference[] = [];
  for (const [path, a] of before) {
    const b = after.get(path);
    if (!b) {
      differences.push({ path, what: 'missing after the restore' });
      continue;
    }
    const changed: string[] = [];
    for (const field of ['type', 'mode', 'owner', 'link'] as const)
      if (a[field] !== b[field]) changed.push(`${field} ${a[field]} → ${b[field]}`);
    if (a.type === 'f') {
      if (a.sha256 !== b.sha256) changed.push('content');
      if (a.size !== b.size) changed.push(`size ${a.size} → ${b.size}`);
      if (a.mtime.split('.')[0] !== b.mtime.split('.')[0]) changed.push('mtime');
    }
    if ((a.xattrs ?? '') !== (b.xattrs ?? '')) changed.push('xattrs/ACLs');
    if (changed.length) differences.push({ path, what: changed.join(', ') });
  }
  for (const path of after.keys()) if (!before.has(path)) differences.push({ path, what: 'new after the restore' });

  const allowed = allowances.map((allowance) => ({ allowance, count: 0, examples: [] as string[] }));
  const failures: Difference[] = [];
  for (const d of differences) {
    const hit = allowed.find((a) => covers(a.allowance.path, d.path));
    if (!hit) failures.push(d);
    else {
      hit.count++;
      if (hit.examples.length < 3) hit.examples.push(`${d.path} (${d.what})`);
    }
  }
  return { compared: before.size, failures, allowed };
}

function covers(allowance: string, path: string): boolean {
  return allowance.endsWith('/') ? path.startsWith(allowance) || path === allowance.slice(0, -1) : path === allowance;
}
