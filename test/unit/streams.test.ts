// forwardTolerantly stands between the bytes read from a target and the
// program that reads them (xfsrestore, zstd): a source that fails must end
// that program's input, or it waits for more forever (found by the restore's
// faults through each target: a connection dropped mid-stream hung the restore).
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { forwardTolerantly } from '../../src/system/streams.js';

const CHUNK = 64 * 1024;

function source(chunks: number, failure?: Error): Readable {
  return Readable.from(
    (async function* () {
      for (let i = 0; i < chunks; i++) yield Buffer.alloc(CHUNK, i);
      if (failure) throw failure;
    })(),
  );
}

describe('forwardTolerantly into a program', () => {
  it('hands every byte on and then ends the program input', async () => {
    const reader = execa('wc', ['-c'], { stdin: 'pipe', reject: false });
    await pipeline(source(16), forwardTolerantly(reader.stdin!));
    expect((await reader).stdout.trim()).toBe(String(16 * CHUNK));
  });

  it('a source failing mid-stream fails the pipeline with its error and ends the program input, so it exits', async () => {
    const reader = execa('wc', ['-c'], { stdin: 'pipe', reject: false });
    try {
      await expect(pipeline(source(4, new Error('connection dropped')), forwardTolerantly(reader.stdin!))).rejects.toThrow(
        'connection dropped',
      );
      const ended = await Promise.race([reader.then(() => 'exited'), sleep(10_000).then(() => 'still waiting for input')]);
      expect(ended).toBe('exited');
    } finally {
      reader.kill('SIGKILL');
    }
  });
});
