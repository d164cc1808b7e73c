/**
 * Crash injection for the crash harnesses: SIGKILL this very process at a
 * chosen point, as a power cut would. Nothing is cleaned up.
 */
import { PassThrough, Transform, type Readable } from 'node:stream';

export type StepCrash<Name extends string> =
  | { kind: 'start' | 'entered' | 'after'; step: Name }
  | { kind: 'during'; step: Name; ms: number };

export function die(): never {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
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
      if (mine && crash.kind === 'start') die();
      if (mine && crash.kind === 'entered') {
        await new Promise((r) => setTimeout(r, 20));
        die();
      }
      // Inside the step, whatever it is doing then (a child program half-way, a file half-written).
      const timer = mine && crash.kind === 'during' && 'ms' in crash ? setTimeout(die, crash.ms) : undefined;
      const out = await body(input);
      clearTimeout(timer);
      if (mine && crash.kind === 'after') die();
      return out;
    };
  }
  return wrapped as S;
}

/** A stream that dies after `bytes` bytes have passed, letting those reach the reader first. */
export function dyingAfter(source: Readable, bytes: number): Readable {
  let seen = 0;
  const cut = new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen >= bytes) {
        this.push(chunk.subarray(0, chunk.length - (seen - bytes)));
        setTimeout(die, 20);
        return;
      }
      done(null, chunk);
    },
  });
  return source.pipe(cut).pipe(new PassThrough());
}
