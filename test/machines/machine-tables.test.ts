/**
 * The machines export tables of their steps, phases and tags, which the log,
 * status and the CLI use instead of state names of their own. These tests hold
 * the tables and the machines' nodes to the same lists, written here by hand
 * from the seed's steps (and the README's additions), not from the exports.
 */
import { describe, expect, it } from 'vitest';
import type { AnyStateMachine, StateNode } from 'xstate';
import { BACKUP_STEPS, backupMachine } from '../../machines/backup.js';
import { DESTRUCTIVE_PHASES, RESTORE_PHASE_ACTORS, RESTORE_RESTING_STATES, restoreMachine } from '../../machines/restore.js';
import { TAGS } from '../../machines/tags.js';

type AnyNode = StateNode<never, never>;

/** Every state node of a machine, by its dotted path, in document order. */
function nodesOf(machine: AnyStateMachine): Map<string, AnyNode> {
  const nodes = new Map<string, AnyNode>();
  const visit = (node: AnyNode) => {
    for (const child of Object.values(node.states) as AnyNode[]) {
      nodes.set(child.path.join('.'), child);
      visit(child);
    }
  };
  visit(machine.root as unknown as AnyNode);
  return nodes;
}

function node(machine: AnyStateMachine, path: string): AnyNode {
  const n = nodesOf(machine).get(path);
  if (!n) throw new Error(`${machine.id} has no state ${path}`);
  return n;
}

function invoked(n: AnyNode): string[] {
  return n.invoke.map((i) => String(i.src));
}

function tagged(machine: AnyStateMachine, tag: string): string[] {
  return [...nodesOf(machine)].filter(([, n]) => n.tags.includes(tag)).map(([path]) => path);
}

// The seed's backup (step 3 in snapshot mode: freeze, LVM snapshot), with the README's preflight, layout record,
// verify, publish and retention; the actor doing each.
const BACKUP_STEPS_BY_HAND: Array<[step: string, actor: string]> = [
  ['preflight', 'checkReady'],
  ['systemSync', 'syncSystem'],
  ['layout', 'recordLayout'],
  ['spool', 'runSpoolModules'],
  ['snapshot', 'takeSnapshot'],
  ['dump', 'dumpHome'],
  ['verify', 'verifyDump'],
  ['publish', 'publishBackup'],
  ['retention', 'applyRetention'],
];

// The seed's restore: steps 1-6 before the reboot (with the README's preflight), the initrd, post.restore.
const RESTORE_PHASES_BY_HAND: Array<[phase: string, state: string, actor: string]> = [
  ['preflight', 'running.preflight', 'checkBackupReadable'],
  ['stopServices', 'running.stopServices', 'stopServices'],
  ['formatHome', 'running.formatHome', 'formatHome'],
  ['restoreHome', 'running.restoreHome', 'restoreHome'],
  ['markers', 'running.markers', 'writeMarkers'],
  ['initrd', 'initrd', 'restoreSystem'],
  ['grub', 'postRestore.grub', 'reinstallGrub'],
  ['moduleRestores', 'postRestore.moduleRestores', 'runModuleRestores'],
  ['drbd', 'postRestore.drbd', 'settleDrbd'],
  ['finish', 'postRestore.finish', 'finishRestore'],
];

describe('the backup machine and its BACKUP_STEPS', () => {
  it('lists the steps of a run in the seed order', () => {
    expect(Object.keys(BACKUP_STEPS)).toEqual(BACKUP_STEPS_BY_HAND.map(([step]) => step));
  });

  it('has exactly those steps as the states of running, in that order', () => {
    expect(Object.keys(node(backupMachine, 'running').states)).toEqual(BACKUP_STEPS_BY_HAND.map(([step]) => step));
  });

  it.each(BACKUP_STEPS_BY_HAND)('runs %s with the actor %s, the one BACKUP_STEPS names', (step, actor) => {
    expect(BACKUP_STEPS[step as keyof typeof BACKUP_STEPS]).toBe(actor);
    expect(invoked(node(backupMachine, `running.${step}`))).toEqual([actor]);
  });

  it('rests only in idle and failed, and destroys (old backups) only in retention', () => {
    expect(tagged(backupMachine, TAGS.resting)).toEqual(['idle', 'failed']);
    expect(tagged(backupMachine, TAGS.destructive)).toEqual(['running.retention']);
  });
});

describe('the restore machine and its RESTORE_PHASE_ACTORS, RESTORE_RESTING_STATES, DESTRUCTIVE_PHASES', () => {
  it('lists the phases in the seed order', () => {
    expect(Object.keys(RESTORE_PHASE_ACTORS)).toEqual(RESTORE_PHASES_BY_HAND.map(([phase]) => phase));
  });

  it('has exactly those phases as the states that run a side effect, in that order', () => {
    const invoking = [...nodesOf(restoreMachine)].filter(([, n]) => n.invoke.length > 0).map(([path]) => path);
    expect(invoking).toEqual(RESTORE_PHASES_BY_HAND.map(([, state]) => state));
    expect(Object.keys(node(restoreMachine, 'running').states)).toEqual(RESTORE_PHASES_BY_HAND.slice(0, 5).map(([phase]) => phase));
    expect(Object.keys(node(restoreMachine, 'postRestore').states)).toEqual(RESTORE_PHASES_BY_HAND.slice(6).map(([phase]) => phase));
  });

  it.each(RESTORE_PHASES_BY_HAND)('runs %s in %s with the actor %s, the one RESTORE_PHASE_ACTORS names', (phase, state, actor) => {
    expect(RESTORE_PHASE_ACTORS[phase as keyof typeof RESTORE_PHASE_ACTORS]).toBe(actor);
    expect(invoked(node(restoreMachine, state))).toEqual([actor]);
  });

  it('rests (between processes) exactly in the top-level states RESTORE_RESTING_STATES lists', () => {
    const resting = ['idle', 'awaitingReboot', 'awaitingFirstBoot', 'done', 'failed'];
    expect([...RESTORE_RESTING_STATES]).toEqual(resting);
    expect(tagged(restoreMachine, TAGS.resting)).toEqual(resting);
  });

  it('tags destructive exactly the phases that format or overwrite file systems, as DESTRUCTIVE_PHASES lists', () => {
    // /home is formatted and overwritten before the reboot; the initrd formats / and /boot.
    expect([...DESTRUCTIVE_PHASES]).toEqual(['formatHome', 'restoreHome', 'initrd']);
    expect(tagged(restoreMachine, TAGS.destructive)).toEqual(['running.formatHome', 'running.restoreHome', 'initrd']);
  });
});
