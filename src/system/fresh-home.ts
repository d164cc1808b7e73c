/**
 * Whether /home holds nothing but what a fresh installation puts there. Only then
 * may the restore format it before the backup has been read back in full: what
 * it destroys can be had again from the installer.
 *
 * What counts as fresh, and nothing else:
 *  - an empty lost+found (mkfs.ext4 makes one);
 *  - empty folders where this program keeps its spool and system copy;
 *  - home folders (one level down) that hold only /etc/skel's files and folders,
 *    each file byte for byte as /etc/skel has it (the installer's first user);
 *  - at most MAX_ENTRIES entries in all.
 * Anything else (another file, a changed .bashrc, a link, a device, a mount) is data.
 */
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Config } from '../config/schema.js';

export const MAX_ENTRIES = 200;

export type HomeVerdict =
  | { fresh: true /** For the confirmation: what is there, e.g. "lost+found, alice (as /etc/skel)". */; holds: string }
  | { fresh: false /** The first thing found that a fresh installation does not put there. */; because: string };

export interface FreshHomeOptions {
  /** Where the installer's skeleton is; /etc/skel. */
  skel?: string;
  /** Empty folders this program may have made on /home (paths.spool, paths.systemCopy). */
  ownFolders?: string[];
}

export async function judgeHome(home: string, o: FreshHomeOptions = {}): Promise<HomeVerdict> {
  const skel = o.skel ?? '/etc/skel';
  const own = (o.ownFolders ?? []).map((p) => relative(home, p)).filter((r) => r && !r.startsWith('..'));
  const top = await lstat(home).catch(() => undefined);
  if (!top?.isDirectory()) return { fresh: false, because: `${home} is not a folder` };
  const seen = { entries: 0 };
  const holds: string[] = [];
  for (const name of (await readdir(home)).sort()) {
    const path = join(home, name);
    const st = await lstat(path);
    if (++seen.entries > MAX_ENTRIES) return { fresh: false, because: `${home} holds more than ${MAX_ENTRIES} entries` };
    if (!st.isDirectory() || st.dev !== top.dev) return { fresh: false, because: `${path} is not a folder` };
    let problem: string | undefined;
    if (name === 'lost+found') problem = (await readdir(path)).length ? `${path} is not empty` : undefined;
    else if (onOwnPath(name, own)) problem = await differsFromOwn(path, name, own, top.dev, seen);
    else problem = await differsFromSkel(path, skel, top.dev, seen);
    if (problem) return { fresh: false, because: problem };
    holds.push(name === 'lost+found' || onOwnPath(name, own) ? `${name} (empty)` : `${name} (as ${skel})`);
  }
  return { fresh: true, holds: holds.length ? holds.join(', ') : 'nothing' };
}

function onOwnPath(rel: string, own: string[]): boolean {
  return own.some((o) => o === rel || o.startsWith(`${rel}/`));
}

/** Why a folder on the way to this program's own folders holds more than those folders, empty. */
async function differsFromOwn(
  dir: string,
  rel: string,
  own: string[],
  dev: number,
  seen: { entries: number },
): Promise<string | undefined> {
  const inside = await readdir(dir);
  if (own.includes(rel)) return inside.length ? `${dir} is not empty` : undefined;
  for (const name of inside) {
    const path = join(dir, name);
    const st = await lstat(path);
    if (++seen.entries > MAX_ENTRIES) return `${dir} holds more than ${MAX_ENTRIES} entries`;
    if (!st.isDirectory() || st.dev !== dev || !onOwnPath(`${rel}/${name}`, own))
      return `${path} is not one of this program's empty folders`;
    const problem = await differsFromOwn(path, `${rel}/${name}`, own, dev, seen);
    if (problem) return problem;
  }
  return undefined;
}

/** Why `dir` is not a copy of (part of) the skeleton; undefined when it is. */
async function differsFromSkel(dir: string, skel: string, dev: number, seen: { entries: number }): Promise<string | undefined> {
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const model = join(skel, name);
    if (++seen.entries > MAX_ENTRIES) return `${dir} holds more than ${MAX_ENTRIES} entries`;
    const [st, sk] = await Promise.all([lstat(path), lstat(model).catch(() => undefined)]);
    if (st.dev !== dev) return `${path} is another file system`;
    if (st.isDirectory() && sk?.isDirectory()) {
      const inner = await differsFromSkel(path, model, dev, seen);
      if (inner) return inner;
    } else if (st.isFile() && sk?.isFile() && st.size === sk.size) {
      if (!(await readFile(path)).equals(await readFile(model))) return `${path} differs from ${model}`;
    } else {
      return sk ? `${path} differs from ${model}` : `${path} is not in ${skel}`;
    }
  }
  return undefined;
}

/** The configured /home's verdict when it holds nothing a fresh installation would not put there; undefined when it holds data. */
export async function freshHome(config: Config): Promise<{ holds: string } | undefined> {
  const v = await judgeHome(config.paths.home, { ownFolders: [config.paths.spool, config.paths.systemCopy] });
  return v.fresh ? { holds: v.holds } : undefined;
}
