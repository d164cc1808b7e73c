/**
 * A STAND-IN for a tape library's changer, for the tape library's host tests:
 * no library runs on this machine (nor in CI; the real one, tgt's virtual
 * library, runs in the VM lane: test/lane/tape-library.lane.test.ts).
 *
 * It works with the tape drive's stand-in (./tape.ts): the drive's tape is
 * that stand-in's device file and its "<device>.n" files, and each slot is a
 * directory holding a tape's files the same way. A fake `mtx` first on PATH
 * keeps the slots' state in files and knows `-f <changer> status`, `load
 * <slot> [drive]` and `unload [slot] [drive]`, printing what mtx prints
 * (mtx's numbering: slots from 1) and failing as mtx does (a load from an
 * empty slot, a load into a full drive, an unload of an empty drive). A load
 * leaves the drive's position unknown, as tgt's does: the stand-in `mt` is
 * put at tape file 2, so whoever does not rewind reads the wrong file. Its
 * calls go into the `mt` stand-in's call log as "mtx-<command>", in order
 * with mt's.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TapeStandIn } from './tape.js';

export interface ChangerStandIn {
  /** A regular file that stands in for the changer device: target.changer. */
  readonly device: string;
  /** What each slot holds now: a barcode (or '' for a tape without one), or undefined for an empty slot. */
  slot(n: number): string | undefined;
  /** The slot whose tape is in the drive, or undefined. */
  loaded(): number | undefined;
  /** Puts a blank tape into an empty slot. */
  insertBlank(n: number, barcode?: string): void;
  /** Takes a slot's tape out of the library (the slot becomes empty). */
  takeOut(n: number): void;
  /** Makes the next `mtx status` print this instead (a changer's reply is not trusted). */
  replyOnce(text: string): void;
  /** The drive's and the changer's calls, in order: mt's as its argv, mtx's as ["mtx-load", "2", "0"] and so on. */
  calls(): string[][];
}

const MTX_SCRIPT = (o: {
  log: string;
  state: string;
  slots: string;
  count: number;
  dev: string;
  mtState: string;
  mtPos: string;
  once: string;
}) => `#!/bin/sh
# STAND-IN for mtx, for tests: no tape library runs here. The slots are
# directories under '${o.slots}'; the drive's tape is the tape stand-in's files.
log='${o.log}'; loaded_file='${o.state}'; slots='${o.slots}'; count=${o.count}
tape='${o.dev}'; mt_state='${o.mtState}'; mt_pos='${o.mtPos}'; once='${o.once}'
if [ "$1" != "-f" ] || [ $# -lt 3 ]; then echo "Usage: mtx [ -f <loader-dev> ] command (stand-in)" >&2; exit 1; fi
changer=$2; cmd=$3; shift 3
if [ $# -gt 0 ]; then printf -- '-f %s mtx-%s %s\\n' "$changer" "$cmd" "$*" >> "$log"; else printf -- '-f %s mtx-%s\\n' "$changer" "$cmd" >> "$log"; fi
if [ ! -e "$changer" ]; then echo "mtx: cannot open SCSI device '$changer' - No such file or directory" >&2; exit 1; fi
loaded=$(cat "$loaded_file" 2>/dev/null)
tag() { cat "$slots/$1/barcode" 2>/dev/null; }
full() { [ -e "$slots/$1/present" ]; }
case "$cmd" in
  status)
    if [ -f "$once" ]; then cat "$once"; rm -f "$once"; exit 0; fi
    echo "  Storage Changer $changer:1 Drives, $count Slots ( 0 Import/Export )"
    if [ -n "$loaded" ]; then
      t=$(tag "$loaded")
      if [ -n "$t" ]; then echo "Data Transfer Element 0:Full (Storage Element $loaded Loaded):VolumeTag = $t"
      else echo "Data Transfer Element 0:Full (Storage Element $loaded Loaded)"; fi
    else
      echo "Data Transfer Element 0:Empty"
    fi
    n=1
    while [ "$n" -le "$count" ]; do
      if full "$n" && [ "$n" != "$loaded" ]; then
        t=$(tag "$n")
        if [ -n "$t" ]; then echo "      Storage Element $n:Full :VolumeTag=$t"; else echo "      Storage Element $n:Full "; fi
      else
        echo "      Storage Element $n:Empty"
      fi
      n=$((n+1))
    done ;;
  load)
    s=$1
    if [ -n "$loaded" ]; then echo "Drive 0 Full (Storage Element $loaded loaded)" >&2; exit 1; fi
    if ! full "$s"; then echo "mtx: Request Sense: Sense Key=Illegal Request" >&2; echo "MOVE MEDIUM from Element Address $((s + 999)) to 500 Failed (source Element Address $((s + 999)) is Empty)" >&2; exit 1; fi
    rm -f "$tape" "$tape".[0-9]*
    : > "$tape"
    for f in "$slots/$s"/tape*; do
      [ -e "$f" ] || continue
      b=\${f##*/}
      if [ "$b" = tape ]; then cp "$f" "$tape"; else cp "$f" "$tape.\${b#tape.}"; fi
    done
    echo "$s" > "$loaded_file"
    echo ok > "$mt_state"
    # tgt: the position is unknown after a load.
    echo "2" > "$mt_pos"
    echo "Loading media from Storage Element $s into drive 0...done" ;;
  unload)
    if [ -z "$loaded" ]; then echo "Data Transfer Element 0 is Empty" >&2; exit 1; fi
    s=\${1:-$loaded}
    if [ "$s" != "$loaded" ]; then echo "unload into another slot: not in this stand-in" >&2; exit 1; fi
    rm -f "$slots/$s"/tape*
    cp "$tape" "$slots/$s/tape"
    for f in "$tape".[0-9]*; do [ -e "$f" ] || continue; cp "$f" "$slots/$s/tape.\${f##*.}"; done
    rm -f "$tape".[0-9]*
    : > "$tape"
    : > "$loaded_file"
    echo no-tape > "$mt_state"
    echo "Unloading drive 0 into Storage Element $s...done" ;;
  *) echo "mtx: unknown command '$cmd' (the stand-in knows status, load, unload)" >&2; exit 1 ;;
esac
`;

