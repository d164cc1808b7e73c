/**
 * Real SCSI tape drives in a lane guest: tgt (a user-space SCSI target)
 * emulates the drives (and, optionally, a tape library's changer) on tape
 * image files in the guest's /run, and open-iscsi logs in to it over the
 * guest's loopback, so the guest kernel's st driver makes /dev/nst0 … and the
 * ch driver /dev/sch0. Nothing of it touches this host.
 *
 *   const tapes = await startTapeServer(guest, {
 *     drives: [{ sizeMiB: 64 }, { sizeMiB: 8 }],          // LUN 1, 2 …; each with a new tape loaded
 *     changer: { slots: 4, tapes: [{ slot: 1, barcode: 'A0000001', sizeMiB: 64 }] }, // optional
 *   });
 *   tapes.drives[0].nst                  // '/dev/nst0', the non-rewinding device of drive 0
 *   tapes.changer                        // '/dev/sch0' (with a changer)
 *   await tapes.setOnline(0, false)      // the drive is empty (tgt's online=0)
 *   await tapes.setReadonly(0, true)     // the loaded tape is write-protected (readonly=1)
 *   await tapes.erase(0)                 // rewind + a file mark at the start: an erased tape
 *
 * tgt's quirks (../../shared/notes/real-servers.md): a never-written tape
 * reads junk blocks instead of "blank", so every new tape is erased once
 * (a file mark at its start) before it is handed out, as an administrator
 * erases a tape (README, tape target); reads past the last file return junk
 * too (bound every read loop); an open of an empty drive without O_NONBLOCK
 * waits about 123 s; LOCATE, ERASE and mt tell fail with EIO; the position
 * is unknown after a changer load (rewind).
 *
 * Drive i is LUN i + 1 of target 1; the changer (its drives are those same
 * LUNs, element addresses 1 …) is the LUN after the last drive; its slots
 * start at address 100 (mtx numbers them 1 …), its media live in
 * /run/vtl as files named by barcode. Needs the lane image's tgt, open-iscsi,
 * mt-st, mtx and lsscsi (image.ts, LANE_DEBS) and the kernel's st, ch, sg
 * and iscsi_tcp modules (the template's cloud kernel has them).
 */
import type { Guest } from './guest.js';

export interface TapeSpecification {
  /** The tape's capacity (tgtimg --size). */
  sizeMiB: number;
  /** Default: a made-up one, per drive or slot. */
  barcode?: string;
}

export interface TapeServerOptions {
  /** One entry per drive, each with a new (erased) tape of that size loaded. */
  drives: TapeSpecification[];
  /** A tape library whose drives are the drives above: its slots and the tapes in them (slots numbered from 1, as mtx does). */
  changer?: { slots: number; tapes?: (TapeSpecification & { slot: number })[] };
}

export interface TapeDrive {
  /** The LUN of target 1 (drive i is LUN i + 1). */
  lun: number;
  /** The non-rewinding device (/dev/nst0 …) and the rewinding one. */
  nst: string;
  st: string;
  /** The tape image file in the guest that is loaded now. */
  tape: string;
}

export interface TapeServer {
  drives: TapeDrive[];
  /** The changer device (/dev/sch0), with options.changer. */
  changer?: string;
  /** Where the tape images live in the guest (the changer's media_home). */
  vtl: string;
  /** tgt's online=0 (the drive reports no medium: an empty drive) or online=1. */
  setOnline(drive: number, online: boolean): Promise<void>;
  /** tgt's readonly=1: the loaded tape is write-protected. */
  setReadonly(drive: number, readonly: boolean): Promise<void>;
  /** Rewinds and writes a file mark at the start: the tape holds nothing (as `mt weof` erases). */
  erase(drive: number): Promise<void>;
  /** `mt -f <nst> ARGS` in the guest. */
  mt(drive: number, args: string[]): Promise<string>;
}

const TARGET = 'iqn.2024-01.lane:vtl';
const VTL = '/run/vtl';

