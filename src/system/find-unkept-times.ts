/**
 * One `find` that lists the files whose times xfsdump cannot keep (see
 * unkept-times.ts), run beside the dump so that it costs no wall time.
 */
import { finish, start } from './run.js';

/*
 * find's -newerXt is "strictly later than", to the nanosecond. A time of
 * 2147483647.5 keeps its whole second, so only 2147483648 and later is lost:
 * later than 2147483647.999999999. At the other end -2147483648 is kept and
 * anything earlier, even by a nanosecond, is not (XFS itself keeps nothing
 * before -2147483648, so there it never matches; other file systems can).
 */
const LATER_THAN_KEPT = '@2147483647.999999999';
const NOT_EARLIER_THAN_KEPT = '@-2147483648.000000001';

export function findArgs(tree: string): string[] {
  const outside = (t: 'm' | 'a') => ['!', `-newer${t}t`, NOT_EARLIER_THAN_KEPT, '-o', `-newer${t}t`, LATER_THAN_KEPT];
  // -xdev: the one file system xfsdump dumps. %P: the path below the tree, NUL-ended (names may hold newlines).
  return [tree, '-xdev', '(', ...outside('m'), '-o', ...outside('a'), ')', '-printf', '%P\\0'];
}

export interface UnkeptTimesFound {
  /** Relative to the tree ("." for its top), control characters escaped: for messages and the log. */
  paths: string[];
  /** Why the list may be incomplete (find failed, or was stopped); the paths are what it printed until then. */
  incomplete?: string;
}

/** Never rejects: a failed search must not fail the backup it runs beside. */
export async function findUnkeptTimes(tree: string, options: { signal?: AbortSignal } = {}): Promise<UnkeptTimesFound> {
  const args = findArgs(tree);
  const chunks: Buffer[] = [];
  try {
    const child = start('find', args, options.signal ? { signal: options.signal } : {});
    child.stdout?.on('data', (d: Buffer | string) => chunks.push(Buffer.from(d)));
    await finish(child, 'find', args);
    return { paths: pathsIn(chunks) };
  } catch (e) {
    return { paths: pathsIn(chunks), incomplete: e instanceof Error ? e.message : String(e) };
  }
}

function pathsIn(chunks: Buffer[]): string[] {
  const names = Buffer.concat(chunks).toString('utf8').split('\0');
  // What follows the last NUL is empty, or a name find was stopped in the middle of.
  names.pop();
  return names.map((n) => shown(n || '.'));
}

/** A path as a message or a line of meta.json can carry it: control characters as \u escapes. */
function shown(path: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it escapes.
  return path.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
