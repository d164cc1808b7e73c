/**
 * Retention comes after publish: the backup is already visible and counted as
 * a success. A failed retention does not make the run failed; it leaves a
 * warning (the run's id, the reason, the time) until a later retention succeeds.
 */
import { describe, expect, it } from 'vitest';
import { stateName } from '../../machines/state-name.js';
import { BackupDriver } from './backup-driver.js';

const T0 = Date.UTC(2026, 0, 1, 12);
const layout = {
  root: { mountPoint: '/', device: '/dev/vda1', fsType: 'xfs' },
  boot: { mountPoint: '/boot', device: '/dev/vda2', fsType: 'xfs' },
  home: { mountPoint: '/home', device: '/dev/vda3', fsType: 'xfs' },
};
const dump = { bytes: 1000, sha256: 'ab'.repeat(32), startedAt: T0 + 10, finishedAt: T0 + 20 };

function outputs(id: string, at: number): Record<string, unknown> {
  return {
    checkReady: { checked: [] },
    syncSystem: { warnings: [] },
    recordLayout: layout,
    runSpoolModules: { modules: [] },
    dumpHome: dump,
    verifyDump: { bytes: 1000, sha256: dump.sha256 },
    publishBackup: { id, created: new Date(at).toISOString(), size: 1000, location: `/t/${id}`, publishedAt: at },
    applyRetention: { deleted: [], finishedAt: at + 1 },
  };
}
const UP_TO_PUBLISH = ['checkReady', 'syncSystem', 'recordLayout', 'runSpoolModules', 'dumpHome', 'verifyDump', 'publishBackup'];

/** Starts a run and finishes every step before retention. */
async function publish(driver: BackupDriver, id: string, at: number): Promise<void> {
  await driver.send({ type: 'BACKUP_NOW', now: at, runId: id });
  const out = outputs(id, at + 30);
  for (const src of UP_TO_PUBLISH) await driver.send({ type: `xstate.done.actor.${src}`, output: out[src] });
  expect(stateName(driver.snapshot.value)).toBe('running.retention');
}

describe('a failed retention', () => {
  it('counts the backup as a success as soon as it is published, before retention runs', async () => {
    const driver = new BackupDriver();
    await publish(driver, 'r1', T0);
    const c = driver.snapshot.context;
    expect(c.lastSuccess).toMatchObject({ id: 'r1', result: 'success', finishedAt: T0 + 30 });
    expect(c.history.at(-1)).toMatchObject({ id: 'r1', result: 'success' });
    driver.stop();
  });

  it('ends the run in idle with a warning: the run id, the reason and the time', async () => {
    const driver = new BackupDriver();
    await publish(driver, 'r1', T0);
    await driver.send({ type: 'xstate.error.actor.applyRetention', error: { reason: 'permission denied', at: T0 + 40 } });
    expect(stateName(driver.snapshot.value)).toBe('idle');
    expect(driver.snapshot.context.retentionWarning).toEqual({ id: 'r1', reason: 'permission denied', at: T0 + 40 });
    expect(driver.snapshot.context.run).toBeUndefined();
    driver.stop();
  });

  it('does not un-count the success: no failure recorded, no back-off', async () => {
    const driver = new BackupDriver();
    await publish(driver, 'r1', T0);
    await driver.send({ type: 'xstate.error.actor.applyRetention', error: { reason: 'permission denied', at: T0 + 40 } });
    const c = driver.snapshot.context;
    expect(c.lastSuccess).toMatchObject({ id: 'r1', result: 'success' });
    expect(c.lastFailure).toBeUndefined();
    expect(c.consecutiveFailures).toBe(0);
    expect(c.retryAt).toBeUndefined();
    expect(c.history.map((h: { id: string; result: string }) => [h.id, h.result])).toEqual([['r1', 'success']]);
    driver.stop();
  });

  it('keeps its warning across a process restart and a later run that fails before retention', async () => {
    const driver = new BackupDriver();
    await publish(driver, 'r1', T0);
    await driver.send({ type: 'xstate.error.actor.applyRetention', error: { reason: 'permission denied', at: T0 + 40 } });
    await driver.restart();
    expect(driver.snapshot.context.retentionWarning).toEqual({ id: 'r1', reason: 'permission denied', at: T0 + 40 });
    await driver.send({ type: 'BACKUP_NOW', now: T0 + 100, runId: 'r2' });
    await driver.send({ type: 'xstate.error.actor.checkReady', error: { reason: 'target not mounted', at: T0 + 110 } });
    expect(stateName(driver.snapshot.value)).toBe('failed');
    expect(driver.snapshot.context.retentionWarning).toEqual({ id: 'r1', reason: 'permission denied', at: T0 + 40 });
    driver.stop();
  });

  it('is cleared by the next retention that succeeds', async () => {
    const driver = new BackupDriver();
    await publish(driver, 'r1', T0);
    await driver.send({ type: 'xstate.error.actor.applyRetention', error: { reason: 'permission denied', at: T0 + 40 } });
    await publish(driver, 'r2', T0 + 100);
    // Still there while the second run's retention has not run yet.
    expect(driver.snapshot.context.retentionWarning?.id).toBe('r1');
    await driver.send({ type: 'xstate.done.actor.applyRetention', output: outputs('r2', T0 + 130).applyRetention });
    expect(stateName(driver.snapshot.value)).toBe('idle');
    expect(driver.snapshot.context.retentionWarning).toBeUndefined();
    expect(driver.snapshot.context.lastSuccess?.id).toBe('r2');
    driver.stop();
  });

  it('of a later run replaces the warning with its own', async () => {
    const driver = new BackupDriver();
    await publish(driver, 'r1', T0);
    await driver.send({ type: 'xstate.error.actor.applyRetention', error: { reason: 'permission denied', at: T0 + 40 } });
    await publish(driver, 'r2', T0 + 100);
    await driver.send({ type: 'xstate.error.actor.applyRetention', error: { reason: 'target gone', at: T0 + 140 } });
    expect(driver.snapshot.context.retentionWarning).toEqual({ id: 'r2', reason: 'target gone', at: T0 + 140 });
    driver.stop();
  });
});
