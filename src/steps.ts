/** How every machine's actors report: a log line per step, and failures as the reason the machine records. */
import { fromPromise } from 'xstate';
import type { StepFailure } from '../machines/types.js';
import { reasonOf, UserError } from './errors.js';
import type { Logger } from './log.js';

/** Turns a thrown error into what the machine records: a reason and a time. */
export function step<I, O>(name: string, log: Logger, body: (input: I) => Promise<O>, onError?: (error: unknown) => void) {
  return fromPromise<O, I>(async ({ input }) => {
    // XState starts an invoked actor before observers hear of the new state;
    // yielding once lets the runner save "entered <step>" before any side effect.
    await Promise.resolve();
    log.info({ step: name }, `${name}: started`);
    try {
      const out = await body(input);
      log.info({ step: name }, `${name}: done`);
      return out;
    } catch (e) {
      // The command reports the failure once, at error level; here only the detail.
      log.info({ step: name, failed: true, err: e instanceof UserError ? undefined : e }, `${name} failed: ${reasonOf(e)}`);
      onError?.(e);
      const failure: StepFailure = { reason: reasonOf(e), at: Date.now() };
      throw failure;
    }
  });
}
