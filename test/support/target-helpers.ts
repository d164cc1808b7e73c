/**
 * What every target's test needs, once: metadata for some bytes, the bytes as
 * a stream the way xfsdump's pipe delivers them, reading a stream back, and
 * "the earlier backup is still there, byte for byte".
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { expect } from 'vitest';
import { UserError } from '../../src/errors.js';
import { type BackupMetadata, METADATA_FORMAT, type Target } from '../../src/targets/target.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Metadata made later says a later time, as real backups do (unless `created` is given). */
let made = 0;

export function metadataFor(id: string, data: Buffer, options: { created?: string; host?: string } = {}): BackupMetadata {
  const fs = (mountPoint: string) => ({ mountPoint, device: '/dev/vda1', fsType: 'xfs' });
  const created = options.created ?? new Date(Date.UTC(2030, 0, 1) + ++made * 60_000).toISOString();
  return {
    format: METADATA_FORMAT,
    id,
    host: options.host ?? 'testhost',
    created,
    startedAt: created,
    size: data.length,
    sha256: sha256(data),
    compression: 'none',
    tool: 'xfsdump',
    program: 'syn3-backup test',
    layout: { root: fs('/'), boot: fs('/boot'), home: fs('/home') },
  };
}

/** `data` in pieces of `chunk` bytes (an odd size by default), as a pipe delivers it. */
export function streamOf(data: Buffer, chunk = 100_000): Readable {
  return Readable.from(
    (function* () {
      for (let at = 0; at < data.length; at += chunk) yield data.subarray(at, at + chunk);
    })(),
    { objectMode: false },
  );
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** write + commit, as a finished run leaves a backup; returns its bytes. */
export async function backUp(target: Target, id: string, data: Buffer = randomBytes(256 * KiB), created?: string): Promise<Buffer> {
  await target.write(id, streamOf(data));
  await target.commit(id, metadataFor(id, data, created === undefined ? {} : { created }));
  return data;
}

/**
 * The earlier backup is still listed with its metadata and reads back byte for
 * byte; `only`: it is the only backup listed.
 */
export async function expectIntact(target: Target, id: string, data: Buffer, options: { only?: boolean } = { only: true }): Promise<void> {
  const listed = await target.list();
  if (options.only) expect(listed.map((b) => b.id)).toEqual([id]);
  expect(listed.find((b) => b.id === id)?.metadata.sha256).toBe(sha256(data));
  expect(sha256(await readAll(await target.open(id)))).toBe(sha256(data));
}

/** The UserError a call fails with (anything else fails the test). */
export async function failure(p: Promise<unknown>): Promise<UserError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'the call should have failed with a UserError').toBeInstanceOf(UserError);
  return e as UserError;
}
