/**
 * Drives a machine as the runner does, with actors the test resolves or
 * rejects by hand, and can "restart the process" between steps: persist the
 * snapshot, throw the actor away and restore a new one from the JSON.
 */
import { createActor, fromPromise, type AnyActorLogic, type AnyActorRef, type AnyMachineSnapshot, type AnyStateMachine } from 'xstate';

interface Pending {
  input: unknown;
  resolve: (output: unknown) => void;
  reject: (error: unknown) => void;
}

export class MachineDriver {
  readonly pending = new Map<string, Pending>();
  readonly invocations: Array<{ src: string; input: unknown }> = [];
  private actor: AnyActorRef;

  constructor(
    private readonly machine: AnyStateMachine,
    private readonly actorNames: string[],
    snapshot?: AnyMachineSnapshot,
  ) {
    this.actor = this.create(snapshot);
  }

  private create(snapshot?: unknown): AnyActorRef {
    const actors: Record<string, AnyActorLogic> = Object.fromEntries(
      this.actorNames.map((src) => [
        src,
        fromPromise(
          ({ input }) =>
            new Promise((resolve, reject) => {
              this.invocations.push({ src, input });
              this.pending.set(src, { input, resolve, reject });
            }),
        ),
      ]),
    );
    const machine = this.machine.provide({ actors } as never);
    const actor = snapshot ? createActor(machine, { snapshot: snapshot as AnyMachineSnapshot }) : createActor(machine);
    actor.start();
    return actor;
  }

  get snapshot(): AnyMachineSnapshot {
    return this.actor.getSnapshot() as AnyMachineSnapshot;
  }

  async send(event: { type: string; [k: string]: unknown }): Promise<void> {
    const done = /^xstate\.(done|error)\.actor\.(\w+)$/.exec(event.type);
    if (done) {
      const src = done[2]!;
      const p = this.pending.get(src);
      if (!p) throw new Error(`the machine is not running ${src}, but the model expects ${event.type}`);
      this.pending.delete(src);
      if (done[1] === 'done') p.resolve(event.output);
      else p.reject(event.error);
    } else {
      this.actor.send(event);
    }
    await settle();
  }

  /** What a new process sees: the persisted snapshot, through JSON, as on disk. */
  async restart(): Promise<void> {
    const saved = JSON.parse(JSON.stringify(this.actor.getPersistedSnapshot())) as unknown;
    this.actor.stop();
    this.pending.clear();
    this.actor = this.create(saved);
    await settle();
  }

  stop(): void {
    this.actor.stop();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}
