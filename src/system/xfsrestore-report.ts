/**
 * xfsrestore reports "Restore Status: SUCCESS" and exits 0 even when the dump
 * ends early ("attempt to read … failed: end of recorded data"). Its own
 * messages are therefore read line by line and judged here; the table of
 * contents (-t) streams past uncounted in memory.
 */
import { Writable } from 'node:stream';

const TROUBLE = /failed|end of recorded data|error|warning|corrupt|incomplete|interrupted|abort|not found/i;

export class XfsrestoreReport extends Writable {
  entries = 0;
  readonly messages: string[] = [];
  private partial = '';

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    const lines = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.take(line);
    done();
  }

  override _final(done: () => void): void {
    if (this.partial) this.take(this.partial);
    done();
  }

  /** The lines that say something went wrong; empty when the run was clean. */
  trouble(): string[] {
    const problems = this.messages.filter((m) => TROUBLE.test(m) && !/Restore Status: SUCCESS/.test(m));
    if (!this.messages.some((m) => /Restore Status: SUCCESS/.test(m))) problems.push('no "Restore Status: SUCCESS" line');
    return problems;
  }

  private take(line: string): void {
    if (line.startsWith('xfsrestore: ')) {
      if (this.messages.length < 500) this.messages.push(line.slice('xfsrestore: '.length));
    } else if (line) this.entries++;
  }
}
