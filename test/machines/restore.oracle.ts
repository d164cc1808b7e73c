/**
 * The restore machine's transitions, written from the seed's restore steps and
 * the README's "Restoring a server", not from machines/restore.ts.
 *
 * After confirmation (CONFIRM_RESTORE), on the installed system: the backup is
 * proven readable (preflight), services are stopped, /home is formatted and
 * xfsrestored, the markers are written, and the administrator is asked to
 * reboot. In the initrd (`resume --initrd`, RESUME in the initrd) / and /boot are
 * put back. At the first boot (`resume`, RESUME outside the initrd) post.restore
 * reinstalls GRUB, runs modules/*.restore, settles DRBD and cleans up: done.
 *
 * A failed phase rests in `failed`; `resume` runs that phase again, where it
 * runs: the system's phases and post.restore's with `resume`, the initrd's with
 * `resume --initrd` ("leaving the shell tries again"); an interrupted format or
 * restore of /home starts again from the format. `abort` gives the restore up
 * only if it failed before /home was formatted (preflight, stopServices).
 * Events that do not belong where the restore stands do nothing: a second
 * confirmation while one restore is under way, a resume before its reboot, an
 * abort of a restore that is not failed.
 */
import { Oracle, type Situation } from './oracle.js';

export const RESTORE_ORACLE = new Oracle(`
# state                    | when           | event           | next
idle                       | -              | CONFIRM_RESTORE | running.preflight
idle                       | -              | RESUME --initrd | idle
idle                       | -              | RESUME          | idle
idle                       | -              | ABORT           | idle

# Seed steps 1-7, on the installed system. Before anything is destroyed: the backup proven readable.
running.preflight          | -              | CONFIRM_RESTORE | running.preflight
running.preflight          | -              | RESUME --initrd | running.preflight
running.preflight          | -              | RESUME          | running.preflight
running.preflight          | -              | ABORT           | running.preflight
running.preflight          | -              | done            | running.stopServices
running.preflight          | -              | error           | failed

running.stopServices       | -              | CONFIRM_RESTORE | running.stopServices
running.stopServices       | -              | RESUME --initrd | running.stopServices
running.stopServices       | -              | RESUME          | running.stopServices
running.stopServices       | -              | ABORT           | running.stopServices
running.stopServices       | -              | done            | running.formatHome
running.stopServices       | -              | error           | failed

running.formatHome         | -              | CONFIRM_RESTORE | running.formatHome
running.formatHome         | -              | RESUME --initrd | running.formatHome
running.formatHome         | -              | RESUME          | running.formatHome
running.formatHome         | -              | ABORT           | running.formatHome
running.formatHome         | -              | done            | running.restoreHome
running.formatHome         | -              | error           | failed

running.restoreHome        | -              | CONFIRM_RESTORE | running.restoreHome
running.restoreHome        | -              | RESUME --initrd | running.restoreHome
running.restoreHome        | -              | RESUME          | running.restoreHome
running.restoreHome        | -              | ABORT           | running.restoreHome
running.restoreHome        | -              | done            | running.markers
running.restoreHome        | -              | error           | failed

# .syn3restorespool, .syn3restoresystem, drbd.primary, post.restore armed; then "reboot".
running.markers            | -              | CONFIRM_RESTORE | running.markers
running.markers            | -              | RESUME --initrd | running.markers
running.markers            | -              | RESUME          | running.markers
running.markers            | -              | ABORT           | running.markers
running.markers            | -              | done            | awaitingReboot
running.markers            | -              | error           | failed

# Only the initrd of the next boot goes on.
awaitingReboot             | -              | CONFIRM_RESTORE | awaitingReboot
awaitingReboot             | -              | RESUME --initrd | initrd
awaitingReboot             | -              | RESUME          | awaitingReboot
awaitingReboot             | -              | ABORT           | awaitingReboot

# / and /boot put back from /home/.syn3systembackup.
initrd                     | -              | CONFIRM_RESTORE | initrd
initrd                     | -              | RESUME --initrd | initrd
initrd                     | -              | RESUME          | initrd
initrd                     | -              | ABORT           | initrd
initrd                     | -              | done            | awaitingFirstBoot
initrd                     | -              | error           | failed

# Only the first boot's post.restore goes on.
awaitingFirstBoot          | -              | CONFIRM_RESTORE | awaitingFirstBoot
awaitingFirstBoot          | -              | RESUME --initrd | awaitingFirstBoot
awaitingFirstBoot          | -              | RESUME          | postRestore.grub
awaitingFirstBoot          | -              | ABORT           | awaitingFirstBoot

# post.restore: GRUB, modules/*.restore, DRBD, then the markers and working files go.
postRestore.grub           | -              | CONFIRM_RESTORE | postRestore.grub
postRestore.grub           | -              | RESUME --initrd | postRestore.grub
postRestore.grub           | -              | RESUME          | postRestore.grub
postRestore.grub           | -              | ABORT           | postRestore.grub
postRestore.grub           | -              | done            | postRestore.moduleRestores
postRestore.grub           | -              | error           | failed

postRestore.moduleRestores | -              | CONFIRM_RESTORE | postRestore.moduleRestores
postRestore.moduleRestores | -              | RESUME --initrd | postRestore.moduleRestores
postRestore.moduleRestores | -              | RESUME          | postRestore.moduleRestores
postRestore.moduleRestores | -              | ABORT           | postRestore.moduleRestores
postRestore.moduleRestores | -              | done            | postRestore.drbd
postRestore.moduleRestores | -              | error           | failed

postRestore.drbd           | -              | CONFIRM_RESTORE | postRestore.drbd
postRestore.drbd           | -              | RESUME --initrd | postRestore.drbd
postRestore.drbd           | -              | RESUME          | postRestore.drbd
postRestore.drbd           | -              | ABORT           | postRestore.drbd
postRestore.drbd           | -              | done            | postRestore.finish
postRestore.drbd           | -              | error           | failed

postRestore.finish         | -              | CONFIRM_RESTORE | postRestore.finish
postRestore.finish         | -              | RESUME --initrd | postRestore.finish
postRestore.finish         | -              | RESUME          | postRestore.finish
postRestore.finish         | -              | ABORT           | postRestore.finish
postRestore.finish         | -              | done            | done
postRestore.finish         | -              | error           | failed

# Restored; a new restore may be confirmed.
done                       | -              | CONFIRM_RESTORE | running.preflight
done                       | -              | RESUME --initrd | done
done                       | -              | RESUME          | done
done                       | -              | ABORT           | done

# Failed: resume runs the phase again where it belongs; abort only before /home was formatted.
failed                     | preflight      | CONFIRM_RESTORE | failed
failed                     | preflight      | RESUME --initrd | failed
failed                     | preflight      | RESUME          | running.preflight
failed                     | preflight      | ABORT           | idle

failed                     | stopServices   | CONFIRM_RESTORE | failed
failed                     | stopServices   | RESUME --initrd | failed
failed                     | stopServices   | RESUME          | running.stopServices
failed                     | stopServices   | ABORT           | idle

failed                     | formatHome     | CONFIRM_RESTORE | failed
failed                     | formatHome     | RESUME --initrd | failed
failed                     | formatHome     | RESUME          | running.formatHome
failed                     | formatHome     | ABORT           | failed

# An interrupted restore of /home starts again from an empty file system.
failed                     | restoreHome    | CONFIRM_RESTORE | failed
failed                     | restoreHome    | RESUME --initrd | failed
failed                     | restoreHome    | RESUME          | running.formatHome
failed                     | restoreHome    | ABORT           | failed

failed                     | markers        | CONFIRM_RESTORE | failed
failed                     | markers        | RESUME --initrd | failed
failed                     | markers        | RESUME          | running.markers
failed                     | markers        | ABORT           | failed

failed                     | initrd         | CONFIRM_RESTORE | failed
failed                     | initrd         | RESUME --initrd | initrd
failed                     | initrd         | RESUME          | failed
failed                     | initrd         | ABORT           | failed

failed                     | grub           | CONFIRM_RESTORE | failed
failed                     | grub           | RESUME --initrd | failed
failed                     | grub           | RESUME          | postRestore.grub
failed                     | grub           | ABORT           | failed

failed                     | moduleRestores | CONFIRM_RESTORE | failed
failed                     | moduleRestores | RESUME --initrd | failed
failed                     | moduleRestores | RESUME          | postRestore.moduleRestores
failed                     | moduleRestores | ABORT           | failed

failed                     | drbd           | CONFIRM_RESTORE | failed
failed                     | drbd           | RESUME --initrd | failed
failed                     | drbd           | RESUME          | postRestore.drbd
failed                     | drbd           | ABORT           | failed

failed                     | finish         | CONFIRM_RESTORE | failed
failed                     | finish         | RESUME --initrd | failed
failed                     | finish         | RESUME          | postRestore.finish
failed                     | finish         | ABORT           | failed
`);

/** A walked transition in the oracle's words: the failed phase is the condition; done and error are the state's own phase's. */
export function restoreSituation(state: string, failedPhase: string | undefined, event: { type: string; [k: string]: unknown }): Situation {
  const when = state === 'failed' ? (failedPhase ?? '?') : '-';
  if (event.type === 'RESUME') return { state, when, event: event.inInitrd ? 'RESUME --initrd' : 'RESUME' };
  const phase = /^xstate\.(done|error)\.actor\./.exec(event.type);
  return { state, when, event: phase ? phase[1]! : event.type };
}
