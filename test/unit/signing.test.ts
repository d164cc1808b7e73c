// The signing primitives and the strict metadata schema: a public key line
// as openssl sees the key, a canonical form that ignores key order but not
// content, a signature that fails on any change, and metadata fields that
// cannot carry anything into a shell or an mkfs command line.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PUBLIC_KEY_PATTERN } from '../../src/config/trust-config.js';
import { canonicalJson, signedBytes } from '../../src/signing/canonical.js';
import { createSigningKey, parsePublicKey, publicKeyText, readSigningKey } from '../../src/signing/keys.js';
import { checkSignature, signMetadata } from '../../src/signing/signature.js';
import { validateMetadata } from '../../src/targets/kit/metadata.js';
import { METADATA_FORMAT, type BackupMetadata } from '../../src/targets/target.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'syn3-signing-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const fs = (mountPoint: string, fsType = 'xfs') => ({
  mountPoint,
  device: '/dev/vda1',
  fsType,
  uuid: randomUUID(),
  label: 'root disk',
  sizeBytes: 1 << 30,
  xfs: { 'data.bsize': 4096 },
});

function metadata(): BackupMetadata {
  return {
    format: METADATA_FORMAT,
    id: 'web1-20260101T000000Z',
    host: 'web1',
    created: '2026-01-01T00:10:00.000Z',
    startedAt: '2026-01-01T00:00:00.000Z',
    size: 1234,
    sha256: 'a'.repeat(64),
    compression: 'none',
    tool: 'xfsdump',
    program: 'syn3-backup 0.1.0',
    layout: { root: fs('/'), boot: fs('/boot', 'ext4'), home: fs('/home') },
  };
}

/** The same value with every object's keys in reverse order, as another JSON writer might leave them. */
function reversedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([k, v]) => [k, reversedKeys(v)]),
  );
}

describe('keys', () => {
  it('the public key line is the raw 32 bytes openssl finds in the key, and matches trust.public_keys syntax', () => {
    const file = join(dir, 'k.pem');
    const printed = createSigningKey(file);
    expect(printed).toMatch(PUBLIC_KEY_PATTERN);
    const der = execFileSync('openssl', ['pkey', '-in', file, '-pubout', '-outform', 'DER']);
    expect(printed).toBe(`ed25519:${der.subarray(der.length - 32).toString('base64')}`);
    expect(publicKeyText(readSigningKey(file))).toBe(printed);
    expect(parsePublicKey(printed)).toBeDefined();
    expect(parsePublicKey('ed25519:short=')).toBeUndefined();
  });

  it('key init writes 0600, refuses to overwrite, and does not follow a link', () => {
    const file = join(dir, 'sub', 'k.pem');
    createSigningKey(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const before = readFileSync(file, 'utf8');
    expect(() => createSigningKey(file)).toThrow(/already there; it is not replaced/);
    expect(readFileSync(file, 'utf8')).toBe(before);
    const link = join(dir, 'link.pem');
    symlinkSync(join(dir, 'elsewhere'), link);
    expect(() => createSigningKey(link)).toThrow();
    expect(() => statSync(join(dir, 'elsewhere'))).toThrow(/ENOENT/);
  });

  it('a key readable by group or others, a link, a missing file and a non-Ed25519 key are refused', () => {
    const file = join(dir, 'k.pem');
    createSigningKey(file);
    chmodSync(file, 0o640);
    expect(() => readSigningKey(file)).toThrow(/group or others can read it/);
    chmodSync(file, 0o600);
    const link = join(dir, 'link.pem');
    symlinkSync(file, link);
    expect(() => readSigningKey(link)).toThrow(/symbolic link/);
    expect(() => readSigningKey(join(dir, 'absent.pem'))).toThrow(/there is no signing key/);
    const rsa = join(dir, 'rsa.pem');
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    writeFileSync(rsa, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    expect(() => readSigningKey(rsa)).toThrow(/not Ed25519/);
  });
});

describe('canonical form and signature', () => {
  it('key order does not matter; content does; the signature itself is left out', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: 'x' } })).toBe('{"a":{"c":"x","d":[2,1]},"b":1}');
    const m = metadata();
    const reordered = reversedKeys(m) as BackupMetadata;
    expect(JSON.stringify(reordered)).not.toBe(JSON.stringify(m));
    expect(signedBytes(reordered).equals(signedBytes(m))).toBe(true);
    expect(signedBytes({ ...m, size: 1235 }).equals(signedBytes(m))).toBe(false);
    expect(signedBytes({ ...m, signature: { key: 'x', sig: 'y' } }).equals(signedBytes(m))).toBe(true);
  });

  it('a signature holds for its key, on reordered metadata too, and on nothing changed', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pub = publicKeyText(privateKey);
    const signed = signMetadata(metadata(), privateKey);
    expect(validateMetadata(signed).ok).toBe(true);
    expect(checkSignature(signed, [pub])).toEqual({ status: 'trusted', key: pub });
    const reordered = reversedKeys(signed) as BackupMetadata;
    expect(checkSignature(reordered, [pub]).status).toBe('trusted');
    const changes: Array<(m: BackupMetadata) => BackupMetadata> = [
      (m) => ({ ...m, sha256: 'b'.repeat(64) }),
      (m) => ({ ...m, size: m.size + 1 }),
      (m) => ({ ...m, host: 'web2' }),
      (m) => ({ ...m, layout: { ...m.layout, root: { ...m.layout.root, uuid: randomUUID() } } }),
      (m) => ({ ...m, compression: 'zstd' }),
    ];
    for (const change of changes) expect(checkSignature(change(signed), [pub]).status).toBe('invalid');
  });

  it('covers the count of times the dump could not keep: a signature over it holds, and fails once the count is changed', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pub = publicKeyText(privateKey);
    const signed = signMetadata({ ...metadata(), unkeptTimes: { count: 8, first: ['alice/dated-2100'] } }, privateKey);
    expect(validateMetadata(signed).ok).toBe(true);
    expect(checkSignature(signed, [pub]).status).toBe('trusted');
    expect(checkSignature({ ...signed, unkeptTimes: { count: 7, first: ['alice/dated-2100'] } }, [pub]).status).toBe('invalid');
    expect(checkSignature({ ...signed, unkeptTimes: undefined }, [pub]).status).toBe('invalid');
  });

  it('unsigned, an unknown key and a signature over other bytes are told apart', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const other = generateKeyPairSync('ed25519').privateKey;
    const pub = publicKeyText(privateKey);
    expect(checkSignature(metadata(), [pub])).toEqual({ status: 'unsigned' });
    const byOther = signMetadata(metadata(), other);
    expect(checkSignature(byOther, [pub]).status).toBe('untrusted');
    // Another key's signature relabelled as ours does not verify.
    expect(checkSignature({ ...byOther, signature: { key: pub, sig: byOther.signature!.sig } }, [pub]).status).toBe('invalid');
    expect(checkSignature(signMetadata(metadata(), privateKey), []).status).toBe('untrusted');
  });
});

