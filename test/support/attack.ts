/**
 * The attacker's side of the hardening tests: a backed-up sandbox with one
 * good backup to keep intact, the unprivileged user `nobody` (through
 * runuser) who plants what a careless set-up lets them, and the checks every
 * refusal must pass.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { expect } from 'vitest';
import { listBackups, looksLikeStackTrace, runCli, sha256File, writeSandboxConfig, type CliResult, type ListedBackup } from './cli.js';
import { createSandbox, type Sandbox } from './sandbox.js';

export const NOBODY = 65534;

export interface AttackSandbox {
  sandbox: Sandbox;
  config: string;
  target: string;
  modules: string;
  state: string;
  /** The good backup made before any attack: it must stay listed and intact. */
  earlier: ListedBackup;
  earlierSha: string;
}

export async function attackSandbox(): Promise<AttackSandbox> {
  const sandbox = await createSandbox();
  await mkdir(join(sandbox.home.mountPoint, 'alice'));
  await writeFile(join(sandbox.home.mountPoint, 'alice', 'notes.txt'), 'remember the milk\n');
  const target = join(sandbox.dir, 'target');
  const modules = join(sandbox.dir, 'modules');
  const state = join(sandbox.dir, 'state');
  await mkdir(target);
  await mkdir(modules);
  const config = await writeSandboxConfig(sandbox, { target, modules, state, keep: 50 });
  const made = await runCli(config, ['backup']);
  if (made.exitCode !== 0) throw new Error(`the first backup failed: ${made.stderr}`);
  const [earlier] = await listBackups(config);
  return { sandbox, config, target, modules, state, earlier: earlier!, earlierSha: await sha256File(earlier!.location) };
}

/** Runs a command as the unprivileged user, as the attacker would. */
export async function asNobody(cmd: string, args: string[]): Promise<void> {
  await execa('runuser', ['-u', 'nobody', '--', cmd, ...args]);
}

/** One paragraph on stderr with the exit code, no stack trace, no "internal error". */
export function expectOneParagraph(r: CliResult, exitCode: number): void {
  expect(r.exitCode, r.stderr).toBe(exitCode);
  expect(looksLikeStackTrace(r.stderr), r.stderr).toBe(false);
  expect(r.stderr).not.toMatch(/internal error/i);
}

export async function expectEarlierIntact(f: AttackSandbox): Promise<void> {
  const listed = await listBackups(f.config);
  expect(listed[0]).toEqual(f.earlier);
  expect(await sha256File(f.earlier.location)).toBe(f.earlierSha);
}
