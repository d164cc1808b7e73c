/**
 * The host's half of tape-runner.ts: Targets whose every call is carried out
 * by a real TapeTarget in a lane guest, on the guest's /dev/nst* (the st
 * driver on tgt's emulated drives, tape-server.ts), so the Target contract
 * runs unchanged on the host and a failing check fails the named vitest spec.
 *
 * What crosses: the calls and their answers as JSON, the streams as files
 * (written to the guest before a write, read back after an open). A UserError
 * comes back as a UserError with its kind, message, place and hint; any other
 * error as an Error with its message. A source that fails on the host is sent
 * as its bytes up to the failure plus "fail here", and the guest's stream fails
 * there with the same message: when the guest's write fails with it, the
 * host's write rejects with the host's own error object, as the contract wants.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type ErrorKind, UserError } from '../../src/errors.js';
import type { BackupMetadata, StoredBackup, Target } from '../../src/targets/target.js';
import type { Guest } from './guest.js';
import { bundleForGuest, REPO_ROOT } from './image.js';
import type { RunnerAnswer, RunnerRequest, WireError } from './tape-runner.js';

const DIR = '/run/tape-runner';

export interface TapeRunner {
  /** A TapeTarget in the guest with this configuration (as config.yaml's target section). */
  target(config: Record<string, unknown>): Promise<Target>;
}

/**
 * The streams cross on a disk of the guest's own (`xfer`, a GuestDisk of at
 * least 16 MiB: the agent's serial port moves about 150 KB/s under TCG): the
 * host writes the image file that backs it and the guest reads the device
 * with O_DIRECT (past its own page cache), and back the other way with
 * O_DIRECT and fsync. QEMU reads and writes the image through this host's
 * page cache, so both sides see the other's bytes. One call at a time.
 */
