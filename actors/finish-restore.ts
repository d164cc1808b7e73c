/**
 * The last step of post.restore: disarm post.restore (its execute bit is what
 * triggered it), and drop the restore's working files from /home, so that the
 * next backup does not carry them. It also says when /home came up without
 * the quotas it kept at backup time.
 */
import { chmod, rm } from 'node:fs/promises';
import type { Config } from '../src/config/schema.js';
import type { RestorePlan } from '../machines/restore-types.js';
import { markerPaths } from './markers.js';
import { quotasAtBoot } from './quota-limits.js';

export async function finishRestore(
  config: Config,
  plan: RestorePlan,
  log: (m: string) => void,
  warn: (m: string) => void,
): Promise<{ cleaned: string[]; finishedAt: number }> {
  // Now /home is mounted as the restored /etc/fstab says: whether its quotas are on is known only here.
  quotasAtBoot(config, plan, warn);
  const m = markerPaths(config);
  const cleaned: string[] = [];
  for (const script of [m.postRestore, m.postRestoreInCopy]) {
    const disarmed = await chmod(script, 0o644).then(
      () => true,
      () => false,
    );
    if (disarmed) cleaned.push(script);
  }
  await rm(m.restoreDir, { recursive: true, force: true });
  await rm(m.initrdConf, { force: true });
  // The copy's drbd.primary only rode along to /boot in the initrd; /home must hold what the backup held.
  await rm(m.drbd, { force: true });
  cleaned.push(m.restoreDir, m.initrdConf, m.drbd);
  log('restore finished: post.restore disarmed, working files removed');
  return { cleaned, finishedAt: Date.now() };
}