export async function startTapeServer(g: Guest, o: TapeServerOptions): Promise<TapeServer> {
  const sh = (script: string, timeoutMs = 120_000) => g.ok(['bash', '-euo', 'pipefail', '-c', script], { timeoutMs });
  const missing = (
    await g.run(['sh', '-c', 'for p in tgtd tgtadm tgtimg iscsid iscsiadm mt mtx lsscsi; do command -v $p >/dev/null || echo $p; done'])
  ).stdout
    .trim()
    .split('\n')
    .filter(Boolean);
  if (missing.length) throw new Error(`the lane image lacks ${missing.join(' ')} (test/lane/image.ts LANE_DEBS)`);
  await sh('for m in st ch sg iscsi_tcp crc32c_generic; do modprobe $m; done');
  await sh(`mkdir -p ${VTL} /run/lock/iscsi /var/lib/iscsi /etc/iscsi`);
  await g.start('tgtd', ['tgtd', '-f']);
  await sh('for i in $(seq 100); do tgtadm --lld iscsi --op show --mode target >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1', 30_000);
  const adm = (args: string) => `tgtadm --lld iscsi ${args}`;
  const lines: string[] = [adm(`--op new --mode target --tid 1 -T ${TARGET}`)];
  const drives: { lun: number; tape: string }[] = [];
  for (const [i, d] of o.drives.entries()) {
    const lun = i + 1;
    const barcode = d.barcode ?? `D${String(lun).padStart(3, '0')}L0`;
    const tape = `${VTL}/${barcode}`;
    drives.push({ lun, tape });
    lines.push(`tgtimg --op=new --device-type=tape --barcode=${barcode} --size=${d.sizeMiB} --type=data --file=${tape} >/dev/null`);
    lines.push(adm(`--op new --mode logicalunit --tid 1 --lun ${lun} -b ${tape} --device-type=tape`));
  }
  const changerLun = o.drives.length + 1;
  if (o.changer) {
    lines.push(`dd if=/dev/zero of=${VTL}/smc bs=1k count=1 status=none`);
    lines.push(adm(`--op new --mode logicalunit --tid 1 --lun ${changerLun} -b ${VTL}/smc --device-type=changer`));
    const up = (params: string) => adm(`--op update --mode logicalunit --tid 1 --lun ${changerLun} --params ${params}`);
    lines.push(up(`media_home=${VTL}`));
    lines.push(up(`element_type=4,start_address=1,quantity=${o.drives.length}`));
    for (const [i, d] of drives.entries()) lines.push(up(`element_type=4,address=${i + 1},tid=1,lun=${d.lun}`));
    lines.push(up('element_type=1,start_address=10,quantity=1'));
    lines.push(up(`element_type=2,start_address=100,quantity=${o.changer.slots}`));
    for (const t of o.changer.tapes ?? []) {
      const barcode = t.barcode ?? `S${String(t.slot).padStart(3, '0')}L0`;
      lines.push(
        `tgtimg --op=new --device-type=tape --barcode=${barcode} --size=${t.sizeMiB} --type=data --file=${VTL}/${barcode} >/dev/null`,
      );
      lines.push(up(`element_type=2,address=${99 + t.slot},barcode=${barcode},sides=1`));
    }
  }
  lines.push(adm('--op bind --mode target --tid 1 -I ALL'));
  await sh(lines.join('\n'));
  await g.start('iscsid', ['iscsid', '-f']);
  await sh(
    [
      // iscsid takes a moment to listen: discovery is tried until it answers.
      'for i in $(seq 100); do iscsiadm -m discovery -t st -p 127.0.0.1 >/dev/null 2>&1 && break; sleep 0.2; done',
      'iscsiadm -m node -T ' + TARGET + ' -p 127.0.0.1 --login >/dev/null',
    ].join('\n'),
    60_000,
  );
  // The st driver names its devices in the order it finds them: map each to its LUN through sysfs.
  const want = o.drives.length;
  const found = await sh(
    [
      `for i in $(seq 200); do [ "$(ls /sys/class/scsi_tape 2>/dev/null | grep -c '^nst[0-9]*$')" -ge ${want} ] && break; sleep 0.1; done`,
      'for t in /sys/class/scsi_tape/nst*; do n=${t##*/}; case $n in nst[0-9]|nst[0-9][0-9]) echo "$n $(basename "$(readlink -f "$t/device")")";; esac; done',
      ...(o.changer
        ? [
            'for i in $(seq 100); do ls /sys/class/scsi_changer 2>/dev/null | grep -q . && break; sleep 0.1; done',
            'for c in /sys/class/scsi_changer/*; do echo "changer ${c##*/} $(basename "$(readlink -f "$c/device")")"; done',
          ]
        : []),
    ].join('\n'),
    60_000,
  );
  const byLun = new Map<number, string>();
  let changer: string | undefined;
  for (const line of found.stdout.trim().split('\n')) {
    const parts = line.split(' ');
    const lun = Number(parts.at(-1)!.split(':').at(-1));
    if (parts[0] === 'changer') changer = `/dev/${parts[1]}`;
    else byLun.set(lun, parts[0]!);
  }
  const result: TapeDrive[] = drives.map((d) => {
    const name = byLun.get(d.lun);
    if (!name)
      throw new Error(`no st device for tape LUN ${d.lun} (found: ${found.stdout.trim() || 'none'}; lsscsi in the guest shows more)`);
    return { lun: d.lun, nst: `/dev/${name}`, st: `/dev/${name.slice(1)}`, tape: d.tape };
  });
  if (o.changer && !changer) throw new Error(`no changer device for LUN ${changerLun} (found: ${found.stdout.trim()})`);
  for (const d of result) await sh(`[ -c ${d.nst} ] || { echo "${d.nst} is not a character device" >&2; exit 1; }`);

  const update = (drive: number, params: string) =>
    g.ok([
      'tgtadm',
      '--lld',
      'iscsi',
      '--op',
      'update',
      '--mode',
      'logicalunit',
      '--tid',
      '1',
      '--lun',
      String(result[drive]!.lun),
      '--params',
      params,
    ]);
  const mt = async (drive: number, args: string[]) =>
    (await g.ok(['mt', '-f', result[drive]!.nst, ...args], { timeoutMs: 180_000 })).stdout;
  const server: TapeServer = {
    drives: result,
    ...(changer ? { changer } : {}),
    vtl: VTL,
    setOnline: async (drive, online) => {
      await update(drive, `online=${online ? 1 : 0}`);
    },
    setReadonly: async (drive, readonly) => {
      await update(drive, `readonly=${readonly ? 1 : 0}`);
    },
    erase: async (drive) => {
      await mt(drive, ['rewind']);
      await mt(drive, ['weof']);
      await mt(drive, ['rewind']);
    },
    mt,
  };
  for (let i = 0; i < result.length; i++) await server.erase(i);
  return server;
}

export interface TapeHostConfig {
  host: string;
  /** paths.root; paths.boot is <root>/boot. */
  root: string;
  home: string;
  device: string;
  /** As target.block_size takes it: 262144 or "256KiB". */
  blockSize: number | string;
  /** More lines of the target section, e.g. "overwrite: true". */
  target?: string[];
}

/** A spool-mode configuration of a small server in a guest backing up to a tape drive (state and modules under /etc and /var/lib, as installed). */
export function tapeHostConfig(o: TapeHostConfig): string {
  return [
    `host: ${o.host}`,
    'schedule:',
    '  every: 1d',
    'mode: spool',
    'paths:',
    `  root: ${o.root}`,
    `  boot: ${o.root}/boot`,
    `  home: ${o.home}`,
    '  state: /var/lib/syn3-backup',
    '  modules: /etc/syn3-backup/modules',
    'target:',
    '  type: tape',
    `  device: ${o.device}`,
    `  block_size: ${o.blockSize}`,
    ...(o.target ?? []).map((l) => `  ${l}`),
    'restore:',
    '  update_grub: false',
    '  update_initramfs: false',
    '',
  ].join('\n');
}
