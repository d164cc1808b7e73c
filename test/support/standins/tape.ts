/**
 * STAND-INS for a tape drive, for the tape target's tests and benchmark: no
 * tape drive or emulator runs on this machine (nor in CI).
 *
 * - The tape: a regular file as target.device. The tape target writes tape
 *   file 0 to that file and tape file n to "<device>.n" when the device is a
 *   regular file (see FileStandInMedia in src/targets/tape/standin-media.ts).
 * - The drive's `mt`: a small sh script put first on PATH. It records every
 *   call (one line of argv per call), keeps the tape position in a state file,
 *   and acts out the drive's states as mt-st would show them: "ok", "no-tape"
 *   (status shows DR_OPEN, other commands fail with "No medium found") and
 *   "write-protected" (status shows WR_PROT). It knows status, rewind,
 *   fsf N and asf N (rewind, then fsf N; past the end of the data:
 *   "Input/output error", then EOD in status), eject/offline (the tape comes out: state "no-tape") and weof.
 *
 * Everything lives under one temp dir; cleanup() restores PATH and removes it.
 */
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type DriveState = 'ok' | 'no-tape' | 'write-protected';

export interface TapeStandIn {
  /** The temp dir holding everything. */
  readonly dir: string;
  /** The regular file that stands in for the tape: target.device. */
  readonly device: string;
  /** The dir with the stand-in `mt`, first on PATH while the stand-in is in use. */
  readonly bin: string;
  /** What the drive does from now on. */
  setState(state: DriveState): void;
  /** The mt calls so far, each as its argv without "-f DEVICE" (e.g. ["fsf", "1"]). */
  calls(): string[][];
  clearCalls(): void;
  /** The tape files on the stand-in tape, with their sizes: [file 0, file 1, …]. */
  tapeFiles(): number[];
  /** Puts a fresh blank tape in the drive (state "ok", position 0). */
  loadBlankTape(): void;
  /** Copies the tape in the drive to a dir ("puts it on the shelf"). */
  saveTape(dir: string): void;
  /** Puts a copy of a tape saved with saveTape in the drive (state "ok", position 0). */
  loadTape(dir: string): void;
  /** Restores PATH and removes the temp dir. Idempotent, never throws. */
  cleanup(): void;
}

export interface TapeStandInOptions {
  /** Put the device file in this (existing) dir instead, e.g. a small tmpfs for "the tape is full". */
  deviceDir?: string;
}

const MT_SCRIPT = (log: string, stateFile: string, posFile: string) => `#!/bin/sh
# STAND-IN for mt-st's mt, for tests: no tape drive runs here. Records its
# calls and acts out the drive's state; tape file 0 is the device file, tape
# file n is "<device>.n".
log='${log}'; state_file='${stateFile}'; pos_file='${posFile}'
printf '%s\\n' "$*" >> "$log"
if [ "$1" != "-f" ] || [ $# -lt 3 ]; then echo "usage: mt -f device command [count] (stand-in)" >&2; exit 1; fi
dev=$2; cmd=$3; count=\${4:-1}
if [ ! -e "$dev" ]; then echo "$dev: No such file or directory" >&2; exit 1; fi
state=$(cat "$state_file" 2>/dev/null || echo ok)
pos=0; eod=
if [ -f "$pos_file" ]; then read pos eod < "$pos_file"; fi
save() { echo "$1 $2" > "$pos_file"; }
files() { n=0; if [ -s "$dev" ]; then n=1; while [ -e "$dev.$n" ]; do n=$((n+1)); done; fi; echo $n; }
need_tape() { if [ "$state" = no-tape ]; then echo "$dev: No medium found" >&2; exit 1; fi; }
case "$cmd" in
  status)
    echo "SCSI 2 tape drive:"
    if [ "$state" = no-tape ]; then
      echo "File number=-1, block number=-1, partition=0."
      echo "Tape block size 0 bytes. Density code 0x0 (default)."
      echo "Soft error count since last status=0"
      echo "General status bits on (50000):"
      echo " DR_OPEN IM_REP_EN"
      exit 0
    fi
    echo "File number=$pos, block number=0, partition=0."
    echo "Tape block size 0 bytes. Density code 0x58 (LTO-5)."
    echo "Soft error count since last status=0"
    echo "General status bits on (41010000):"
    bits=""
    [ "$pos" = 0 ] && [ -z "$eod" ] && bits="$bits BOT"
    [ -n "$eod" ] && bits="$bits EOD"
    [ "$state" = write-protected ] && bits="$bits WR_PROT"
    echo "$bits ONLINE IM_REP_EN"
    ;;
  rewind) need_tape; save 0 ;;
  fsf|asf)
    need_tape
    if [ "$cmd" = asf ]; then pos=0; fi
    total=$(files); to=$((pos + count))
    if [ "$to" -gt "$total" ]; then save "$total" eod; echo "$dev: Input/output error" >&2; exit 2; fi
    save "$to" ;;
  eject|offline|rewoffl) need_tape; save 0; echo no-tape > "$state_file" ;;
  weof)
    need_tape
    if [ "$state" = write-protected ]; then echo "$dev: Read-only file system" >&2; exit 1; fi
    if [ "$pos" = 0 ]; then : > "$dev"; else : > "$dev.$pos"; fi
    for f in "$dev".*; do
      k=\${f##*.}
      case "$k" in ''|*[!0-9]*) continue ;; esac
      if [ "$k" -gt "$pos" ]; then rm -f "$f"; fi
    done
    save $((pos + count)) ;;
  *) echo "mt: unknown command \\"$cmd\\" (the stand-in knows status, rewind, fsf, asf, eject, offline, weof)" >&2; exit 1 ;;
esac
`;

