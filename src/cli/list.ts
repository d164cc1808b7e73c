/** `list`: the backups on the target, oldest first. */
import { EXIT } from '../errors.js';
import { formatBytes } from '../format.js';
import { createTarget } from '../targets/index.js';
import { configOnly, printJson, type GlobalOptions } from './context.js';

export async function listCommand(options: GlobalOptions & { json?: boolean; allHosts?: boolean }): Promise<number> {
  const config = configOnly(options);
  const target = await createTarget(config.target);
  const all = await target.list();
  const backups = options.allHosts ? all : all.filter((b) => b.metadata.host === config.host);
  if (options.json) {
    printJson(
      backups.map((b) => ({
        id: b.id,
        created: b.created,
        size: b.size,
        location: b.location,
        host: b.metadata.host,
        sha256: b.metadata.sha256,
      })),
    );
    return EXIT.ok;
  }
  if (!backups.length) {
    process.stdout.write(`no backups of ${config.host} on ${target.description}\n`);
    return EXIT.ok;
  }
  const rows = backups.map((b) => [b.id, b.created, formatBytes(b.size), b.location]);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length), ['ID', 'CREATED', 'SIZE'][i]!.length));
  const line = (r: string[]) => r.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c)).join('  ');
  process.stdout.write(`${[line(['ID', 'CREATED', 'SIZE', 'LOCATION']), ...rows.map(line)].join('\n')}\n`);
  return EXIT.ok;
}
