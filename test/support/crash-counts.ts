/**
 * Counts of the crash points a property really ran, by kind, for the line it
 * prints and the counts it asserts: a property that silently runs fewer
 * cases than it claims is what this guards against.
 */
export class CrashCounts {
  private readonly byKind = new Map<string, number>();

  constructor(kinds: readonly string[] = []) {
    for (const k of kinds) this.byKind.set(k, 0);
  }

  add(kind: string): void {
    this.byKind.set(kind, (this.byKind.get(kind) ?? 0) + 1);
  }

  get total(): number {
    return [...this.byKind.values()].reduce((a, b) => a + b, 0);
  }

  of(kind: string): number {
    return this.byKind.get(kind) ?? 0;
  }

  /** "24 step points (start 8, entered 8, after 8)" */
  describe(what: string): string {
    return `${this.total} ${what} (${[...this.byKind].map(([k, n]) => `${k} ${n}`).join(', ')})`;
  }
}
