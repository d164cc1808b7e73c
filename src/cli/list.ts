/** `list`: the backups on the target, oldest first, each with whether a trusted key signed it. */
import { EXIT } from '../errors.js';
import { formatBytes } from '../format.js';
import { checkSignature, describeVerdict } from '../signing/signature.js';
import { trustedKeys } from '../signing/trusted-keys.js';
import { createTarget } from '../targets/index.js';
import { configOnly, printJson, type GlobalOptions } from './context.js';

export async function listCommand(options: GlobalOptions & { json?: boolean; allHosts?: boolean }): Promise<number> {
  const config = configOnly(options);
  const target = await createTarget(config.target, { stateDir: config.paths.state, host: config.host });
  const all = await target.list();
  const backups = options.allHosts ? all : all.filter((b) => b.metadata.host === config.host);
  const { keys } = trustedKeys(config);
  const verdicts = backups.map((b) => checkSignature(b.metadata, keys));
  if (options.json) {
    printJson(
      backups.map((b, i) => ({
        id: b.id,
        created: b.created,
        size: b.size,
        location: b.location,
        host: b.metadata.host,
        sha256: b.metadata.sha256,
        signature: verdicts[i]!.status,
        ...(b.metadata.signature ? { signedBy: b.metadata.signature.key } : {}),
      })),
    );
    return EXIT.ok;
  }
  if (!backups.length) {
    process.stdout.write(`no backups of ${config.host} on ${target.description}\n`);
    return EXIT.ok;
  }
  const head = ['ID', 'CREATED', 'SIZE', 'SIGNATURE', 'LOCATION'];
  const rows = backups.map((b, i) => [b.id, b.created, formatBytes(b.size), describeVerdict(verdicts[i]!), b.location]);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length), head[i]!.length));
  const line = (r: string[]) => r.map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c)).join('  ');
  process.stdout.write(`${[line(head), ...rows.map(line)].join('\n')}\n`);
  return EXIT.ok;
}
