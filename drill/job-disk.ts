/**
 * The job disk: how the harness talks to drill-agent inside a machine without
 * a network or shared folder (the Debian cloud kernel has no 9p). The harness
 * writes a tar (job.sh, its name, what to do after it) onto a small raw image;
 * the agent runs the job and writes its results back as a tar onto the same disk.
 */
import { mkdtemp, readFile, rm, writeFile, copyFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../src/system/run.js';

export interface Job {
  name: string;
  /** A script from drill/guest/jobs. */
  script: string;
  /** What the agent does after the job: power off (the default) or reboot. */
  afterwards?: 'poweroff' | 'reboot';
  /** Small files for the job, by name. */
  files?: Record<string, string>;
}

const JOB_DISK_BYTES = 256 * 1024 * 1024;

export async function writeJobDisk(image: string, job: Job): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'syn3-drill-job-'));
  try {
    await copyFile(job.script, join(dir, 'job.sh'));
    await writeFile(join(dir, 'name'), job.name);
    await writeFile(join(dir, 'then'), job.afterwards ?? 'poweroff');
    for (const [name, content] of Object.entries(job.files ?? {})) await writeFile(join(dir, name), content);
    await rm(image, { force: true });
    await run('tar', ['-cf', image, '-C', dir, '.']);
    await run('truncate', ['-s', String(JOB_DISK_BYTES), image]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface JobResult {
  /** The job's exit status, or null when the agent never wrote one back. */
  rc: number | null;
  dir: string;
  log: string;
}

export async function readJobDisk(image: string, into: string): Promise<JobResult> {
  await mkdir(into, { recursive: true });
  await run('tar', ['-xf', image, '-C', into]);
  const text = async (name: string) => readFile(join(into, name), 'utf8').catch(() => undefined);
  const rc = await text('rc');
  const hasJob = await text('job.sh');
  return { rc: rc === undefined || hasJob !== undefined ? null : Number(rc.trim()), dir: into, log: (await text('job.log')) ?? '' };
}
