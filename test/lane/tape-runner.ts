/**
 * The tape target's half in a lane guest (not part of syn3-backup): a
 * long-lived process that holds real TapeTargets on the guest's /dev/nst*
 * and carries out the host's calls on them, one at a time, so the Target
 * contract (test/targets/contract.ts) runs on the host against the real st
 * driver. Bundled by esbuild from the current sources (tape-remote.ts does it)
 * and started as `node tape-runner.mjs DIR`.
 *
 * Each call: the host writes one JSON request into the FIFO DIR/in and reads
 * one JSON answer from DIR/out (through `sh -c 'cat > in; cat out'`, started by
 * the lane's agent: no node start per call). Stream data goes through files in
 * DIR: a write's source is DIR/<file> (with `fail`: the stream then fails with
 * that message, as a dump that breaks off does), and what open/openPending
 * return is read to the end into DIR/<file>.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../../src/errors.js';
import type { BackupMetadata, Target } from '../../src/targets/target.js';
import { TapeTarget } from '../../src/targets/tape/target.js';
import { tapeTargetSchema } from '../../src/targets/tape-config.js';

export type RunnerRequest =
  | { op: 'new'; config: Record<string, unknown> }
  | { op: 'check' | 'list'; target: number }
  | { op: 'write'; target: number; id: string; file: string; fail?: string }
  | { op: 'openPending' | 'open'; target: number; id: string; file: string }
  | { op: 'commit'; target: number; id: string; metadata: BackupMetadata }
  | { op: 'remove'; target: number; id: string }
  | { op: 'cleanPending'; target: number; keep?: string };

export interface WireError {
  name: string;
  message: string;
  kind?: string;
  where?: string;
  hint?: string;
}

export type RunnerAnswer = { ok: true; value?: unknown; readError?: WireError } | { ok: false; error: WireError };

export function toWire(e: unknown): WireError {
  if (e instanceof UserError)
    return { name: e.name, message: e.message, kind: e.kind, ...(e.where ? { where: e.where } : {}), ...(e.hint ? { hint: e.hint } : {}) };
  return { name: e instanceof Error ? e.name : 'Error', message: e instanceof Error ? e.message : String(e) };
}

async function main(dir: string): Promise<void> {
  const fifoIn = join(dir, 'in');
  const fifoOut = join(dir, 'out');
  const made = spawnSync('mkfifo', ['-m', '0600', fifoIn, fifoOut]);
  if (made.status !== 0) throw new Error(`mkfifo: ${made.stderr.toString()}`);
  writeFileSync(join(dir, 'ready'), `${process.pid}\n`);
  const targets: Target[] = [];
  const target = (n: number): Target => {
    const t = targets[n];
    if (!t) throw new Error(`no target ${n}`);
    return t;
  };
  for (;;) {
    const request = JSON.parse(readFileSync(fifoIn, 'utf8')) as RunnerRequest;
    let answer: RunnerAnswer;
    try {
      answer = await handle(request);
    } catch (e) {
      answer = { ok: false, error: toWire(e) };
    }
    writeFileSync(fifoOut, `${JSON.stringify(answer)}\n`);
  }

  async function handle(r: RunnerRequest): Promise<RunnerAnswer> {
    switch (r.op) {
      case 'new':
        targets.push(new TapeTarget(tapeTargetSchema.parse(r.config)));
        return { ok: true, value: targets.length - 1 };
      case 'check':
        await target(r.target).check();
        return { ok: true };
      case 'list':
        return { ok: true, value: await target(r.target).list() };
      case 'write': {
        const file = join(dir, r.file);
        const fail = r.fail;
        const source = fail
          ? Readable.from(
              (async function* () {
                for await (const chunk of createReadStream(file)) yield chunk as Buffer;
                throw new Error(fail);
              })(),
              { objectMode: false },
            )
          : createReadStream(file);
        await target(r.target).write(r.id, source);
        return { ok: true };
      }
      case 'open':
      case 'openPending': {
        const stream = await (r.op === 'open' ? target(r.target).open(r.id) : target(r.target).openPending(r.id));
        try {
          await pipeline(stream, createWriteStream(join(dir, r.file)));
          return { ok: true };
        } catch (e) {
          return { ok: true, readError: toWire(e) };
        }
      }
      case 'commit':
        return { ok: true, value: await target(r.target).commit(r.id, r.metadata) };
      case 'remove':
        await target(r.target).remove(r.id);
        return { ok: true };
      case 'cleanPending':
        return { ok: true, value: await target(r.target).cleanPending(r.keep) };
    }
  }
}

const dir = process.argv[2];
if (dir) await main(dir);
