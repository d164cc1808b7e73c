/**
 * SMB3 encryption (issue "Hardening", finding 8): smbclient's own default
 * encrypts only where the server insists, so a backup crossed the network in
 * clear even to a server that offers encryption. Against real smbd servers
 * (one offering encryption, one without it, one requiring it), what smbstatus
 * on the server reports for the open connection says whether it is encrypted.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { smbTargetSchema } from '../../src/targets/smb-config.js';
import { SmbTarget } from '../../src/targets/smb.js';
import { startSmbServer, type SmbServer } from '../support/servers/smb.js';

type Encryption = 'desired' | 'required' | 'off';

let offering: SmbServer;
let without: SmbServer;
let requiring: SmbServer;
let folders = 0;

beforeAll(async () => {
  offering = await startSmbServer({ shares: [{ name: 'b' }] });
  without = await startSmbServer({ shares: [{ name: 'b' }], encrypt: 'off' });
  requiring = await startSmbServer({ shares: [{ name: 'b' }], encrypt: 'required' });
}, 60_000);

afterAll(async () => {
  await Promise.all([offering?.stop(), without?.stop(), requiring?.stop()]);
});

function target(server: SmbServer, encryption?: Encryption): SmbTarget {
  const directory = `d${++folders}`;
  mkdirSync(join(server.path('b'), directory));
  return new SmbTarget(
    smbTargetSchema.parse({
      type: 'smb',
      share: server.unc('b'),
      port: server.port,
      directory,
      credentials_file: server.credentialsFile,
      ...(encryption ? { encryption } : {}),
    }),
  );
}

/** The Encryption column smbstatus shows for the share while an upload holds the connection open. */
async function shareEncryptionDuringUpload(server: SmbServer, t: SmbTarget): Promise<string> {
  const source = new Readable({ read() {} });
  const writing = t.write('host-1', source);
  source.push(randomBytes(4096));
  let row: string | undefined;
  for (let i = 0; i < 100 && !row; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    // "b   <pid>   127.0.0.1   <connected at>   <encryption>   <signing>"
    row = server
      .sessions()
      .split('\n')
      .find((l) => /^b\s+\d+\s+127\.0\.0\.1\s/.test(l));
  }
  source.push(null);
  await writing;
  if (!row) throw new Error(`smbstatus never showed the connection:\n${server.sessions()}`);
  const columns = row.trim().split(/\s{2,}/);
  return columns.at(-2)!;
}

async function failure(p: Promise<unknown>): Promise<UserError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(UserError);
  return e as UserError;
}

describe('smb target: SMB3 encryption', () => {
  it('is desired by default, and takes only desired, required or off', () => {
    expect(smbTargetSchema.parse({ type: 'smb', share: '//nas/b' }).encryption).toBe('desired');
    expect(smbTargetSchema.safeParse({ type: 'smb', share: '//nas/b', encryption: 'yes' }).success).toBe(false);
  });

  it('by default, encrypts where the server offers it but does not insist', async () => {
    expect(await shareEncryptionDuringUpload(offering, target(offering))).toMatch(/^AES-\d+-(GCM|CCM)$/);
  }, 60_000);

  it('off sends in clear to the same server: what the default did before (the check above can fail)', async () => {
    expect(await shareEncryptionDuringUpload(offering, target(offering, 'off'))).toBe('-');
  }, 60_000);

  it('desired still works with a server without encryption', async () => {
    await target(without).check();
  }, 60_000);

  it('required refuses a server without encryption, with a clear error and nothing written', async () => {
    const t = target(without, 'required');
    const e = await failure(t.check());
    expect(e.kind).toBe('target');
    expect(e.paragraph()).toBe(
      `127.0.0.1 port ${without.port}: the SMB server does not offer SMB3 encryption, and target.encryption is required. ` +
        'Turn encryption on at the server (Samba: server smb encrypt = desired), or set target.encryption: desired to accept a connection in clear.',
    );
    const w = await failure(t.write('host-2', Readable.from([randomBytes(100)])));
    expect(w.message).toBe('the SMB server does not offer SMB3 encryption, and target.encryption is required');
  }, 60_000);

  it('required encrypts with a server that requires it too', async () => {
    expect(await shareEncryptionDuringUpload(requiring, target(requiring, 'required'))).toMatch(/^AES-/);
  }, 60_000);
});
