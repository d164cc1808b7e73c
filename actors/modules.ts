/**
 * The seed's spool step: run every executable modules/*.backup (and, on
 * restore, *.restore) in name order. Modules run as root, so one that anyone
 * but root could have changed is refused rather than run.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../src/errors.js';
import { requireTrusted } from '../src/system/trust.js';
import { lastLines, run } from '../src/system/run.js';

export interface ModuleRun {
  dir: string;
  suffix: '.backup' | '.restore';
  env: Record<string, string>;
  timeoutMs: number;
  cwd: string;
  log: (message: string, fields?: Record<string, unknown>) => void;
  signal?: AbortSignal;
}

export async function listModules(dir: string, suffix: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  // Whoever can write the directory can put a module there, or swap one.
  requireTrusted(dir, 'directory', 'the modules directory (paths.modules)');
  const modules: string[] = [];
  for (const name of names.filter((n) => n.endsWith(suffix)).sort()) {
    const file = join(dir, name);
    const st = await lstat(file);
    if (!st.isSymbolicLink() && (!st.isFile() || (st.mode & 0o111) === 0)) continue;
    // Modules run as root: one that anyone but root could have changed is refused, a link too.
    requireTrusted(file, 'file', `module ${name}`);
    modules.push(file);
  }
  return modules;
}

export async function runModules(m: ModuleRun): Promise<{ modules: string[] }> {
  const modules = await listModules(m.dir, m.suffix);
  for (const file of modules) {
    m.log(`running module ${file}`);
    try {
      const { stdout, stderr } = await run(file, [], { cwd: m.cwd, env: m.env, timeoutMs: m.timeoutMs, signal: m.signal });
      if (stdout || stderr) m.log(`module ${file} said`, { stdout: lastLines(stdout, 20), stderr: lastLines(stderr, 20) });
    } catch (e) {
      const said = e instanceof UserError ? e.message : String(e);
      throw new UserError('module', `module ${file} failed: ${said}`, {
        hint: `Run it by hand to see why (${Object.entries(m.env)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')} ${file}); the backup was not made and the earlier ones are kept`,
        cause: e,
      });
    }
  }
  return { modules };
}
