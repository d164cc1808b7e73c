/** Checks that the programs a step needs are installed, before it changes anything. */
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { toolError } from './run.js';

export async function which(tool: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const candidate = join(dir, tool);
    if (
      await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  return undefined;
}

export async function requireTools(tools: string[]): Promise<void> {
  for (const tool of tools) {
    if (!(await which(tool))) throw toolError(tool, [], { code: 'ENOENT' });
  }
}
