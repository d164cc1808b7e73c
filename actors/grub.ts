/** post.restore: reinstall GRUB's boot code on the recorded boot disk(s), and regenerate grub.cfg on a real system. */
import type { RestorePlan } from '../machines/restore-types.js';
import type { Config } from '../src/config/schema.js';
import { run } from '../src/system/run.js';
import { requireTools } from '../src/system/tools.js';

export async function reinstallGrub(config: Config, plan: RestorePlan, log: (m: string) => void): Promise<{ devices: string[] }> {
  if (!plan.grubDisks.length) {
    log(
      config.restore.grub_devices
        ? 'restore.grub_devices is empty: GRUB was not reinstalled'
        : 'no boot disk is known (set restore.grub_devices): GRUB was not reinstalled',
    );
    return { devices: [] };
  }
  await requireTools(['grub-install']);
  for (const disk of plan.grubDisks) {
    log(`installing GRUB on ${disk}`);
    await run('grub-install', ['--target=i386-pc', `--boot-directory=${config.paths.boot}`, disk]);
  }
  // grub-mkconfig probes the running system: only meaningful when that system is the restored one.
  if (config.restore.update_grub && config.paths.root === '/') {
    await requireTools(['update-grub']);
    await run('update-grub', []);
  }
  return { devices: plan.grubDisks };
}
