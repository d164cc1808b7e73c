/**
 * Crash injection for the crash harnesses: SIGKILL this very process at a
 * chosen point, as a power cut would. Nothing is cleaned up.
 *
 * A power cut stops the programs a step runs too (xfsdump writing the dump
 * file itself, xfsrestore, rsync): started detached, a harness leads its own
 * process group, and the whole group is killed at once. Before dying it
 * notes, synchronously, where it died (SYN3_CRASH_LOG), so the test counts
 * the points that really ran, not the ones it asked for.
 */
import { appendFileSync, statSync } from 'node:fs';
import { PassThrough, Transform, type Readable } from 'node:stream';

export type StepCrash<Name extends string> =
  | { kind: 'start' | 'entered' | 'after'; step: Name }
  | { kind: 'during'; step: Name; ms: number };

/** What a harness writes to SYN3_CRASH_LOG just before it kills itself: one JSON line. */
export interface CrashNote {
  /** Where it died: the crash point's kind, or a finer word ("inDumpFile at the end"). */
  at: string;
  /** For points inside a file or stream: how many bytes there were when it died. */
  bytes?: number;
  /** For an "after" point: how long the step's body took, so moments inside it can be picked. */
  ms?: number;
}

export function die(note: CrashNote = { at: 'unnamed' }): never {
  const log = process.env.SYN3_CRASH_LOG;
  if (log) appendFileSync(log, `${JSON.stringify(note)}\n`);
  try {
    // The group exists only when the harness was started detached: then it takes its children with it.
    process.kill(-process.pid, 'SIGKILL');
  } catch {
    process.kill(process.pid, 'SIGKILL');
  }
  throw new Error('unreachable');
}

/** The notes a harness left, oldest first. */
export function readCrashNotes(text: string): CrashNote[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as CrashNote);
}

/** Wraps every step so that the chosen one dies at its start, once its state was saved, N ms into it, or after its side effect. */
export function crashingSteps<S extends Record<string, (input: never) => Promise<unknown>>>(
  steps: S,
  crash: StepCrash<Extract<keyof S, string>> | { kind: string },
): S {
  const wrapped: Record<string, (input: never) => Promise<unknown>> = {};
  for (const [name, body] of Object.entries(steps)) {
    wrapped[name] = async (input: never) => {
      const mine = 'step' in crash && crash.step === name;
      if (mine && crash.kind === 'start') die({ at: 'start' });
      if (mine && crash.kind === 'entered') {
        await new Promise((r) => setTimeout(r, 20));
        die({ at: 'entered' });
      }
      // Inside the step, whatever it is doing then (a child program half-way, a file half-written).
      const timer = mine && crash.kind === 'during' && 'ms' in crash ? setTimeout(() => die({ at: 'during' }), crash.ms) : undefined;
      const began = Date.now();
      const out = await body(input);
      clearTimeout(timer);
      if (mine && crash.kind === 'after') die({ at: 'after', ms: Date.now() - began });
      return out;
    };
  }
  return wrapped as S;
}

/** A stream that dies after `bytes` bytes have passed, letting those reach the reader first. */
export function dyingAfter(source: Readable, bytes: number, at: string): Readable {
  let seen = 0;
  const cut = new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen >= bytes) {
        this.push(chunk.subarray(0, chunk.length - (seen - bytes)));
        setTimeout(() => die({ at, bytes }), 20);
        return;
      }
      done(null, chunk);
    },
  });
  return source.pipe(cut).pipe(new PassThrough());
}

/**
 * Dies once `file` holds `bytes` bytes, for a file a child program writes
 * directly (no byte of it passes through this process). Polled: the size
 * seen may be past `bytes` by what was written within one poll.
 */
export function dyingWhenFileReaches(file: string, bytes: number, at: string): { stop: () => number } {
  const size = () => {
    try {
      return statSync(file).size;
    } catch {
      return 0;
    }
  };
  const poll = setInterval(() => {
    const now = size();
    if (now >= bytes) die({ at, bytes: now });
  }, 1);
  return {
    stop: () => {
      clearInterval(poll);
      return size();
    },
  };
}
