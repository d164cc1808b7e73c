/**
 * The tape library's configuration: target.changer and target.slots, and
 * retention.keep with and without a library. Each mistake is one paragraph
 * naming the file, the line to fix and how.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { UserError } from '../../src/errors.js';

const FILE = '/etc/syn3-backup/config.yaml';

/** Lines 1-2 the schedule, 3 "target:", 4 type, 5 device; what a test adds starts at line 6. */
function tape(...lines: string[]): string {
  return `${['schedule:', '  every: 6h', 'target:', '  type: tape', '  device: /dev/nst0', ...lines.map((l) => `  ${l}`)].join('\n')}\n`;
}

function rejectedAt(text: string, line: number): string {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    const paragraph = (e as UserError).paragraph();
    expect(paragraph).toMatch(new RegExp(`^${FILE}:${line}: `));
    expect(paragraph.split('\n')).toHaveLength(1);
    return paragraph;
  }
  throw new Error(`parseConfig accepted:\n${text}`);
}

describe('a tape library in the configuration', () => {
  it('reads changer and slots, and a keep up to the number of slots', () => {
    const config = parseConfig(tape('changer: /dev/sch0', 'slots: [1, 2, 3]', 'retention:', '  keep: 3'), FILE);
    expect(config.target).toMatchObject({ type: 'tape', changer: '/dev/sch0', slots: [1, 2, 3], retention: { keep: 3 } });
  });

  it('without a changer, a tape target keeps one backup as before', () => {
    const config = parseConfig(tape(), FILE);
    expect(config.target).toMatchObject({ type: 'tape', retention: { keep: 1 } });
    expect(config.target).not.toHaveProperty('changer');
  });

  it('keep 2 without a changer: the line of keep, says a tape holds one backup and how to keep more', () => {
    const p = rejectedAt(tape('retention:', '  keep: 2'), 7);
    expect(p).toMatch(
      /"target\.retention\.keep" must be 1 without a tape library: a tape holds one backup, so keep must be 1 unless target\.changer and target\.slots name a library/,
    );
  });

  it('slots without a changer: the line of slots, says to add changer or remove slots', () => {
    expect(rejectedAt(tape('slots: [1, 2]'), 6)).toMatch(
      /"target\.slots" is read only with target\.changer: add changer \(e\.g\. \/dev\/sch0\) or remove slots/,
    );
  });

  it('a changer without slots: the line of changer, asks for slots', () => {
    expect(rejectedAt(tape('changer: /dev/sch0'), 6)).toMatch(/"target\.changer" needs target\.slots too.*slots: \[1, 2, 3\]/);
  });

  it('one slot: refused, because the tape holding the newest backup is never written over', () => {
    expect(rejectedAt(tape('changer: /dev/sch0', 'slots: [1]'), 7)).toMatch(
      /"target\.slots" needs at least 2 slots: the tape holding the newest backup is never overwritten/,
    );
  });

  it('keep above the number of slots: the line of keep, says the most it can be', () => {
    expect(rejectedAt(tape('changer: /dev/sch0', 'slots: [1, 2]', 'retention:', '  keep: 3'), 9)).toMatch(
      /"target\.retention\.keep" can be at most 2 with 2 slots: a tape holds one backup/,
    );
  });

  it('a slot named twice, a slot 0, a fractional slot, a relative changer', () => {
    expect(rejectedAt(tape('changer: /dev/sch0', 'slots: [1, 2, 1]'), 7)).toMatch(/names a slot twice/);
    expect(rejectedAt(tape('changer: /dev/sch0', 'slots: [0, 1]'), 7)).toMatch(/slots are numbered from 1, as "mtx status" shows them/);
    expect(rejectedAt(tape('changer: /dev/sch0', 'slots: [1.5, 2]'), 7)).toMatch(/must be a whole number/);
    expect(rejectedAt(tape('changer: sch0', 'slots: [1, 2]'), 6)).toMatch(/"target\.changer" must be an absolute path/);
  });
});
