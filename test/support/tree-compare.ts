// Snapshots of everything a restore must reproduce (content, ownership, modes,
// times, links, sparseness, ACLs, xattrs), and a readable diff between two.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';

export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket';

export interface Entry {
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky. */
  mode: number;
  uid: number;
  gid: number;
  /** 0 for directories, whose size depends on the file system's layout, not on content. */
  size: number;
  /** Whole seconds: finer parts do not survive xfsdump. */
  mtime: number;
  sha256?: string;
  target?: string;
  /** "major:minor" for device nodes. */
  rdev?: string;
  /** Link count of non-directories; a directory's count just mirrors its subdirectories. */
  nlink: number;
  /** Smallest path of the hard-link group, comparable across trees unlike inode numbers. */
  linkGroup?: string;
  /** Regular file with fewer blocks allocated than its size needs. */
  sparse: boolean;
  acl: string[];
  defaultAcl: string[];
  /** name -> value as getfattr prints it in base64 ("0s..."). */
  xattrs: Record<string, string>;
}

export type Snapshot = Map<string, Entry>;

export interface SnapshotOptions {
  /** Paths relative to root; each is skipped with everything below it. */
  exclude?: string[];
}

export interface DiffOptions {
  ignoreDirMtime?: boolean;
  ignoreSymlinkMtime?: boolean;
  /** The mtime of the tree's top directory ("."). */
  ignoreRootMtime?: boolean;
  /** Fields known not to survive a given copy method. */
  ignoreFields?: Array<keyof Entry>;
}

/** Key of the snapshot root itself. */
export const ROOT_KEY = '.';

/**
 * What xfsrestore 3.1.11 does not bring back: symlink mtimes, and the mtime of the
 * destination directory (its owner and mode only with -B).
 */
export const XFSRESTORE_LOSSES: Readonly<DiffOptions> = { ignoreSymlinkMtime: true, ignoreRootMtime: true };

// Kernel views of the ACLs, which getfacl already reports in a comparable form.
// XFS shows its on-disk ACL attributes to root as trusted.SGI_ACL_*.
const ACL_XATTR = /^(system\.posix_acl_(access|default)|trusted\.SGI_ACL_(FILE|DEFAULT))$/;

function typeOf(st: Stats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  return 'socket';
}