export function createTapeStandIn(options: TapeStandInOptions = {}): TapeStandIn {
  const dir = mkdtempSync(join(tmpdir(), 'syn3-tape-'));
  const bin = join(dir, 'bin');
  const log = join(dir, 'mt-calls.log');
  const stateFile = join(dir, 'mt-state');
  const posFile = join(dir, 'mt-position');
  const device = join(options.deviceDir ?? dir, 'tape0');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'mt'), MT_SCRIPT(log, stateFile, posFile), { mode: 0o755 });
  chmodSync(join(bin, 'mt'), 0o755);
  const oldPath = process.env.PATH;
  process.env.PATH = `${bin}:${oldPath ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`;

  const removeTapeFiles = () => {
    const base = `${device}.`;
    const parent = options.deviceDir ?? dir;
    for (const name of readdirSync(parent)) {
      const full = join(parent, name);
      if (full.startsWith(base) && /^\d+$/.test(full.slice(base.length))) rmSync(full, { force: true });
    }
  };
  const standIn: TapeStandIn = {
    dir,
    device,
    bin,
    setState: (state) => writeFileSync(stateFile, `${state}\n`),
    calls: () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((line) => line.split(' ').slice(2))
        : [],
    clearCalls: () => rmSync(log, { force: true }),
    tapeFiles: () => {
      const sizes: number[] = [];
      if (!existsSync(device) || statSync(device).size === 0) return sizes;
      sizes.push(statSync(device).size);
      for (let n = 1; existsSync(`${device}.${n}`); n++) sizes.push(statSync(`${device}.${n}`).size);
      return sizes;
    },
    loadBlankTape: () => {
      removeTapeFiles();
      writeFileSync(device, '', { mode: 0o600 });
      writeFileSync(stateFile, 'ok\n');
      writeFileSync(posFile, '0\n');
    },
    saveTape: (shelf) => {
      mkdirSync(shelf, { recursive: true });
      for (const name of readdirSync(shelf)) rmSync(join(shelf, name), { force: true });
      copyFileSync(device, join(shelf, 'tape'));
      for (let n = 1; existsSync(`${device}.${n}`); n++) copyFileSync(`${device}.${n}`, join(shelf, `tape.${n}`));
    },
    loadTape: (shelf) => {
      standIn.loadBlankTape();
      copyFileSync(join(shelf, 'tape'), device);
      for (let n = 1; existsSync(join(shelf, `tape.${n}`)); n++) copyFileSync(join(shelf, `tape.${n}`), `${device}.${n}`);
    },
    cleanup: () => {
      if (process.env.PATH?.startsWith(`${bin}:`)) process.env.PATH = oldPath;
      try {
        if (options.deviceDir) {
          removeTapeFiles();
          rmSync(device, { force: true });
        }
        rmSync(dir, { recursive: true, force: true });
      } catch {
        // never throws
      }
    },
  };
  standIn.loadBlankTape();
  return standIn;
}