/**
 * A library of `count` slots around the tape drive's stand-in; `tapes` are the
 * slots that get a blank tape, labelled with barcodes unless `barcodes` is false.
 * The drive starts empty.
 */
export function createChangerStandIn(
  drive: TapeStandIn,
  count: number,
  tapes: number[],
  options: { barcodes?: boolean } = {},
): ChangerStandIn {
  const dir = join(drive.dir, 'changer');
  const slots = join(dir, 'slots');
  mkdirSync(slots, { recursive: true });
  const device = join(dir, 'sch0');
  writeFileSync(device, '');
  const state = join(dir, 'loaded');
  const once = join(dir, 'reply-once');
  const log = join(drive.dir, 'mt-calls.log');
  writeFileSync(
    join(drive.bin, 'mtx'),
    MTX_SCRIPT({
      log,
      state,
      slots,
      count,
      dev: drive.device,
      mtState: join(drive.dir, 'mt-state'),
      mtPos: join(drive.dir, 'mt-position'),
      once,
    }),
    { mode: 0o755 },
  );
  drive.setState('no-tape');
  const standIn: ChangerStandIn = {
    device,
    slot: (n) =>
      existsSync(join(slots, String(n), 'present'))
        ? existsSync(join(slots, String(n), 'barcode'))
          ? readFileSync(join(slots, String(n), 'barcode'), 'utf8').trim()
          : ''
        : undefined,
    loaded: () => {
      const s = existsSync(state) ? readFileSync(state, 'utf8').trim() : '';
      return s ? Number(s) : undefined;
    },
    insertBlank: (n, barcode) => {
      const at = join(slots, String(n));
      rmSync(at, { recursive: true, force: true });
      mkdirSync(at, { recursive: true });
      writeFileSync(join(at, 'present'), '');
      writeFileSync(join(at, 'tape'), '');
      if (barcode) writeFileSync(join(at, 'barcode'), `${barcode}\n`);
    },
    takeOut: (n) => rmSync(join(slots, String(n)), { recursive: true, force: true }),
    replyOnce: (text) => writeFileSync(once, text),
    calls: () => drive.calls(),
  };
  for (const n of tapes) standIn.insertBlank(n, options.barcodes === false ? undefined : `SYN${String(n).padStart(3, '0')}L6`);
  return standIn;
}
