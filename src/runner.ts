/**
 * Runs a machine for one event in this process: take the lock, restore the
 * saved snapshot, start the machine with the real actors, send the event,
 * save every transition durably, and wait until it rests again.
 */
import { createActor, waitFor, type AnyActorRef, type AnyMachineSnapshot, type AnyStateMachine, type EventObject } from 'xstate';
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
  /** Which states are at rest: the process may exit there. */
  isResting: (snapshot: AnyMachineSnapshot) => boolean;
  /** Built from the restored snapshot, so the event can depend on it; undefined sends nothing (resume only). */
  event: (snapshot: AnyMachineSnapshot) => EventObject | undefined;
  /** Called for every state the machine enters. */
  onState?: (state: string, snapshot: AnyMachineSnapshot) => void;
}

export type RunOutcome =
  | { kind: 'busy'; holder: LockHolder }
  | { kind: 'rested'; before: AnyMachineSnapshot; after: AnyMachineSnapshot; moved: boolean };

export function stateName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${k}.${stateName(v)}`)
      .join(',');
  }
  return String(value);
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
    if (!r.isResting(before)) r.log.warn({ state: lastState }, `resuming an interrupted run at ${lastState}`);
    const event = r.event(before);
    if (event) actor.send(event);
    const after = (await waitFor(actor, (s) => r.isResting(s as AnyMachineSnapshot) || stateErrors.length > 0, {
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
    return { kind: 'rested', before, after, moved };
  } finally {
    lock.release();
  }
}
