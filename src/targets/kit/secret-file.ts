/**
 * The files that hold a target's password or keys (smb, ftp, s3): private to
 * root (mode 0600 or stricter), read at each use, never copied anywhere. A
 * file that group or others can open is refused before anything is sent,
 * whatever it holds; so is one that fails the trust rule (a link, a file
 * someone else owns, a directory above it others can write): whoever controls
 * it chooses the credentials, and with them the server root sends backups to.
 */
import { lstat, readFile } from 'node:fs/promises';
import { UserError } from '../../errors.js';
import { requireTrusted } from '../../system/trust.js';

export interface SecretFile {
  /** For messages: "the FTP password file". */
  what: string;
  /** What is in it, for the advice after it was exposed: "password", "keys". */
  secret: string;
  /** How to make one when it is missing. */
  missingHint: string;
}

/** The file's text, once it is known to be a regular file only root may change and only its owner may open. */
export async function readSecretFile(file: string, kind: SecretFile): Promise<string> {
  // lstat: a link is the trust rule's to refuse, not followed to whatever it names.
  const info = await lstat(file).catch(() => undefined);
  if (!info) throw new UserError('config', `${kind.what} does not exist`, { where: file, hint: kind.missingHint });
  const mode = info.mode & 0o777;
  if (info.isFile() && mode & 0o077) {
    const who = mode & 0o007 ? 'other users' : 'its group';
    throw new UserError('config', `${kind.what} is open to ${who} (mode ${mode.toString(8).padStart(4, '0')})`, {
      where: file,
      hint: `Make it readable by root only: chmod 600 ${file} (and, as ${who} could read it, consider changing the ${kind.secret})`,
    });
  }
  requireTrusted(file, 'file', kind.what);
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new UserError('config', `${kind.what} cannot be read`, { where: file, hint: 'Check that it is readable by root', cause: e });
  }
}
