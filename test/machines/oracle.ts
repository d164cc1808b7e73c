/**
 * An oracle: a hand-written table of the transitions a machine must have,
 * (state, condition, event) → next state, that the model-based tests hold the
 * machine to. The tables (backup.oracle.ts, restore.oracle.ts) are written as
 * text, one row a line, with `|` between the columns; `#` starts a comment.
 * A row whose next state is its own state is "ignored": the event does nothing.
 */

export interface OracleRow {
  state: string;
  /** The condition the row holds under ('-' for none): "due", or the phase a restore failed at. */
  when: string;
  /** The event, as the oracle names it: "TICK", "RESUME --initrd", "done" and "error" of the state's own step … */
  event: string;
  next: string;
}

/** What a walked transition is, in the oracle's words. */
export interface Situation {
  state: string;
  when: string;
  event: string;
}

export function keyOf(s: Situation): string {
  return `${s.state}${s.when === '-' ? '' : ` [${s.when}]`} --${s.event}-->`;
}

export function isIgnored(row: OracleRow): boolean {
  return row.next === row.state;
}

export class Oracle {
  readonly rows: readonly OracleRow[];
  private readonly byKey = new Map<string, OracleRow>();

  constructor(table: string) {
    const rows: OracleRow[] = [];
    for (const [n, raw] of table.split('\n').entries()) {
      const line = raw.replace(/#.*/, '').trim();
      if (!line) continue;
      const cells = line.split('|').map((c) => c.trim());
      if (cells.length !== 4 || cells.some((c) => !c)) throw new Error(`oracle line ${n + 1}: four columns expected: ${raw}`);
      const [state, when, event, next] = cells as [string, string, string, string];
      const row = { state, when, event, next };
      const key = keyOf(row);
      if (this.byKey.has(key)) throw new Error(`oracle line ${n + 1}: ${key} is in the table twice`);
      this.byKey.set(key, row);
      rows.push(row);
    }
    this.rows = rows;
  }

  lookup(s: Situation): OracleRow | undefined {
    return this.byKey.get(keyOf(s));
  }

  get ignored(): number {
    return this.rows.filter(isIgnored).length;
  }
}

export interface OracleVerdict {
  /** Walked transitions that have no row. */
  missing: string[];
  /** Walked transitions that reach another state than the row's. */
  wrong: string[];
  /** Rows that no walked transition exercises. */
  unexercised: string[];
}

/** Holds the transitions a graph walk found against the oracle, both ways. */
export function judge(oracle: Oracle, walked: ReadonlyArray<Situation & { to: string }>): OracleVerdict {
  const missing = new Set<string>();
  const wrong = new Set<string>();
  const exercised = new Set<OracleRow>();
  for (const t of walked) {
    const row = oracle.lookup(t);
    if (!row) {
      missing.add(`${keyOf(t)} ${t.to}: no row in the oracle`);
      continue;
    }
    exercised.add(row);
    if (row.next !== t.to) wrong.add(`${keyOf(t)} ${t.to}, but the oracle says ${row.next}`);
  }
  const unexercised = oracle.rows.filter((r) => !exercised.has(r)).map((r) => `${keyOf(r)} ${r.next}`);
  return { missing: [...missing], wrong: [...wrong], unexercised };
}

export function summary(name: string, oracle: Oracle): string {
  return `${name} oracle: ${oracle.rows.length} rows (${oracle.ignored} ignored), every one exercised`;
}
