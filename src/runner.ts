/**
 * Runs a machine for one event in this process: take the lock, restore the
 * saved snapshot, start the machine with the real actors, send the event,
 * save every transition durably, and wait until it rests again.
 */
import { createActor, waitFor, type AnyActorRef, type AnyMachineSnapshot, type AnyStateMachine, type EventObject } from 'xstate';
import { stateName } from '../machines/state-name.js';
import { TAGS } from '../machines/tags.js';
import { UserError } from './errors.js';
import type { Logger } from './log.js';
import { acquireLock, type LockHolder } from './state/lock.js';
import type { SnapshotStore } from './state/store.js';

export interface MachineRun {
  machine: AnyStateMachine;
  name: string;
  /** Where the lock is taken. */
  stateDir: string;
  store: SnapshotStore;
  /** Start from this snapshot when nothing is saved (the restore's markers-only recovery). */
  fallback?: () => AnyMachineSnapshot | undefined;
  log: Logger;
  command: string;
  /** Built from the restored snapshot, so the event can depend on it; undefined sends nothing (resume only). */
  event: (snapshot: AnyMachineSnapshot) => EventObject | undefined;
  /** Called for every state the machine enters. */
  onState?: (state: string, snapshot: AnyMachineSnapshot) => void;
  /** Runs once the machine rests, still under the lock: work on another machine's state that must not race a run of it. */
  whileLocked?: (after: AnyMachineSnapshot) => void;
}

export type RunOutcome =
  | { kind: 'busy'; holder: LockHolder }
  | { kind: 'rested'; before: AnyMachineSnapshot; after: AnyMachineSnapshot; moved: boolean };

/** The machine's own word: its resting states carry the tag. */
function isResting(snapshot: AnyMachineSnapshot): boolean {
  return snapshot.hasTag(TAGS.resting);
}

export async function runMachine(r: MachineRun): Promise<RunOutcome> {
  const lock = acquireLock(r.stateDir, r.command);
  if (!lock.acquired) return { kind: 'busy', holder: lock.holder };
  if (lock.tookOverFrom)
    r.log.warn({ holder: lock.tookOverFrom }, `took over a stale lock of pid ${lock.tookOverFrom.pid}, which is no longer running`);
  try {
    const store = r.store;
    const saved = store.load() ?? r.fallback?.();
    let actor: AnyActorRef;
    try {
      actor = createActor(r.machine, saved ? { snapshot: saved as AnyMachineSnapshot } : {});
    } catch (e) {
      throw store.corrupt(`holds a state this program cannot resume (${(e as Error).message})`);
    }
    let lastSaved = saved ? JSON.stringify(saved) : '';
    let lastState = '';
    let moved = false;
    const persist = () => {
      const persisted = actor.getPersistedSnapshot();
      const json = JSON.stringify(persisted);
      if (json !== lastSaved) {
        store.save(persisted);
        lastSaved = json;
      }
    };
    const stateErrors: unknown[] = [];
    actor.subscribe({
      next: (snapshot) => {
        const name = stateName(snapshot.value);
        try {
          persist();
        } catch (e) {
          stateErrors.push(e);
        }
        if (name !== lastState) {
          if (lastState) moved = true;
          lastState = name;
          r.onState?.(name, snapshot as AnyMachineSnapshot);
        }
      },
      error: (e) => stateErrors.push(e),
    });
    actor.start();
    const before = actor.getSnapshot() as AnyMachineSnapshot;
    lastState = stateName(before.value);
    if (!isResting(before)) r.log.warn({ state: lastState }, `resuming an interrupted run at ${lastState}`);
    const event = r.event(before);
    if (event) actor.send(event);
    const after = (await waitFor(actor, (s) => isResting(s as AnyMachineSnapshot) || stateErrors.length > 0, {
      timeout: Infinity,
    })) as AnyMachineSnapshot;
    actor.stop();
    if (stateErrors.length) {
      const e = stateErrors[0];
      throw e instanceof UserError
        ? e
        : new UserError('state', `the state could not be saved: ${(e as Error).message}`, {
            where: store.file,
            hint: 'Check that the disk holding paths.state is writable and not full',
          });
    }
    r.whileLocked?.(after);
    return { kind: 'rested', before, after, moved };
  } finally {
    lock.release();
  }
}