describe('strict metadata fields', () => {
  const withRoot = (patch: Record<string, unknown>) => {
    const m = metadata();
    return { ...m, layout: { ...m.layout, root: { ...m.layout.root, ...patch } } };
  };
  const rejected: Array<[string, unknown, RegExp]> = [
    ['a UUID with mkfs options', withRoot({ uuid: `${randomUUID()},crc=0` }), /layout\.root\.uuid/],
    ['a UUID that is a command', withRoot({ uuid: '$(id >somefile)' }), /layout\.root\.uuid/],
    ['a label that reads as an option', withRoot({ label: '-n' }), /layout\.root\.label/],
    ['a label over 16 characters', withRoot({ label: 'a'.repeat(17) }), /layout\.root\.label/],
    ['a label with a newline', withRoot({ label: 'a\nb' }), /layout\.root\.label/],
    ['an unknown file system type', withRoot({ fsType: 'btrfs' }), /layout\.root\.fsType/],
    ['a relative mount point', withRoot({ mountPoint: 'home' }), /layout\.root\.mountPoint/],
    ['a host with a slash', { ...metadata(), host: '../x' }, /host/],
    ['a malformed signature', { ...metadata(), signature: { key: 'ed25519:x', sig: 'y' } }, /signature\.key/],
    ['an extra field', { ...metadata(), extra: 1 }, /record|extra|Unrecognized/i],
    ['a path of unkept times with a newline', { ...metadata(), unkeptTimes: { count: 1, first: ['a\nb'] } }, /unkeptTimes\.first/],
    ['more paths of unkept times than it counts', { ...metadata(), unkeptTimes: { count: 1, first: ['a', 'b'] } }, /unkeptTimes\.first/],
    ['a count of unkept times of zero', { ...metadata(), unkeptTimes: { count: 0, first: ['a'] } }, /unkeptTimes\.count/],
    ['a quota that is a mount option', withRoot({ quota: { user: 'usrquota,exec' } }), /layout\.root\.quota\.user/],
    ['a quota kind xfs does not have', withRoot({ quota: { realtime: 'enforced' } }), /layout\.root\.quota/],
  ];
  for (const [what, value, where] of rejected) {
    it(`refuses ${what}`, () => {
      const r = validateMetadata(value);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(where);
    });
  }
  it('accepts what a backup records (xfs and ext4, UUIDs, a label with a blank inside)', () => {
    expect(validateMetadata(metadata()).ok).toBe(true);
  });
  it("accepts /home's quotas, enforced or only accounted", () => {
    expect(validateMetadata(withRoot({ quota: { user: 'enforced', group: 'accounted', project: 'enforced' } })).ok).toBe(true);
  });
});
