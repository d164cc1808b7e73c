import type { AnyMachineSnapshot } from 'xstate';
import { backupActors, backupMachine, type BackupContext } from '../../machines/backup.js';
import { MachineDriver } from './machine-driver.js';

/** The backup machine with hand-driven actors. */
export class BackupDriver extends MachineDriver {
  constructor() {
    super(backupMachine, Object.keys(backupActors));
  }

  override get snapshot(): AnyMachineSnapshot & { context: BackupContext } {
    return super.snapshot as AnyMachineSnapshot & { context: BackupContext };
  }
}
