/**
 * Which tape of a library the next backup goes to. Pure: the library target
 * (library.ts) gathers what each slot holds and loads the tape chosen here.
 *
 * The next tape in rotation (target.slots' order, starting after the slot
 * written last) that holds no backup still inside retention: a blank or
 * erased tape, an unfinished write, or a backup of this host older than the
 * newest `keep`. When there is none, the tape holding this host's oldest
 * backup. Never the only tape holding this host's newest good backup: with
 * one backup per tape, writing it would destroy that backup before the new
 * one is verified. A tape holding anything else (another host's backup, data
 * that is not a syn3-backup backup, a tape that cannot be read) is written
 * only with target.overwrite.
 */

/** What one slot's tape holds, as the catalogue or a read of its label says. */
export type SlotHolds =
  | { kind: 'empty' }
  | { kind: 'blank' | 'erased' | 'foreign' | 'unreadable' }
  | { kind: 'unfinished'; id: string }
  | { kind: 'committed'; id: string; host: string; created: string };

export interface RotationInput {
  /** target.slots, in rotation order. */
  slots: readonly number[];
  holds: ReadonlyMap<number, SlotHolds>;
  host: string;
  keep: number;
  /** The slot the last backup was written to (the catalogue's), if known. */
  lastWritten?: number;
  overwrite: boolean;
}

export type RotationChoice = { slot: number; why: string } | { refused: string };

type Committed = Extract<SlotHolds, { kind: 'committed' }>;

function isOurs(h: SlotHolds | undefined, host: string): h is Committed {
  return h?.kind === 'committed' && h.host === host;
}

/** This host's backups on the slots, newest first (by creation time, then id). */
export function newestFirst(input: Pick<RotationInput, 'slots' | 'holds' | 'host'>): Array<{ slot: number; backup: Committed }> {
  return input.slots
    .flatMap((slot) => {
      const h = input.holds.get(slot);
      return isOurs(h, input.host) ? [{ slot, backup: h }] : [];
    })
    .sort((a, b) => b.backup.created.localeCompare(a.backup.created) || b.backup.id.localeCompare(a.backup.id));
}

/**
 * The slot that is the only one holding this host's newest good backup, if it
 * is only one: the tape no backup may be written to.
 */
export function protectedSlot(input: Pick<RotationInput, 'slots' | 'holds' | 'host'>): number | undefined {
  const ours = newestFirst(input);
  const newest = ours[0];
  if (!newest) return undefined;
  const holding = ours.filter((o) => o.backup.id === newest.backup.id);
  return holding.length === 1 ? newest.slot : undefined;
}

export function chooseTape(input: RotationInput): RotationChoice {
  const { slots, holds, host, keep, overwrite } = input;
  const start = input.lastWritten === undefined ? -1 : slots.indexOf(input.lastWritten);
  const order = [...slots.slice(start + 1), ...slots.slice(0, start + 1)];
  const ours = newestFirst(input);
  const kept = new Set(ours.slice(0, keep).map((o) => o.slot));
  const guarded = protectedSlot(input);
  const free = (slot: number): string | undefined => {
    const h = holds.get(slot) ?? { kind: 'empty' };
    switch (h.kind) {
      case 'empty':
        return undefined;
      case 'blank':
        return 'a blank tape';
      case 'erased':
        return 'an erased tape';
      case 'unfinished':
        return `an unfinished write (${h.id})`;
      case 'committed':
        if (h.host === host) return kept.has(slot) ? undefined : `backup ${h.id}, past retention (keep ${keep})`;
        return overwrite ? `another host's backup (${h.id}; target.overwrite is on)` : undefined;
      case 'foreign':
      case 'unreadable':
        return overwrite ? `a tape that holds no backup of this program (target.overwrite is on)` : undefined;
    }
  };
  for (const slot of order) {
    if (slot === guarded) continue;
    const why = free(slot);
    if (why) return { slot, why: `slot ${slot} holds ${why}` };
  }
  const oldest = ours.filter((o) => o.slot !== guarded).at(-1);
  if (oldest)
    return {
      slot: oldest.slot,
      why: `every tape holds a backup inside retention; slot ${oldest.slot} holds the oldest (${oldest.backup.id})`,
    };
  return { refused: refusal(input, guarded) };
}

function refusal(input: RotationInput, guarded: number | undefined): string {
  const said = input.slots.map((slot) => {
    const h = input.holds.get(slot) ?? { kind: 'empty' };
    if (slot === guarded && h.kind === 'committed') return `slot ${slot}: the newest backup ${h.id}, the only copy`;
    if (h.kind === 'committed') return `slot ${slot}: ${h.host}'s backup ${h.id}`;
    if (h.kind === 'empty') return `slot ${slot}: empty`;
    if (h.kind === 'foreign') return `slot ${slot}: data that is not a syn3-backup backup`;
    if (h.kind === 'unreadable') return `slot ${slot}: a tape that cannot be read`;
    return `slot ${slot}: ${h.kind}`;
  });
  return `no tape in target.slots may be written (${said.join('; ')})`;
}
