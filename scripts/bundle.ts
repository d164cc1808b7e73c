/**
 * Bundles the CLI into dist/bin so that `tick` starts fast: one file and a
 * few lazily loaded chunks instead of hundreds of module look-ups. CommonJS
 * dependencies inside the ESM bundle still expect require and __filename.
 */
import { build } from 'esbuild';
import { chmod, rename, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const out = join(root, 'dist/bin');
// Built aside and swapped in, so a CLI that is running meanwhile keeps its chunks.
const fresh = `${out}.${process.pid}`;

await build({
  entryPoints: { 'syn3-backup': join(root, 'dist/src/cli/main.js') },
  outdir: fresh,
  bundle: true,
  splitting: true,
  minify: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outExtension: { '.js': '.mjs' },
  logLevel: 'warning',
  banner: {
    js: [
      "import { createRequire as __createRequire } from 'node:module';",
      "import { fileURLToPath as __fileURLToPath } from 'node:url';",
      'const require = __createRequire(import.meta.url);',
      'const __filename = __fileURLToPath(import.meta.url);',
      "const __dirname = __filename.replace(/\\/[^/]*$/, '');",
    ].join(' '),
  },
});
await chmod(join(fresh, 'syn3-backup.mjs'), 0o755);
await rm(`${out}.old`, { recursive: true, force: true });
await rename(out, `${out}.old`).catch(() => undefined);
await rename(fresh, out);
await rm(`${out}.old`, { recursive: true, force: true });
