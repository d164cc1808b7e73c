/**
 * One power-on of a drill machine under QEMU (TCG: this host has no KVM). The
 * serial console goes to a log file the harness reads; -no-reboot turns a
 * reboot into QEMU exiting, so every boot is one call here. A boot can be cut
 * short like a power failure: SIGKILL once the serial log shows a pattern.
 * A machine has no network, or QEMU's user networking with restrict=on and
 * one guestfwd: the guest reaches one address and port, and nothing else.
 */
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { DrillFailure } from './failure.js';

export interface Disk {
  file: string;
  /** Visible in the guest as /dev/disk/by-id/virtio-<serial>. */
  serial?: string;
  /** The disk the BIOS boots from (through its GRUB). */
  boot?: boolean;
}

export interface DirectKernel {
  kernel: string;
  initrd: string;
  append: string;
}

export interface BootSpec {
  name: string;
  disks: Disk[];
  serialLog: string;
  timeoutMs: number;
  memoryMb?: number;
  /** Only for the disk builder: the machines themselves always boot through their GRUB. */
  direct?: DirectKernel;
  /** Pull the plug this long after the serial log first matches the pattern. */
  powerCut?: { when: RegExp; afterMs: number };
  /** A network card whose one way out is this guestfwd (default: no network card). */
  network?: GuestForward;
}

/**
 * One forwarded service: guest TCP connections to address:port (inside QEMU's
 * user network, 10.0.2.0/24) each start `command` on this host with the
 * connection as its stdin and stdout. With restrict=on the guest reaches
 * nothing else: not this host (10.0.2.2), not the outside.
 */
export interface GuestForward {
  address: string;
  port: number;
  command: string;
}

export interface BootResult {
  seconds: number;
  ended: 'powered off' | 'power cut';
}

/** The machines running now: Ctrl-C on the drill must not leave a QEMU behind. */
const running = new Set<{ kill(signal: NodeJS.Signals): boolean }>();

export function powerOffAll(): void {
  for (const q of running) q.kill('SIGKILL');
}

export async function boot(spec: BootSpec): Promise<BootResult> {
  const args = [
    '-machine',
    'q35,accel=tcg',
    '-cpu',
    'max',
    '-smp',
    '2',
    '-m',
    String(spec.memoryMb ?? 2048),
    '-display',
    'none',
    '-monitor',
    'none',
    '-serial',
    `file:${spec.serialLog}`,
    '-no-reboot',
    ...networkArgs(spec.network),
  ];
  spec.disks.forEach((d, i) => {
    args.push('-drive', `if=none,id=d${i},file=${d.file},format=raw,cache=unsafe`);
    args.push('-device', `virtio-blk-pci,drive=d${i}${d.serial ? `,serial=${d.serial}` : ''}${d.boot ? ',bootindex=0' : ''}`);
  });
  if (spec.direct) args.push('-kernel', spec.direct.kernel, '-initrd', spec.direct.initrd, '-append', spec.direct.append);

  const started = performance.now();
  const qemu = execa('qemu-system-x86_64', args, { stdin: 'ignore', reject: false, timeout: spec.timeoutMs, killSignal: 'SIGKILL' });
  running.add(qemu);
  let cut = false;
  const watcher = spec.powerCut
    ? watchSerial(spec.serialLog, spec.powerCut.when, () => {
        setTimeout(() => {
          cut = true;
          qemu.kill('SIGKILL');
        }, spec.powerCut!.afterMs);
      })
    : undefined;
  const r = await qemu;
  running.delete(qemu);
  watcher?.stop();
  const seconds = (performance.now() - started) / 1000;
  if (cut) return { seconds, ended: 'power cut' };
  if (r.timedOut) {
    throw new DrillFailure(`${spec.name}: the machine did not power off within ${Math.round(spec.timeoutMs / 1000)} s`, spec.serialLog);
  }
  if (r.exitCode !== 0) {
    throw new DrillFailure(
      `${spec.name}: qemu-system-x86_64 exited with ${r.exitCode ?? r.signal}: ${String(r.stderr).trim().slice(-500)}`,
      spec.serialLog,
    );
  }
  return { seconds, ended: 'powered off' };
}

function networkArgs(net: GuestForward | undefined): string[] {
  if (!net) return ['-nic', 'none'];
  // QEMU's option syntax doubles a comma inside a value; the drill's commands have none.
  if (net.command.includes(',')) throw new Error(`a guestfwd command with a comma: ${net.command}`);
  return [
    '-netdev',
    `user,id=n0,restrict=on,guestfwd=tcp:${net.address}:${net.port}-cmd:${net.command}`,
    '-device',
    'virtio-net-pci,netdev=n0',
  ];
}

function watchSerial(file: string, pattern: RegExp, onMatch: () => void): { stop(): void } {
  let fired = false;
  const timer = setInterval(() => {
    if (fired || !existsSync(file)) return;
    if (pattern.test(readFileSync(file, 'latin1'))) {
      fired = true;
      onMatch();
    }
  }, 250);
  return { stop: () => clearInterval(timer) };
}

/** The serial log as text (the kernel and GRUB write plain ASCII; escape codes are kept). */
export function serialText(file: string): string {
  return existsSync(file) ? readFileSync(file, 'latin1') : '';
}
