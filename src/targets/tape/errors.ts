/**
 * The tape target's error catalogue: what a drive, a tape or mt can do wrong,
 * in the administrator's words (what, where, how to fix).
 */
import { UserError } from '../../errors.js';
import { formatBytes } from '../../format.js';
import { TapeIoError } from './media.js';
import type { TapeContents } from './records.js';

export function missingDevice(device: string): UserError {
  return new UserError('target', 'the tape device does not exist', {
    where: device,
    hint: 'Check target.device (the non-rewinding device, e.g. /dev/nst0: ls -l /dev/nst*), that the drive is connected and powered on, and that the st driver is loaded (modprobe st)',
  });
}

export function notATape(device: string): UserError {
  return new UserError('target', 'target.device is not a tape device', {
    where: device,
    hint: 'Point target.device at the non-rewinding tape device, e.g. /dev/nst0',
  });
}

export function busy(device: string): UserError {
  return new UserError('target', 'the tape drive is in use by another program', {
    where: device,
    hint: 'Wait until the other program (another backup, tar, an mt command) has finished and run again',
  });
}

/** mt's complaints (perror on the device, as mt-st prints them) as the administrator's errors. */
export function mtError(e: unknown, device: string): unknown {
  if (!(e instanceof UserError) || e.kind !== 'tool' || /was not found on PATH/.test(e.message)) return e;
  const said = e.message;
  if (/No medium found|offline \(not powered on, no tape/i.test(said)) {
    return new UserError('target', 'no tape is loaded in the tape drive', {
      where: device,
      hint: 'Load a tape and run again',
      cause: e,
    });
  }
  if (/No such file or directory|No such device/i.test(said)) return missingDevice(device);
  if (/Device or resource busy/i.test(said)) return busy(device);
  if (/Inappropriate ioctl/i.test(said)) return notATape(device);
  if (/Read-only file system|write-protected/i.test(said)) {
    return new UserError('target', 'the loaded tape is write-protected', {
      where: device,
      hint: 'Move the write-protect switch on the cartridge to "write", or load another tape, and run again',
      cause: e,
    });
  }
  return e;
}

export function noTape(device: string, purpose: 'read' | 'write'): UserError {
  return new UserError('target', 'no tape is loaded in the tape drive', {
    where: device,
    hint:
      purpose === 'write'
        ? 'Load a tape (a blank one, or one whose backup may be overwritten) and run again; nothing was written'
        : 'Load the tape that holds the backup and run again',
  });
}

export function writeProtected(device: string): UserError {
  return new UserError('target', 'the loaded tape is write-protected', {
    where: device,
    hint: 'Move the write-protect switch on the cartridge to "write", or load another tape, and run again; nothing was written',
  });
}

export function unreadable(device: string, reason: string, purpose: 'read' | 'write'): UserError {
  return new UserError('target', `what is on the loaded tape cannot be read (${reason})`, {
    where: device,
    hint:
      purpose === 'write'
        ? 'Clean the drive and run again, or load another tape; set target.overwrite: true to write over this one anyway'
        : 'Clean the drive and run again, or load another tape',
  });
}

export function notOnTape(device: string, id: string, contents: TapeContents, hint: string): UserError {
  const holds =
    contents.kind === 'committed'
      ? `it holds backup ${contents.label.id}`
      : contents.kind === 'unfinished'
        ? `it holds an unfinished write of ${contents.label.id}`
        : contents.kind === 'erased'
          ? 'it was erased'
          : contents.kind === 'blank'
            ? 'it is blank'
            : contents.kind === 'foreign'
              ? 'it holds data syn3-backup did not write'
              : `it cannot be read: ${contents.reason}`;
  return new UserError('target', `backup ${id} is not on the loaded tape (${holds})`, { where: device, hint });
}

/** A failure of the tape drive as the administrator's error; anything else (the dump stream's own failure) as it is. */
export function deviceError(e: unknown, device: string, blockSize: number, doing: string, written: number): unknown {
  if (!(e instanceof TapeIoError)) return e;
  const cause = e.failure;
  switch (e.code) {
    case 'ENOSPC':
      return new UserError(
        'target',
        `the tape is full: the dump did not fit on it (${formatBytes(written)} written); what is on the tape is not a backup`,
        {
          where: device,
          hint: 'Use a tape with more capacity (a dump must fit on one tape); the backups on your other tapes are untouched, and the next run may reuse this tape',
          cause,
        },
      );
    case 'EROFS':
    case 'EACCES':
      return writeProtected(device);
    case 'ENOMEDIUM':
      return noTape(device, 'write');
    case 'EBUSY':
      return busy(device);
    case 'ENXIO':
    case 'ENODEV':
    case 'ENOENT':
      return new UserError('target', `the tape drive went away while ${doing}`, {
        where: device,
        hint: 'Check the drive\'s cable and power ("dmesg" shows what the kernel saw) and run again',
        cause,
      });
    case 'ENOMEM':
    case 'EINVAL':
      return new UserError('target', `the tape drive refused a ${formatBytes(blockSize)} block while ${doing} (${e.code})`, {
        where: device,
        hint: `Lower target.block_size, or put the drive in variable-block mode (mt -f ${device} setblk 0), and run again`,
        cause,
      });
    default:
      return new UserError('target', `the tape drive failed while ${doing}: ${e.message}`, {
        where: device,
        hint: 'Clean the drive, try another tape, and look at "dmesg" for the drive\'s sense data; then run again',
        cause,
      });
  }
}

export function notReady(device: string): UserError {
  return new UserError('target', 'the tape drive is not ready (the tape is still loading, or the drive is offline)', {
    where: device,
    hint: `Wait until the drive has loaded the tape ("mt -f ${device} status" shows ONLINE) and run again`,
  });
}

/** Why a tape may not be written over without target.overwrite: it holds a backup, someone else's data, or what cannot be read. */
export function overwriteRefusal(device: string, contents: TapeContents): UserError | undefined {
  const erase = `erase it first (mt -f ${device} rewind; mt -f ${device} weof)`;
  if (contents.kind === 'committed') {
    const m = contents.commit.metadata;
    return new UserError(
      'target',
      `the loaded tape holds backup ${m.id} of ${m.host} (made ${m.created}), and target.overwrite is false: writing would destroy it before a new backup is verified`,
      {
        where: device,
        hint: `Load another tape (rotate tapes, so the last good backup stays on the shelf); to reuse this tape, ${erase} or set target.overwrite: true (then a failed run leaves no good backup on it)`,
      },
    );
  }
  if (contents.kind === 'foreign') {
    return new UserError('target', 'the loaded tape holds data that syn3-backup did not write, and target.overwrite is false', {
      where: device,
      hint: `Load another tape; if its data is not needed, ${erase} or set target.overwrite: true`,
    });
  }
  if (contents.kind === 'unreadable') return unreadable(device, contents.reason, 'write');
  return undefined;
}
