/**
 * The trust rule, like ssh's StrictModes, in one place. This program runs as
 * root; only root may steer it. Every path it writes to, deletes in, runs
 * from or reads secrets from must be a real file or directory (not a symbolic
 * link), owned by root and not writable by group or others, and so must
 * every directory above it, except that a root-owned directory with the
 * sticky bit (such as /tmp) is safe above an entry that root owns: nobody
 * else can rename or remove that entry.
 */
import { lstatSync, mkdirSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UserError } from '../errors.js';

export type Kind = 'directory' | 'file';

const S_ISVTX = 0o1000;

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** What is wrong with the entry itself, or undefined. */
function entryProblem(path: string, st: Stats, kind: Kind): { found: string; fix: string } | undefined {
  if (st.isSymbolicLink()) return { found: 'a symbolic link', fix: `rm ${path} (the link; the program then makes a real ${kind})` };
  if (kind === 'directory' && !st.isDirectory()) return { found: 'not a directory', fix: `move it aside (mv ${path} ${path}.old)` };
  if (kind === 'file' && !st.isFile()) return { found: 'not a regular file', fix: `replace it with a regular file` };
  if (st.uid !== 0) return { found: `owned by uid ${st.uid}, mode ${octal(st.mode)}`, fix: `chown root:root ${path}` };
  if (st.mode & 0o022) return { found: `owned by root, mode ${octal(st.mode)} (group or others can write it)`, fix: `chmod go-w ${path}` };
  return undefined;
}

/** What is wrong with the directories above `path`, or undefined. */
function ancestorProblem(path: string): { at: string; found: string; fix: string } | undefined {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    // A parent may be a link (/var/run → /run): then the link must be root's, and so must what it names.
    const link = lstatSync(dir);
    if (link.isSymbolicLink() && link.uid !== 0) {
      return { at: dir, found: `a symbolic link owned by uid ${link.uid}`, fix: `replace it with a real directory owned by root` };
    }
    const st = statSync(dir);
    if (st.uid !== 0) return { at: dir, found: `owned by uid ${st.uid}, mode ${octal(st.mode)}`, fix: `chown root:root ${dir}` };
    if (st.mode & 0o022 && !(st.mode & S_ISVTX)) {
      return { at: dir, found: `mode ${octal(st.mode)} (group or others can write it)`, fix: `chmod go-w ${dir}` };
    }
    if (dir === dirname(dir)) return undefined;
  }
}

/** The rule's verdict on one path, for callers that choose what to do (the restore's mirror is skipped, not refused). */
export function trustProblem(path: string, kind: Kind): string | undefined {
  const abs = resolve(path);
  const st = lstatOrUndefined(abs);
  if (!st) return `${abs} does not exist`;
  const own = entryProblem(abs, st, kind);
  if (own) return `${abs} is ${own.found}`;
  const up = ancestorProblem(abs);
  return up ? `${up.at} (above ${abs}) is ${up.found}` : undefined;
}

function refuse(what: string, path: string, found: string, fix: string): UserError {
  return new UserError('trust', `${what} is ${found}; this program runs as root and trusts only what root alone can change`, {
    where: path,
    hint: `Fix it with: ${fix}`,
  });
}

/** Refuses, with the path, what was found and the command that fixes it, unless `path` passes the rule. */
export function requireTrusted(path: string, kind: Kind, what: string): void {
  const abs = resolve(path);
  const st = lstatOrUndefined(abs);
  if (!st) {
    throw new UserError('trust', `${what} does not exist`, {
      where: abs,
      hint: `Create it (owned by root, not writable by group or others)`,
    });
  }
  const own = entryProblem(abs, st, kind);
  if (own) throw refuse(what, abs, own.found, own.fix);
  const up = ancestorProblem(abs);
  if (up) throw refuse(`the directory ${up.at} above ${what}`, up.at, up.found, up.fix);
}

/**
 * A directory this program owns: created 0700 (with any missing parents
 * 0700) when it is missing, and refused when one that is there fails the rule.
 */
export function ensureTrustedDirectory(path: string, what: string): void {
  const abs = resolve(path);
  if (!lstatOrUndefined(abs)) {
    try {
      mkdirSync(abs, { recursive: true, mode: 0o700 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UserError('state', `${what} cannot be created (${code}${code === 'EROFS' ? ': the file system is read-only' : ''})`, {
        where: abs,
        hint: 'Point it at a directory on a writable file system, or create it there as root',
        cause: e,
      });
    }
  }
  requireTrusted(abs, 'directory', what);
}