// glibc's encoding of dev_t; JS bit operators are 32-bit, hence the division.
function formatRdev(rdev: number): string {
  const high = Math.floor(rdev / 2 ** 32);
  const low = rdev >>> 0;
  const major = ((low >>> 8) & 0xfff) | ((high & 0xfffff000) >>> 0);
  const minor = (low & 0xff) | ((low >>> 12) & 0xfff00) | ((high & 0xfff) << 20);
  return `${major}:${minor}`;
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

async function describe(path: string, st: Stats): Promise<Entry> {
  const type = typeOf(st);
  const entry: Entry = {
    type,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    size: type === 'dir' ? 0 : st.size,
    mtime: Math.floor(st.mtimeMs / 1000),
    nlink: type === 'dir' ? 0 : st.nlink,
    sparse: type === 'file' && st.blocks * 512 < st.size,
    acl: [],
    defaultAcl: [],
    xattrs: {},
  };
  if (type === 'file') entry.sha256 = await sha256(path);
  if (type === 'symlink') entry.target = await readlink(path);
  if (type === 'char' || type === 'block') entry.rdev = formatRdev(st.rdev);
  return entry;
}

interface Walked {
  entries: Snapshot;
  inodes: Map<string, string[]>;
}

function excluder(exclude: string[]): (rel: string) => boolean {
  const cleaned = exclude.map((e) => e.replace(/^\.\//, '').replace(/\/+$/, ''));
  return (rel) => cleaned.some((e) => rel === e || rel.startsWith(`${e}/`));
}

async function walk(root: string, isExcluded: (rel: string) => boolean): Promise<Walked> {
  const walked: Walked = { entries: new Map(), inodes: new Map() };
  const visit = async (rel: string): Promise<void> => {
    const path = rel === ROOT_KEY ? root : join(root, rel);
    const st = await lstat(path);
    walked.entries.set(rel, await describe(path, st));
    if (!st.isDirectory() && st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      walked.inodes.set(key, [...(walked.inodes.get(key) ?? []), rel]);
    }
    if (!st.isDirectory()) return;
    for (const name of (await readdir(path)).sort()) {
      const child = rel === ROOT_KEY ? name : `${rel}/${name}`;
      if (!isExcluded(child)) await visit(child);
    }
  };
  await visit(ROOT_KEY);
  return walked;
}

function assignLinkGroups({ entries, inodes }: Walked): void {
  for (const paths of inodes.values()) {
    const group = [...paths].sort()[0];
    for (const path of paths) {
      const entry = entries.get(path);
      if (entry) entry.linkGroup = group;
    }
  }
}

/** Undoes getfacl/getfattr escaping (\ooo octal bytes, and getfacl's \\) in a path or name. */
export function unescapeOctal(text: string): string {
  if (!text.includes('\\')) return text;
  const bytes = Buffer.from(text, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const octal = bytes.subarray(i + 1, i + 4).toString('latin1');
    if (bytes[i] === 0x5c && /^[0-7]{3}$/.test(octal)) {
      out.push(parseInt(octal, 8));
      i += 3;
    } else if (bytes[i] === 0x5c && bytes[i + 1] === 0x5c) {
      out.push(0x5c);
      i += 1;
    } else {
      out.push(bytes[i] as number);
    }
  }
  return Buffer.from(out).toString('utf8');
}

/** Splits `# file: <path>` blocks into relative path -> body lines. */
function parseFileBlocks(output: string, root: string): Map<string, string[]> {
  const blocks = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of output.split('\n')) {
    if (line.startsWith('# file: ')) {
      const path = unescapeOctal(line.slice('# file: '.length));
      current = [];
      blocks.set(path === root ? ROOT_KEY : path.slice(root.length + 1), current);
    } else if (line !== '' && !line.startsWith('#')) {
      current?.push(line);
    }
  }
  return blocks;
}

async function applyAcls(root: string, entries: Snapshot): Promise<void> {
  const { stdout } = await execa('getfacl', ['-R', '-P', '-p', '-n', '--skip-base', '--', root]);
  for (const [rel, lines] of parseFileBlocks(stdout, root)) {
    const entry = entries.get(rel);
    if (!entry) continue;
    // "#effective:" comments are derived from the mask, which is compared anyway.
    const acl = lines.map((l) => l.replace(/\s+#effective:.*$/, ''));
    entry.acl = acl.filter((l) => !l.startsWith('default:'));
    entry.defaultAcl = acl.filter((l) => l.startsWith('default:'));
  }
}

function parseXattrLine(line: string): [name: string, value: string] {
  const eq = line.indexOf('=');
  if (eq < 0) return [unescapeOctal(line), ''];
  return [unescapeOctal(line.slice(0, eq)), line.slice(eq + 1)];
}

async function applyXattrs(root: string, entries: Snapshot): Promise<void> {
  const args = ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '--absolute-names', '--', root];
  const { stdout } = await execa('getfattr', args);
  for (const [rel, lines] of parseFileBlocks(stdout, root)) {
    const entry = entries.get(rel);
    if (!entry) continue;
    for (const [name, value] of lines.map(parseXattrLine)) {
      if (!ACL_XATTR.test(name)) entry.xattrs[name] = value;
    }
  }
}

/** Records every path under root (root itself as "."), minus the excluded ones. */
export async function snapshotTree(root: string, opts: SnapshotOptions = {}): Promise<Snapshot> {
  const absolute = resolve(root);
  const walked = await walk(absolute, excluder(opts.exclude ?? []));
  assignLinkGroups(walked);
  await applyAcls(absolute, walked.entries);
  await applyXattrs(absolute, walked.entries);
  return walked.entries;
}

const SCALAR_FIELDS = [
  'type',
  'mode',
  'uid',
  'gid',
  'size',
  'mtime',
  'sha256',
  'target',
  'rdev',
  'nlink',
  'linkGroup',
  'sparse',
] as const satisfies ReadonlyArray<keyof Entry>;

function show(field: keyof Entry, value: unknown): string {
  if (value === undefined) return '(none)';
  if (field === 'mode') return `0${(value as number).toString(8).padStart(4, '0')}`;
  if (field === 'mtime') return `${value} (${new Date((value as number) * 1000).toISOString()})`;
  return JSON.stringify(value);
}

function diffXattrs(a: Record<string, string>, b: Record<string, string>): string[] {
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return names.filter((n) => a[n] !== b[n]).map((n) => `xattr ${n}: ${a[n] ?? '(missing)'} != ${b[n] ?? '(missing)'}`);
}

function ignoresMtime(path: string, a: Entry, b: Entry, opts: DiffOptions): boolean {
  const both = (type: EntryType): boolean => a.type === type && b.type === type;
  return (
    (opts.ignoreRootMtime === true && path === ROOT_KEY) ||
    (opts.ignoreDirMtime === true && both('dir')) ||
    (opts.ignoreSymlinkMtime === true && both('symlink'))
  );
}

function diffEntry(path: string, a: Entry, b: Entry, opts: DiffOptions): string[] {
  const ignored = new Set<keyof Entry>(opts.ignoreFields ?? []);
  if (ignoresMtime(path, a, b, opts)) ignored.add('mtime');
  const out: string[] = [];
  for (const field of SCALAR_FIELDS) {
    if (!ignored.has(field) && a[field] !== b[field]) {
      out.push(`${field} ${show(field, a[field])} != ${show(field, b[field])}`);
    }
  }
  for (const field of ['acl', 'defaultAcl'] as const) {
    const [x, y] = [a[field].join(','), b[field].join(',')];
    if (!ignored.has(field) && x !== y) out.push(`${field} [${x}] != [${y}]`);
  }
  if (!ignored.has('xattrs')) out.push(...diffXattrs(a.xattrs, b.xattrs));
  return out;
}

/** Human-readable differences from a to b; empty when the trees are identical. */
export function diffTrees(a: Snapshot, b: Snapshot, opts: DiffOptions = {}): string[] {
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  const out: string[] = [];
  for (const path of paths) {
    const [x, y] = [a.get(path), b.get(path)];
    const label = JSON.stringify(path);
    if (!y) out.push(`${label}: only in first tree`);
    else if (!x) out.push(`${label}: only in second tree`);
    else out.push(...diffEntry(path, x, y, opts).map((d) => `${label}: ${d}`));
  }
  return out;
}