export async function startTapeRunner(g: Guest, xfer = 'xfer'): Promise<TapeRunner> {
  const xferDevice = g.disk(xfer);
  const xferImage = join(g.work, `${xfer}.img`);
  const toGuest = async (path: string, data: Buffer): Promise<void> => {
    const fh = await open(xferImage, 'r+');
    try {
      await fh.write(data, 0, data.length, 0);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    // O_DIRECT reads whole aligned blocks: read whole MiBs, then cut the file at the length.
    await g.ok([
      'dd',
      `if=${xferDevice}`,
      `of=${path}`,
      'bs=1M',
      'iflag=direct',
      `count=${Math.ceil(data.length / 2 ** 20)}`,
      'status=none',
    ]);
    await g.ok(['truncate', '-s', String(data.length), path]);
  };
  const fromGuest = async (path: string): Promise<Buffer> => {
    const size = Number((await g.ok(['stat', '-c', '%s', path])).stdout.trim());
    await g.ok(['dd', `if=${path}`, `of=${xferDevice}`, 'bs=1M', 'oflag=direct', 'conv=notrunc,fsync', 'status=none']);
    const fh = await open(xferImage, 'r');
    try {
      const data = Buffer.alloc(size);
      const { bytesRead } = await fh.read(data, 0, size, 0);
      if (bytesRead !== size) throw new Error(`read ${bytesRead} of ${size} bytes of ${path} from the transfer disk`);
      return data;
    } finally {
      await fh.close();
    }
  };
  const bundle = await bundleForGuest(`${REPO_ROOT}/test/lane/tape-runner.ts`);
  await g.ok(['mkdir', '-p', DIR]);
  await g.writeFile(`${DIR}/runner.mjs`, bundle);
  await g.start('tape-runner', ['node', `${DIR}/runner.mjs`, DIR]);
  const ready = await g.run(['sh', '-c', `for i in $(seq 600); do [ -e ${DIR}/ready ] && exit 0; sleep 0.1; done; exit 1`], {
    timeoutMs: 90_000,
  });
  if (ready.exitCode !== 0) {
    await g.signal('tape-runner', 'SIGKILL').catch(() => undefined);
    const r = await g.wait('tape-runner', 10_000).catch((e: Error) => ({ stderr: e.message, stdout: '' }));
    throw new Error(`the tape runner did not start in the guest: ${r.stderr.slice(-2000)}`);
  }
  let files = 0;
  let queue: Promise<unknown> = Promise.resolve();
  const call = (request: RunnerRequest): Promise<RunnerAnswer> => {
    const next = queue.then(async () => {
      const t0 = Date.now();
      const r = await g.run(['sh', '-c', `cat > ${DIR}/in && cat ${DIR}/out`], { input: JSON.stringify(request), timeoutMs: 10 * 60_000 });
      if (r.exitCode !== 0) throw new Error(`the tape runner did not answer ${request.op} (exit ${r.exitCode}): ${r.stderr}`);
      if (process.env.SYN3_LANE_TAPE_TIMES) console.info(`tape runner: ${request.op} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return JSON.parse(r.stdout) as RunnerAnswer;
    });
    queue = next.catch(() => undefined);
    return next;
  };
  const value = async <T>(request: RunnerRequest): Promise<T> => {
    const a = await call(request);
    if (!a.ok) throw fromWire(a.error);
    return a.value as T;
  };
  const read = async (request: RunnerRequest & { file: string }): Promise<Readable> => {
    const a = await call(request);
    if (!a.ok) throw fromWire(a.error);
    const bytes = await fromGuest(`${DIR}/${request.file}`);
    await g.ok(['rm', '-f', `${DIR}/${request.file}`]);
    const readError = a.readError;
    return Readable.from(
      (function* () {
        if (bytes.length) yield bytes;
        if (readError) throw fromWire(readError);
      })(),
      { objectMode: false },
    );
  };

  return {
    async target(config) {
      const n = await value<number>({ op: 'new', config });
      const device = String(config.device);
      return {
        description: `tape target ${device} (in lane guest ${g.name})`,
        check: () => value({ op: 'check', target: n }),
        list: () => value<StoredBackup[]>({ op: 'list', target: n }),
        commit: (id: string, metadata: BackupMetadata) => value<StoredBackup>({ op: 'commit', target: n, id, metadata }),
        remove: (id: string) => value({ op: 'remove', target: n, id }),
        cleanPending: (keep?: string) => value<string[]>({ op: 'cleanPending', target: n, ...(keep === undefined ? {} : { keep }) }),
        openPending: (id: string) => read({ op: 'openPending', target: n, id, file: `read-${++files}` }),
        open: (id: string) => read({ op: 'open', target: n, id, file: `read-${++files}` }),
        async write(id: string, source: Readable) {
          const chunks: Buffer[] = [];
          let failed: { error: unknown } | undefined;
          try {
            for await (const chunk of source) chunks.push(chunk as Buffer);
          } catch (error) {
            failed = { error };
          }
          const file = `write-${++files}`;
          await toGuest(`${DIR}/${file}`, Buffer.concat(chunks));
          const message = failed ? (failed.error instanceof Error ? failed.error.message : String(failed.error)) : undefined;
          const a = await call({ op: 'write', target: n, id, file, ...(message === undefined ? {} : { fail: message }) });
          await g.ok(['rm', '-f', `${DIR}/${file}`]);
          if (failed) {
            if (a.ok) throw new Error(`the tape target in the guest took a stream that failed (${message}) as written`);
            if (a.error.message === message) throw failed.error;
          }
          if (!a.ok) throw fromWire(a.error);
        },
      } satisfies Target;
    },
  };
}

function fromWire(e: WireError): Error {
  if (e.name === 'UserError' && e.kind) {
    return new UserError(e.kind as ErrorKind, e.message, { ...(e.where ? { where: e.where } : {}), ...(e.hint ? { hint: e.hint } : {}) });
  }
  return Object.assign(new Error(e.message), { name: e.name });
}
