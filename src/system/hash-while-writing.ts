/**
 * Taking a stream's checksum while it is written to a file, with no copy
 * through this process: `tee /dev/fd/3` writes the file it was handed as an
 * open descriptor (so no name is followed) and passes the bytes on to
 * `openssl dgst`, which hashes them with the CPU's SHA instructions (about
 * three times coreutils' sha256sum here).
 */
import type { Command } from './run.js';

export const TEE_TO_FD3: Command = ['tee', ['/dev/fd/3']];
export const SHA256_OF_STDIN: Command = ['openssl', ['dgst', '-sha256', '-r']];

/** "<64 hex> *stdin": the digest openssl printed, or an error naming what it said. */
export function sha256FromDgst(stdout: string): string {
  const m = /^([0-9a-f]{64}) /.exec(stdout.trim());
  if (!m) throw new Error(`openssl dgst printed no SHA-256 digest: ${JSON.stringify(stdout.slice(0, 200))}`);
  return m[1]!;
}
