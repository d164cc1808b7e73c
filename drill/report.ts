/** The drill's readable report: phases with their timings, then every check. */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export interface Phase {
  name: string;
  seconds: number;
  note?: string;
}

export interface Check {
  name: string;
  /** Passed, failed, or only worth telling (not a check). */
  ok: boolean | 'note';
  detail?: string;
}

export class Report {
  readonly phases: Phase[] = [];
  readonly checks: Check[] = [];
  private readonly started = performance.now();

  constructor(private readonly print: (line: string) => void) {}

  async phase<T>(name: string, body: () => Promise<T>, note?: (r: T) => string): Promise<T> {
    this.print(`▶ ${name}`);
    const t0 = performance.now();
    const result = await body();
    const p: Phase = { name, seconds: (performance.now() - t0) / 1000 };
    if (note) p.note = note(result);
    this.phases.push(p);
    this.print(`  ${p.seconds.toFixed(1)} s${p.note ? `  ${p.note}` : ''}`);
    return result;
  }

  check(name: string, ok: boolean, detail?: string): boolean {
    this.checks.push({ name, ok, ...(detail ? { detail } : {}) });
    this.print(`  ${ok ? '✓' : '✗'} ${name}${detail ? `: ${detail}` : ''}`);
    return ok;
  }

  /** What the reader should know but is no verdict: counted neither as passed nor as failed. */
  note(name: string, detail?: string): void {
    this.checks.push({ name, ok: 'note', ...(detail ? { detail } : {}) });
    this.print(`  · ${name}${detail ? `: ${detail}` : ''}`);
  }

  get failed(): Check[] {
    return this.checks.filter((c) => c.ok === false);
  }

  private get verdicts(): Check[] {
    return this.checks.filter((c) => c.ok !== 'note');
  }

  text(outcome: string): string {
    const lines = [`syn3-backup disaster-recovery drill: ${outcome}`, '', 'Phases:'];
    for (const p of this.phases) lines.push(`  ${p.seconds.toFixed(1).padStart(7)} s  ${p.name}${p.note ? ` (${p.note})` : ''}`);
    lines.push(
      `  ${((performance.now() - this.started) / 1000).toFixed(1).padStart(7)} s  in all`,
      '',
      `Checks: ${this.verdicts.length - this.failed.length} of ${this.verdicts.length} passed`,
    );
    for (const c of this.checks) lines.push(`  ${c.ok === 'note' ? '·' : c.ok ? '✓' : '✗'} ${c.name}${c.detail ? `: ${c.detail}` : ''}`);
    return `${lines.join('\n')}\n`;
  }

  write(file: string, outcome: string): void {
    writeFileSync(file, this.text(outcome));
  }
}
