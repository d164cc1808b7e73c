/** Counting and hashing bytes while they stream past, so no second pass is needed. */
import { createHash } from 'node:crypto';
import { Transform, Writable, type TransformCallback } from 'node:stream';

export class Measure extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');
  private lastReport = 0;

  constructor(
    private readonly onProgress?: (bytes: number) => void,
    private readonly everyBytes = 256 * 1024 * 1024,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    if (this.onProgress && this.bytes - this.lastReport >= this.everyBytes) {
      this.lastReport = this.bytes;
      this.onProgress(this.bytes);
    }
    done(null, chunk);
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

/**
 * A sink that forwards into `dest` with back-pressure, but keeps accepting
 * (and dropping) data once `dest` has closed: a reader that stops early must
 * not stop the checksum over the whole stream. Destroyed before its end (the
 * source failed: a connection dropped mid-stream), it destroys `dest` too, so
 * a reader such as xfsrestore sees its input end instead of waiting forever.
 */
export function forwardTolerantly(dest: Writable): Writable {
  let closed = false;
  let ended = false;
  dest.on('error', () => {
    closed = true;
  });
  dest.on('close', () => {
    closed = true;
  });
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (closed) return done();
      if (dest.write(chunk)) return done();
      const go = () => {
        dest.off('drain', go);
        dest.off('close', go);
        done();
      };
      dest.on('drain', go);
      dest.on('close', go);
    },
    final(done) {
      ended = true;
      if (!closed) dest.end();
      done();
    },
    destroy(error, done) {
      if (!ended && !closed) dest.destroy();
      done(error);
    },
  });
}
