/**
 * Drives the backup machine as the runner does, with actors the test resolves
 * or rejects by hand, and can "restart the process" between steps: persist the
 * snapshot, throw the actor away and restore a new one from the JSON.
 */
import { createActor, fromPromise, type Actor } from 'xstate';
import { backupActors, backupMachine } from '../../machines/backup.js';

type Src = keyof typeof backupActors;

interface Pending {
  input: unknown;
  resolve: (output: unknown) => void;
  reject: (error: unknown) => void;
}

export class BackupDriver {
  readonly pending = new Map<Src, Pending>();
  readonly invocations: Array<{ src: Src; input: unknown }> = [];
  private actor: Actor<typeof backupMachine>;

  constructor() {
    this.actor = this.create();
  }

  private create(snapshot?: unknown): Actor<typeof backupMachine> {
    const actors = Object.fromEntries(
      (Object.keys(backupActors) as Src[]).map((src) => [
        src,
        fromPromise(
          ({ input }) =>
            new Promise((resolve, reject) => {
              this.invocations.push({ src, input });
              this.pending.set(src, { input, resolve, reject });
            }),
        ),
      ]),
    ) as unknown as typeof backupActors;
    const machine = backupMachine.provide({ actors });
    const actor = snapshot ? createActor(machine, { snapshot: snapshot as never }) : createActor(machine);
    actor.start();
    return actor;
  }

  get snapshot() {
    return this.actor.getSnapshot();
  }

  async send(event: { type: string; [k: string]: unknown }): Promise<void> {
    const done = /^xstate\.(done|error)\.actor\.(\w+)$/.exec(event.type);
    if (done) {
      const src = done[2] as Src;
      const p = this.pending.get(src);
      if (!p) throw new Error(`the machine is not running ${src}, but the model expects ${event.type}`);
      this.pending.delete(src);
      if (done[1] === 'done') p.resolve(event.output);
      else p.reject(event.error);
    } else {
      this.actor.send(event as never);
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
