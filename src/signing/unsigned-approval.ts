/**
 * `restore --allow-unsigned`: the administrator's word that one backup made
 * before signing existed may be restored. The preflight can run again in a
 * later process (`resume` after a failure), so the word is kept in the state
 * directory, naming the one backup it is for; a restore without the flag
 * removes it. It never lets through a signature that is wrong or by an
 * unknown key: only a backup with no signature at all.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeDurable } from '../state/durable.js';

const FILE = 'restore-allow-unsigned';

export function approveUnsigned(stateDir: string, backupId: string): void {
  writeDurable(join(stateDir, FILE), `${backupId}\n`);
}

export function withdrawUnsignedApproval(stateDir: string): void {
  rmSync(join(stateDir, FILE), { force: true });
}

export function unsignedApproved(stateDir: string, backupId: string): boolean {
  try {
    return readFileSync(join(stateDir, FILE), 'utf8').trim() === backupId;
  } catch {
    return false;
  }
}
