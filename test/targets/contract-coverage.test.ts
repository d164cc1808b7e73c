/**
 * Every target createTarget can make runs the Target contract: a new target
 * without its describeTargetContract call fails here instead of going
 * untested.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

describe('the Target contract covers every target', () => {
  it('each target type in createTarget has a test file that runs describeTargetContract for it', () => {
    const index = readFileSync(join(root, 'src/targets/index.ts'), 'utf8');
    const types = [...index.matchAll(/case '([a-z0-9]+)':/g)].map((m) => m[1]);
    expect(types.sort()).toEqual(['file', 'ftp', 's3', 'smb', 'tape']);
    const dir = join(root, 'test/targets');
    const runs = readdirSync(dir)
      .filter((f) => f.endsWith('.test.ts'))
      .flatMap((f) => [...readFileSync(join(dir, f), 'utf8').matchAll(/describeTargetContract\('([a-z0-9]+)'/g)].map((m) => m[1]));
    expect(runs.sort()).toEqual(types);
  });
});
