/**
 * The credentials files of the network targets (issue "Hardening", finding 7):
 * the mode bits alone said nothing about who can change the file. A 0600 file
 * owned by nobody, a link to one, or a file in a directory nobody can write
 * was read as the password; now each is refused by the trust rule, and the
 * mode check keeps its wording.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import { readSecretFile, type SecretFile } from '../../src/targets/kit/secret-file.js';

const NOBODY = 65534;
const KIND: SecretFile = { what: 'the test password file', secret: 'password', missingHint: 'Create it' };
const dir = mkdtempSync(join(tmpdir(), 'syn3-secret-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function secret(name: string, owner = 0, mode = 0o600): string {
  const file = join(dir, name);
  writeFileSync(file, 'hunter2\n', { mode });
  chmodSync(file, mode);
  chownSync(file, owner, owner);
  return file;
}

async function refusal(file: string): Promise<UserError> {
  const e = await readSecretFile(file, KIND).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(UserError);
  return e as UserError;
}

describe('a secret file', () => {
  it("is read when it is root's, 0600, in root's directories", async () => {
    expect(await readSecretFile(secret('good.pass'), KIND)).toBe('hunter2\n');
  });

  it('is refused when nobody owns it, though its mode is 0600', async () => {
    const file = secret('nobodys.pass', NOBODY);
    const e = await refusal(file);
    expect(e.kind).toBe('trust');
    expect(e.paragraph()).toBe(
      `${file}: the test password file is owned by uid ${NOBODY}, mode 0600; this program runs as root and trusts only what root alone can change. Fix it with: chown root:root ${file}.`,
    );
  });

  it('is refused when it is a link, even to a good file of root', async () => {
    const link = join(dir, 'link.pass');
    symlinkSync(secret('target.pass'), link);
    const e = await refusal(link);
    expect(e.kind).toBe('trust');
    expect(e.message).toMatch(/^the test password file is a symbolic link;/);
  });

  it('is refused when a link points at a 0600 file that nobody owns', async () => {
    const link = join(dir, 'link-to-nobodys.pass');
    symlinkSync(secret('nobodys-target.pass', NOBODY), link);
    expect((await refusal(link)).message).toMatch(/is a symbolic link/);
  });

  it('is refused when the directory above it is writable by others (they could swap it)', async () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const file = join(open, 'x.pass');
    writeFileSync(file, 'pw\n', { mode: 0o600 });
    const e = await refusal(file);
    expect(e.kind).toBe('trust');
    expect(e.where).toBe(open);
    expect(e.message).toMatch(/mode 0777 \(group or others can write it\)/);
  });

  it('open to others keeps its own wording (the mode check comes first)', async () => {
    const file = secret('open.pass', 0, 0o644);
    expect((await refusal(file)).paragraph()).toBe(
      `${file}: the test password file is open to other users (mode 0644). Make it readable by root only: chmod 600 ${file} (and, as other users could read it, consider changing the password).`,
    );
  });

  it('a directory in its place is refused as not a regular file', async () => {
    const d = join(dir, 'adir.pass');
    mkdirSync(d, { mode: 0o700 });
    expect((await refusal(d)).message).toMatch(/is not a regular file/);
  });
});
