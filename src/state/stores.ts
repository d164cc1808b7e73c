/** Where each machine's state lives. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { restoreSnapshotOf, type RestoreContext } from '../../machines/restore.js';
import { stateName } from '../../machines/state-name.js';
import { TAGS } from '../../machines/tags.js';
import type { Config } from '../config/schema.js';
import { isMountPoint } from '../system/mounts.js';
import { trustProblem } from '../system/trust.js';
import { SnapshotStore } from './store.js';

export function backupStore(config: Config): SnapshotStore {
  return new SnapshotStore(config.paths.state, 'backup');
}

/**
 * The restore's state is also kept on /home once the restore has written its
 * working folder there: the initrd formats /, and the state must outlive it.
 * The folder counts only when root alone can have written it: a state
 * planted there would steer the next boot's resume, which formats disks.
 */
export function restoreStore(config: Config): SnapshotStore {
  const dir = join(config.paths.home, '.syn3restore');
  const usable = () => isMountPoint(config.paths.home) && existsSync(dir) && trustProblem(dir, 'directory') === undefined;
  return new SnapshotStore(config.paths.state, 'restore', [{ dir, usable }]);
}

/** The restore's state name while one is under way (backups must wait), else undefined. */
export function restoreInProgress(config: Config): string | undefined {
  const saved = restoreStore(config).load() as { value: unknown; context: RestoreContext } | undefined;
  if (!saved) return undefined;
  return restoreSnapshotOf(saved).hasTag(TAGS.inProgress) ? stateName(saved.value) : undefined;
}
