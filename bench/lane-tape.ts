/**
 * The tape target's write on the REAL st driver, in a lane guest (tgt's
 * emulated drive, test/lane/tape-server.ts): one run each, cold cache before
 * each, the same /home and the same /dev/nst0.
 *
 * - bare: what an administrator would type, `xfsdump … - /home | dd
 *   of=/dev/nst0 bs=<block_size>`, timed in the guest.
 * - program: the dump stage of `syn3-backup backup` (its log's "dump: started"
 *   to "dump: done": mt status, the label, xfsdump into tee, which feeds dd,
 *   openssl dgst and wc -c, the end record).
 *
 * The tape is erased (a file mark at its start) before each.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Guest, startGuest } from '../test/lane/guest.js';
import { startTapeServer, tapeHostConfig } from '../test/lane/tape-server.js';
import { readLog, stepMs } from './util.js';

const BLOCK = 256 * 1024;
const HOME = '/srv/home';
const CONFIG = '/etc/syn3-backup/config.yaml';
const LOG = '/var/lib/syn3-backup/syn3-backup.log';

export interface LaneTapeResult {
  bareMs: number;
  programMs: number;
  bytes: number;
  ratio: number;
  goal: number;
  where: string;
  how: string;
}

const sh = (g: Guest, script: string, timeoutMs = 20 * 60_000) => g.ok(['bash', '-euo', 'pipefail', '-c', script], { timeoutMs });

export async function benchLaneTape(say: (m: string) => void, work: string): Promise<LaneTapeResult> {
  const g = await startGuest({
    name: 'bench-tape',
    memoryMb: 3072,
    disks: [
      { serial: 'home', sizeMiB: 768 },
      { serial: 'sysroot', sizeMiB: 96 },
      { serial: 'sysboot', sizeMiB: 48 },
    ],
  });
  try {
    say(`tape guest up in ${g.bootSeconds.toFixed(1)} s; tgt with one 640 MiB tape, a home of about 260 MiB`);
    const tapes = await startTapeServer(g, { drives: [{ sizeMiB: 640 }] });
    const nst = tapes.drives[0]!.nst;
    await sh(
      g,
      [
        `mkfs.ext4 -q ${g.disk('sysroot')} && mkdir -p /srv/root && mount ${g.disk('sysroot')} /srv/root && mkdir -p /srv/root/boot /srv/root/etc`,
        `mkfs.ext4 -q ${g.disk('sysboot')} && mount ${g.disk('sysboot')} /srv/root/boot`,
        `mkfs.xfs -q ${g.disk('home')} && mkdir -p ${HOME} && mount ${g.disk('home')} ${HOME}`,
        `for d in $(seq 20); do mkdir -p ${HOME}/u$d && head -c 1000K /dev/urandom | split -a 3 -b 10K - ${HOME}/u$d/f; done`,
        `for i in $(seq 10); do head -c 24M /dev/urandom > ${HOME}/u$i/large.bin; done`,
        'install -d -m 0700 /etc/syn3-backup /etc/syn3-backup/modules /var/lib/syn3-backup',
      ].join(' && '),
    );
    const config = tapeHostConfig({
      host: 'bench',
      root: '/srv/root',
      home: HOME,
      device: nst,
      blockSize: BLOCK,
      target: ['overwrite: true'],
    });
    await g.writeFile(CONFIG, config, 0o600);
    await g.ok(['syn3-backup', 'key', 'init', '--config', CONFIG], { timeoutMs: 5 * 60_000 });
    // A first backup makes the system copy and the spool, so the timed one dumps the same /home as the bare run.
    const first = await g.run(['syn3-backup', '--config', CONFIG, 'backup'], { timeoutMs: 30 * 60_000 });
    if (first.exitCode !== 0) throw new Error(`the first backup failed: ${first.stderr.slice(-800)}`);

    await tapes.erase(0);
    const bare = await sh(
      g,
      [
        'sync; echo 3 > /proc/sys/vm/drop_caches',
        't0=$(date +%s%N)',
        `xfsdump -l 0 -J -F -L bare -M lane - ${HOME} 2>/dev/null | dd of=${nst} bs=${BLOCK} 2>/tmp/dd.err`,
        't1=$(date +%s%N)',
        'echo "ms=$(( (t1 - t0) / 1000000 ))"; tail -n 1 /tmp/dd.err',
      ].join('\n'),
    );
    const bareMs = Number(/ms=(\d+)/.exec(bare.stdout)![1]);
    const bytes = Number(/(\d+) bytes/.exec(bare.stdout)?.[1] ?? 0);
    say(`bare xfsdump | dd bs=${BLOCK} to ${nst}: ${bareMs} ms (${bytes} bytes)`);

    await tapes.erase(0);
    await sh(g, 'sync; echo 3 > /proc/sys/vm/drop_caches');
    const before = Number((await g.run(['stat', '-c', '%s', LOG])).stdout.trim() || 0);
    const r = await g.run(['syn3-backup', '--config', CONFIG, 'backup'], { timeoutMs: 30 * 60_000 });
    if (r.exitCode !== 0) throw new Error(`syn3-backup backup failed: ${r.stderr.slice(-800)}`);
    const host = join(work, 'tape.log');
    writeFileSync(host, await g.readFile(LOG));
    const programMs = stepMs(readLog(host, before), 'dump');
    if (programMs === undefined) throw new Error('no dump step in the log');
    say(`the tape target's dump stage (xfsdump | tee: dd, openssl, wc): ${programMs} ms`);
    return {
      bareMs,
      programMs,
      bytes,
      ratio: bareMs / programMs,
      goal: 0.9,
      where: `QEMU TCG guest (the lane), ${g.image.kernelRelease}: the st driver on tgt's emulated drive over iSCSI on the guest's loopback, the tape image in tmpfs`,
      how: `one run each, cold cache before each, the tape erased before each; ratio = speed of the program's dump stage / speed of bare "xfsdump -l0 -J -F - HOME | dd of=${nst} bs=${BLOCK}" (the same home, the same drive)`,
    };
  } catch (e) {
    g.keep();
    throw e;
  } finally {
    await g.stop();
  }
}
