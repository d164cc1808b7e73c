/**
 * The drill's verdict on a restored machine rests on compareFingerprints: it
 * must see every kind of difference, and let through only what the explicit
 * list of allowed differences names.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compareFingerprints, readFingerprint, type Allowance } from '../../drill/fingerprint.js';

const HASH_A = 'a'.repeat(64);
const HASH_B = 'b'.repeat(64);
const dirs: string[] = [];

interface Row {
  type?: string;
  mode?: string;
  owner?: string;
  size?: string;
  mtime?: string;
  link?: string;
  sha256?: string;
  xattrs?: string[];
}

/** Writes a fingerprint folder as guest/fingerprint does. */
function fingerprint(rows: Record<string, Row>): string {
  const dir = mkdtempSync(join(tmpdir(), 'syn3-fp-'));
  dirs.push(dir);
  const files: string[] = [];
  const hashes: string[] = [];
  const xattrs: string[] = [];
  for (const [path, r] of Object.entries(rows)) {
    files.push(
      [r.type ?? 'f', r.mode ?? '0644', r.owner ?? '0:0', r.size ?? '5', r.mtime ?? '1700000000.5', path, r.link ?? ''].join('\t'),
    );
    if ((r.type ?? 'f') === 'f') hashes.push(`${r.sha256 ?? HASH_A}  ${path}`);
    if (r.xattrs) xattrs.push(`# file: ${path}\n${r.xattrs.join('\n')}\n`);
  }
  writeFileSync(join(dir, 'files.tsv'), `${files.join('\n')}\n`);
  writeFileSync(join(dir, 'sha256.txt'), `${hashes.join('\n')}\n`);
  writeFileSync(join(dir, 'xattrs.txt'), xattrs.join('\n'));
  return dir;
}

function compare(before: Record<string, Row>, after: Record<string, Row>, allowances: Allowance[] = []) {
  return compareFingerprints(readFingerprint(fingerprint(before)), readFingerprint(fingerprint(after)), allowances);
}

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('compareFingerprints', () => {
  it('finds nothing between two equal machines', () => {
    const m = { '/etc/hostname': {}, '/home': { type: 'd', mode: '0755' }, '/home/l': { type: 'l', link: 'x' } };
    expect(compare(m, m)).toMatchObject({ compared: 3, failures: [] });
  });

  it('sees changed content, owner, mode and link targets', () => {
    const r = compare(
      { '/a': {}, '/b': {}, '/c': {}, '/d': { type: 'l', link: 'one' } },
      { '/a': { sha256: HASH_B }, '/b': { owner: '1001:1001' }, '/c': { mode: '04750' }, '/d': { type: 'l', link: 'two' } },
    );
    expect(r.failures.map((f) => [f.path, f.what])).toEqual([
      ['/a', 'content'],
      ['/b', 'owner 0:0 → 1001:1001'],
      ['/c', 'mode 0644 → 04750'],
      ['/d', 'link one → two'],
    ]);
  });

  it('sees a lost ACL or xattr', () => {
    const acl = 'system.posix_acl_access=0x0200';
    const r = compare({ '/home/p': { xattrs: [acl, 'user.origin=0x6472696c6c'] } }, { '/home/p': { xattrs: [acl] } });
    expect(r.failures).toEqual([{ path: '/home/p', what: 'xattrs/ACLs' }]);
  });

  it('sees missing and new paths', () => {
    const r = compare({ '/gone': {} }, { '/new': {} });
    expect(r.failures).toEqual([
      { path: '/gone', what: 'missing after the restore' },
      { path: '/new', what: 'new after the restore' },
    ]);
  });

  it('compares the mtime of files to the second, and not that of directories', () => {
    const r = compare(
      { '/f': { mtime: '1700000000.1' }, '/g': { mtime: '1700000000.1' }, '/d': { type: 'd', mtime: '1' } },
      { '/f': { mtime: '1700000000.9' }, '/g': { mtime: '1700000001.1' }, '/d': { type: 'd', mtime: '2' } },
    );
    expect(r.failures).toEqual([{ path: '/g', what: 'mtime' }]);
  });

  it('lets through only what an allowance covers, and counts it', () => {
    const allowances = [
      { path: '/var/log/', why: 'logs' },
      { path: '/etc/exact', why: 'one file' },
    ];
    const r = compare(
      { '/var/log/syslog': {}, '/var/logbook': {}, '/etc/exact': {}, '/etc/exact2': {} },
      {
        '/var/log/syslog': { sha256: HASH_B },
        '/var/logbook': { sha256: HASH_B },
        '/etc/exact': { sha256: HASH_B },
        '/etc/exact2': { sha256: HASH_B },
      },
      allowances,
    );
    expect(r.failures.map((f) => f.path)).toEqual(['/var/logbook', '/etc/exact2']);
    expect(r.allowed.map((a) => [a.allowance.path, a.count])).toEqual([
      ['/var/log/', 1],
      ['/etc/exact', 1],
    ]);
  });
});
