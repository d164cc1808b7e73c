/**
 * The drill's readable report: one section per part (the shared template, then
 * the drill), each with its phases and their timings, then its checks.
 */
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

export interface Section {
  title: string;
  phases: Phase[];
  checks: Check[];
  started: number;
  /** Set when the next section starts, or when the report is written. */
  ended?: number;
}

export class Report {
  readonly sections: Section[] = [];
  private readonly started = performance.now();

  constructor(private readonly print: (line: string) => void) {
    this.section('preparation');
  }

  /** Starts a new section: the phases and checks from now on are its own. */
  section(title: string): void {
    this.close();
    this.sections.push({ title, phases: [], checks: [], started: performance.now() });
    if (this.sections.length > 1) this.print(`\n== ${title}`);
  }

  /** Ends the current section's clock (the next section() or the report's text does it too). */
  close(): void {
    const last = this.sections.at(-1);
    if (last && last.ended === undefined) last.ended = performance.now();
  }

  private get current(): Section {
    return this.sections.at(-1)!;
  }

  async phase<T>(name: string, body: () => Promise<T>, note?: (r: T) => string): Promise<T> {
    this.print(`▶ ${name}`);
    const t0 = performance.now();
    const result = await body();
    const p: Phase = { name, seconds: (performance.now() - t0) / 1000 };
    if (note) p.note = note(result);
    this.current.phases.push(p);
    this.print(`  ${p.seconds.toFixed(1)} s${p.note ? `  ${p.note}` : ''}`);
    return result;
  }

  check(name: string, ok: boolean, detail?: string): boolean {
    this.current.checks.push({ name, ok, ...(detail ? { detail } : {}) });
    this.print(`  ${ok ? '✓' : '✗'} ${name}${detail ? `: ${detail}` : ''}`);
    return ok;
  }

  /** What the reader should know but is no verdict: counted neither as passed nor as failed. */
  note(name: string, detail?: string): void {
    this.current.checks.push({ name, ok: 'note', ...(detail ? { detail } : {}) });
    this.print(`  · ${name}${detail ? `: ${detail}` : ''}`);
  }

  get failed(): Check[] {
    return this.sections.flatMap((s) => failedIn(s));
  }

  text(outcome: string): string {
    this.close();
    const lines = [`syn3-backup disaster-recovery drill: ${outcome}`];
    for (const s of this.sections) {
      if (!s.phases.length && !s.checks.length) continue;
      const verdicts = s.checks.filter((c) => c.ok !== 'note');
      const seconds = ((s.ended ?? performance.now()) - s.started) / 1000;
      const verdict = verdicts.length ? `${failedIn(s).length ? 'FAILED' : 'PASSED'}, ` : '';
      lines.push('', `== ${s.title} (${verdict}${seconds.toFixed(1)} s)`, 'Phases:');
      for (const p of s.phases) lines.push(`  ${p.seconds.toFixed(1).padStart(7)} s  ${p.name}${p.note ? ` (${p.note})` : ''}`);
      if (!s.checks.length) continue;
      lines.push(`Checks: ${verdicts.length - failedIn(s).length} of ${verdicts.length} passed`);
      for (const c of s.checks) lines.push(`  ${c.ok === 'note' ? '·' : c.ok ? '✓' : '✗'} ${c.name}${c.detail ? `: ${c.detail}` : ''}`);
    }
    lines.push('', `In all: ${((performance.now() - this.started) / 1000).toFixed(1)} s`);
    return `${lines.join('\n')}\n`;
  }

  write(file: string, outcome: string): void {
    writeFileSync(file, this.text(outcome));
  }
}

function failedIn(s: Section): Check[] {
  return s.checks.filter((c) => c.ok === false);
}
