// A retention that fails after its backup was published: the backup counts,
// the run exits 0, the failure is a warning on stderr (so cron mails it), and
// `status` keeps showing it until a later retention succeeds. Real XFS
// sandbox, the real CLI; the old backup is made undeletable with chattr +i.
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { listBackups, runCli, writeSandboxConfig, type CliResult, type ListedBackup } from '../support/cli.js';
import { populateRichTree } from '../support/rich-tree.js';
import { createSandbox, destroyAll, type Sandbox } from '../support/sandbox.js';
import { mkdir } from 'node:fs/promises';

const TIMEOUT = 180_000;

interface StatusWithWarning {
  lastSuccess: { id: string } | null;
  consecutiveFailures: number;
  retentionWarning: { id: string; reason: string } | null;
}

interface Story {
  sandbox: Sandbox;
  first: ListedBackup;
  blocked: CliResult;
  afterBlocked: { listed: string[]; status: StatusWithWarning; human: string };
  cleared: CliResult;
  afterCleared: { listed: string[]; status: StatusWithWarning; human: string };
}

async function look(config: string) {
  const listed = (await listBackups(config)).map((b) => b.id);
  const status = JSON.parse((await runCli(config, ['status', '--json'])).stdout) as StatusWithWarning;
  const human = (await runCli(config, ['status'])).stdout;
  return { listed, status, human };
}

let pending: Promise<Story> | undefined;
function story(): Promise<Story> {
  pending ??= (async () => {
    const sandbox = await createSandbox();
    await populateRichTree(join(sandbox.home.mountPoint, 'alice'));
    const target = join(sandbox.dir, 'target');
    await mkdir(target);
    await mkdir(join(sandbox.dir, 'modules'));
    const config = await writeSandboxConfig(sandbox, { target, keep: 1 });
    const made = await runCli(config, ['backup']);
    if (made.exitCode !== 0) throw new Error(`the first backup failed: ${made.stderr}`);
    const [first] = await listBackups(config);
    const meta = join(target, first!.id, 'meta.json');
    await execa('chattr', ['+i', meta]);
    try {
      const blocked = await runCli(config, ['backup']);
      const afterBlocked = await look(config);
      await execa('chattr', ['-i', meta]);
      const cleared = await runCli(config, ['backup']);
      return { sandbox, first: first!, blocked, afterBlocked, cleared, afterCleared: await look(config) };
    } finally {
      await execa('chattr', ['-i', meta], { reject: false });
    }
  })();
  return pending;
}

afterAll(async () => {
  await (await pending?.catch(() => undefined))?.sandbox.cleanup();
  await destroyAll();
});

describe('a retention that cannot remove an old backup', () => {
  it(
    'still publishes the new backup, exits 0 and warns on stderr, naming the backup and the reason',
    async () => {
      const { blocked, afterBlocked } = await story();
      expect(blocked.exitCode).toBe(0);
      const newest = afterBlocked.status.lastSuccess!.id;
      expect(blocked.stderr).toMatch(new RegExp(`retention failed after backup ${newest}: .*meta\\.json.*old backups were kept`));
      expect(afterBlocked.status.consecutiveFailures).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'keeps the old backup listed beside the new one',
    async () => {
      const { first, afterBlocked } = await story();
      expect(afterBlocked.listed).toHaveLength(2);
      expect(afterBlocked.listed[0]).toBe(first.id);
    },
    TIMEOUT,
  );

  it(
    'shows the warning in status (JSON and text) after the run has ended',
    async () => {
      const { first, afterBlocked } = await story();
      expect(afterBlocked.status.retentionWarning).toMatchObject({ id: afterBlocked.status.lastSuccess!.id });
      // Node reports the unlink refused by the immutable flag as ENOTDIR (it then tries it as a directory).
      expect(afterBlocked.status.retentionWarning!.reason).toContain(`${first.id}/meta.json`);
      expect(afterBlocked.human).toMatch(/^warning: +retention after backup \S+ failed/m);
    },
    TIMEOUT,
  );

  it(
    'clears the warning once a later retention succeeds, which removes what it could not before',
    async () => {
      const { cleared, afterCleared } = await story();
      expect(cleared).toMatchObject({ exitCode: 0, stderr: '' });
      expect(afterCleared.status.retentionWarning).toBeNull();
      expect(afterCleared.human).not.toMatch(/^warning:/m);
      expect(afterCleared.listed).toEqual([afterCleared.status.lastSuccess!.id]);
    },
    TIMEOUT,
  );
});
