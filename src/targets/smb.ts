/**
 * The smb target: a Samba or Windows share, reached through smbclient (the
 * npm SMB clients need NTLMv1). Layout inside <share>/<directory>:
 *   .incoming/<id>.xfsdump              while a backup is written and verified
 *   <id>.xfsdump + <id>.meta.json       once committed (a rename, then the metadata)
 * A dump counts as a backup only when its meta.json is beside it; the
 * metadata is written last (under a temporary name, then renamed) and removed
 * first, so an interrupted run never leaves a half backup listed.
 *
 * smbclient runs one command list per connection (each costs a process and a
 * login, about 0.1 s); the password stays in the 0600 credentials file handed
 * to -A, never on a command line. Its exit status is that of the last command
 * only, so a step whose failure matters runs last, or its outcome is read
 * from what smbclient printed (a listing, an NT_STATUS_* line).
 * Each host should have its own target.directory: cleanPending takes any
 * unfinished upload in the directory for a leftover.
 */
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { finish, run, start, type RunResult } from '../system/run.js';
import { UserError } from '../errors.js';
import {
  assertSameBackup,
  checkId,
  EARLIER_KEPT,
  encodeMetadata,
  isBackupId,
  LIST_SHOWS,
  oldestFirst,
  PARTIAL_DISCARDED,
  readSecretFile,
  RUN_AGAIN,
  storedBackup,
  trustedMetadata,
} from './kit/index.js';
import type { SmbTargetConfig } from './smb-config.js';
import type { BackupMetadata, StoredBackup, Target } from './target.js';

/**
 * smbclient's own default encrypts only where the server insists. --client-protection=encrypt
 * (4.15+) requires it, and signing too; the smb.conf option sets encryption alone.
 */
const ENCRYPTION: Record<SmbTargetConfig['encryption'], string> = {
  desired: '--option=client smb encrypt=desired',
  required: '--client-protection=encrypt',
  off: '--option=client smb encrypt=off',
};

const INCOMING = '.incoming';
const DUMP_SUFFIX = '.xfsdump';
const META_SUFFIX = '.meta.json';
/** How long a command that moves no backup data may take (smbclient gives up on a silent server after 20 s). */
const CONTROL_TIMEOUT_MS = 120_000;
const SAID_LIMIT = 64 * 1024;
/** More than smbclient's message about a file it cannot open. */
const HOLD_BYTES = 4096;
/** How much of the end of a read is kept, to find a message smbclient printed there. */
const TAIL_BYTES = 1024;

export interface SmbCredentials {
  file: string;
  /** What must never show up in a message: the password. */
  secrets: string[];
}

/**
 * Reads the credentials file smbclient -A gets: it must be private to its
 * owner (0600) and name a user and a password, or smbclient would ask for one.
 */
export async function readSmbCredentials(file: string): Promise<SmbCredentials> {
  const hint = `Create it with "username = ...", "password = ..." and "domain = ..." lines and chmod 600, or correct target.credentials_file`;
  const text = await readSecretFile(file, { what: 'the SMB credentials file', secret: 'password', missingHint: hint });
  const values = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(username|password|domain)\s*=\s?(.*)$/i.exec(line);
    if (m) values.set(m[1]!.toLowerCase(), m[2]!);
  }
  if (!values.get('username')?.trim() || !values.has('password')) {
    throw new UserError('config', 'the SMB credentials file needs a username = line and a password = line', { where: file, hint });
  }
  const password = values.get('password')!;
  return { file, secrets: password ? [password, password.trim()].filter(Boolean) : [] };
}

type Failure =
  | 'credentials'
  | 'share'
  | 'share-access'
  | 'unreachable'
  | 'encryption'
  | 'directory'
  | 'full'
  | 'dropped'
  | 'denied'
  | 'not-found'
  | 'other';

const LOGIN_REFUSED =
  'LOGON_FAILURE|WRONG_PASSWORD|NO_SUCH_USER|ACCOUNT_(?:DISABLED|LOCKED_OUT|EXPIRED|RESTRICTION)|PASSWORD_(?:EXPIRED|MUST_CHANGE)|INVALID_LOGON_HOURS|INVALID_WORKSTATION';
const NOT_FOUND = 'OBJECT_NAME_NOT_FOUND|OBJECT_PATH_NOT_FOUND|NO_SUCH_FILE';

/** In order: the first rule that matches says what went wrong; its group is the status to show. */
const RULES: [Failure, RegExp][] = [
  ['encryption', /Encryption required and server doesn't support SMB3 (encryption)/],
  ['credentials', new RegExp(`session setup failed: (NT_STATUS_(?:ACCESS_DENIED|${LOGIN_REFUSED}))`)],
  ['credentials', new RegExp(`(NT_STATUS_(?:${LOGIN_REFUSED}))`)],
  ['share', /(NT_STATUS_BAD_NETWORK_NAME)/],
  ['share-access', /tree connect failed: (NT_STATUS_(?:ACCESS_DENIED|NETWORK_ACCESS_DENIED))/],
  ['unreachable', /do_connect: .*\(Error (NT_STATUS_\w+)\)/],
  ['unreachable', /(?:protocol negotiation|session setup|tree connect) failed: (NT_STATUS_\w+)/],
  ['unreachable', /(NT_STATUS_(?:CONNECTION_REFUSED|HOST_UNREACHABLE|NETWORK_UNREACHABLE|BAD_NETWORK_PATH|INVALID_ADDRESS))/],
  ['directory', new RegExp(`^cd .*: (NT_STATUS_(?:${NOT_FOUND}|NOT_A_DIRECTORY))`, 'm')],
  ['full', /(NT_STATUS_(?:DISK_FULL|QUOTA_EXCEEDED))/],
  [
    'dropped',
    /(NT_STATUS_(?:CONNECTION_(?:DISCONNECTED|RESET|ABORTED)|END_OF_FILE|INVALID_NETWORK_RESPONSE|PIPE_BROKEN|IO_TIMEOUT|NETWORK_NAME_DELETED|USER_SESSION_DELETED|NETWORK_SESSION_EXPIRED))/,
  ],
  ['denied', /(NT_STATUS_(?:ACCESS_DENIED|NETWORK_ACCESS_DENIED|MEDIA_WRITE_PROTECTED|CANNOT_DELETE|SHARING_VIOLATION))/],
  ['not-found', new RegExp(`(NT_STATUS_(?:${NOT_FOUND}))`)],
];

/** Failures before any command ran: nothing was created on the share. */
const CONNECTION_FAILURES: Failure[] = ['credentials', 'share', 'share-access', 'unreachable', 'encryption', 'directory'];

/** A line that is no failure: "mkdir .incoming" where it exists already. */
const HARMLESS = /^NT_STATUS_OBJECT_NAME_COLLISION making remote directory .*$/gm;

/** What went wrong, from what smbclient said (it prints NT_STATUS_* codes on stdout or stderr). */
export function classifySmbFailure(said: string, signal?: string): { failure: Failure; status?: string } {
  const text = said.replace(HARMLESS, '');
  for (const [failure, rule] of RULES) {
    const m = rule.exec(text);
    if (m) return { failure, status: m[1]! };
  }
  if (signal === 'SIGPIPE') return { failure: 'dropped' };
  const status = /NT_STATUS_[A-Z_]+/.exec(text)?.[0];
  return status ? { failure: 'other', status } : { failure: 'other' };
}

interface Entry {
  name: string;
  directory: boolean;
  size: number;
}

/** The entries of smbclient's ls output: "  name   A   1234  Thu Nov 26 03:58:25 2026". */
export function parseSmbListing(stdout: string): Entry[] {
  const entries: Entry[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^ {2}(.+?)\s+([A-Z]*)\s+(\d+)\s+\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/.exec(line.trimEnd());
    if (!m || m[1] === '.' || m[1] === '..') continue;
    entries.push({ name: m[1]!, directory: m[2]!.includes('D'), size: Number(m[3]) });
  }
  return entries;
}

interface Failed {
  said: string;
  signal?: string | undefined;
  cause: unknown;
}

/** What smbclient said on its way out, from the error run()/finish() threw (its cause is execa's error). */
function failedFrom(e: unknown, stdout = ''): Failed {
  const cause = (e as { cause?: unknown }).cause ?? e;
  const c = (cause ?? {}) as { stdout?: unknown; stderr?: unknown; signal?: unknown };
  const said = [stdout, typeof c.stdout === 'string' ? c.stdout : '', typeof c.stderr === 'string' ? c.stderr : '']
    .filter(Boolean)
    .join('\n');
  return { said, signal: typeof c.signal === 'string' ? c.signal : undefined, cause: e };
}

export class SmbTarget implements Target {
  readonly description: string;
  private readonly where: string;
  private readonly host: string;

  constructor(private readonly config: SmbTargetConfig) {
    this.where = config.directory ? `${config.share}/${config.directory}` : config.share;
    this.host = config.share.split('/')[2] ?? config.share;
    this.description = `smb target ${this.where}${config.port === 445 ? '' : ` (port ${config.port})`}`;
  }

  async check(): Promise<void> {
    // Connects, logs in, opens the share, enters the directory and makes sure .incoming can be created there.
    const r = await this.session(`mkdir ${INCOMING}; ls ${INCOMING}`, 'check');
    if (!r.ok || /NT_STATUS_(ACCESS_DENIED|MEDIA_WRITE_PROTECTED)/.test(r.said)) throw this.error(r, 'check', this.where);
  }

  async write(id: string, source: Readable): Promise<void> {
    const name = pendingDump(id);
    const creds = await readSmbCredentials(this.config.credentials_file);
    const args = this.args(creds, `mkdir ${INCOMING}; put - ${name}`);
    const child = start('smbclient', args, { stdin: 'pipe', stdout: 'pipe', secrets: creds.secrets });
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout = (stdout + d).slice(-SAID_LIMIT);
    });
    let killed = false;
    // A source that fails must not become a short file: stop smbclient before it sees the end of its input.
    // (When smbclient fails first, the pipeline destroys the source too; then smbclient is gone already.)
    source.once('error', () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      killed = true;
      child.kill('SIGKILL');
    });
    const [piped, stored] = await Promise.allSettled([pipeline(source, child.stdin!), finish(child, 'smbclient', args, creds.secrets)]);
    const failure = stored.status === 'rejected' ? failedFrom(stored.reason, stdout) : undefined;
    const sourceFailed = piped.status === 'rejected' && (!failure || (killed && failure.signal === 'SIGKILL'));
    if (!failure && !sourceFailed) return;
    // A partial file is useless, and on a full share it holds the space the next run needs.
    // (Nothing was created when the connection, the login or the directory failed.)
    if (sourceFailed || !CONNECTION_FAILURES.includes(classifySmbFailure(failure!.said, failure!.signal).failure)) {
      await this.smb(`del ${name}`, 'remove').catch(() => undefined);
    }
    if (sourceFailed) throw (piped as PromiseRejectedResult).reason;
    throw this.error(failure!, 'write', `${this.where}/${name}`);
  }

  async openPending(id: string): Promise<Readable> {
    return this.read(pendingDump(id));
  }

  async commit(id: string, metadata: BackupMetadata): Promise<StoredBackup> {
    // One connection publishes the dump and uploads the metadata under its temporary name; a second
    // one renames the metadata into place, which is what makes the backup count.
    // The rename has no -f: a dump already under the final name is looked at before anything replaces it.
    const first = await this.session(`rename ${pendingDump(id)} ${finalDump(id)}; put - ${pendingMeta(id)}`, 'commit', {
      input: encodeMetadata(metadata),
    });
    const renameFailed = /^NT_STATUS_\w+ renaming files.*$/m.exec(first.said)?.[0];
    if (renameFailed) {
      const { failure } = classifySmbFailure(renameFailed);
      const collision = renameFailed.startsWith('NT_STATUS_OBJECT_NAME_COLLISION');
      if (failure !== 'not-found' && !collision)
        throw this.error({ ...first, said: renameFailed }, 'commit', `${this.where}/${finalDump(id)}`);
      const already = await this.readMetadata(id);
      if (already) {
        assertSameBackup(id, already, metadata, `${this.where}/${finalDump(id)}`);
        return this.describe(id, metadata);
      }
      if (collision) {
        // A dump without metadata is the leftover of an interrupted run: the verified one replaces it.
        await this.smb(`rename ${pendingDump(id)} ${finalDump(id)} -f`, 'commit');
      } else if (!(await this.exists(finalDump(id)))) {
        // Not there either: an earlier commit of this id did not get as far as the rename.
        throw new UserError('target', `there is no written backup ${id} to commit`, {
          where: `${this.where}/${pendingDump(id)}`,
          hint: RUN_AGAIN,
        });
      }
    }
    if (!first.ok) throw this.error(first, 'commit', `${this.where}/${pendingMeta(id)}`);
    await this.smb(`rename ${pendingMeta(id)} ${finalMeta(id)} -f`, 'commit');
    return this.describe(id, metadata);
  }

  async list(): Promise<StoredBackup[]> {
    const local = await mkdtemp(join(tmpdir(), 'syn3-smb-list-'));
    try {
      // One connection: fetch every meta.json (mget fails harmlessly when there is none), then list; ls is last, so its status counts.
      const { stdout } = await this.smb(`lcd "${local}"; prompt; mget *${META_SUFFIX}; ls`, 'list');
      const files = new Set(
        parseSmbListing(stdout)
          .filter((e) => !e.directory)
          .map((e) => e.name),
      );
      const found: StoredBackup[] = [];
      for (const name of files) {
        const id = name.endsWith(META_SUFFIX) ? name.slice(0, -META_SUFFIX.length) : undefined;
        if (!id || !isBackupId(id) || !files.has(finalDump(id))) continue;
        const metadata = trustedMetadata(await readFile(join(local, name), 'utf8').catch(() => ''), id);
        if (metadata) found.push(this.describe(id, metadata));
      }
      return oldestFirst(found);
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  }

  async open(id: string): Promise<Readable> {
    return this.read(finalDump(id));
  }

  async remove(id: string): Promise<void> {
    // The metadata goes first: a dump without it is no longer a backup, whatever happens next.
    const names = [finalMeta(id), finalDump(id)];
    const r = await this.session(`${names.map((n) => `del ${n}`).join('; ')}; ls ${checkId(id)}.*`, 'remove');
    const left = filesIn(r.stdout).filter((n) => names.includes(n));
    if (left.length) throw this.error(r, 'remove', `${this.where}/${left[0]!}`);
  }

  async cleanPending(keep?: string): Promise<string[]> {
    const listing = `ls; ls ${INCOMING}/*`;
    const leftovers = this.leftovers((await this.session(listing, 'list')).stdout, keep);
    if (leftovers.length === 0) return [];
    const after = await this.session(`${leftovers.map((l) => `del ${l.path}`).join('; ')}; ${listing}`, 'remove');
    const still = new Set(this.leftovers(after.stdout, keep).map((l) => l.path));
    return [...new Set(leftovers.filter((l) => !still.has(l.path)).map((l) => l.id))];
  }

  /**
   * Files of unfinished runs, from the output of "ls; ls .incoming/*": anything
   * in .incoming, and a dump or metadata without its partner (a commit or a
   * removal that was interrupted).
   */
  private leftovers(stdout: string, keep?: string): { id: string; path: string }[] {
    // Each listing ends with its "N blocks of size B. M blocks available" line.
    const [topText = '', incomingText = ''] = stdout.split(/^\s*\d+ blocks of size \d+\. \d+ blocks available\s*$/m);
    const top = filesIn(topText);
    const names = new Set(top);
    const out: { id: string; path: string }[] = [];
    for (const name of filesIn(incomingText)) {
      const id = idOf(name);
      if (id && id !== keep) out.push({ id, path: `${INCOMING}/${name}` });
    }
    for (const name of top) {
      const id = idOf(name);
      if (!id || id === keep) continue;
      const partner = name.endsWith(DUMP_SUFFIX) ? finalMeta(id) : finalDump(id);
      if (!names.has(partner)) out.push({ id, path: name });
    }
    return out;
  }

  private describe(id: string, metadata: BackupMetadata): StoredBackup {
    return storedBackup(metadata, `${this.where}/${finalDump(id)}`);
  }

  private async exists(name: string): Promise<boolean> {
    const { stdout } = await this.smb(`ls ${name}`, 'list', { missingIsFine: true });
    return parseSmbListing(stdout).length > 0;
  }

  private async readMetadata(id: string): Promise<BackupMetadata | undefined> {
    const { stdout } = await this.smb(`get ${finalMeta(id)} -`, 'list', { missingIsFine: true });
    return trustedMetadata(stdout, id);
  }

  /**
   * Streams a file from the share, on one connection. smbclient reports a
   * file it cannot open on stdout, which here is the data: so the first bytes
   * are held until there are more than such a message could be, or smbclient
   * has ended; a failure to open (no file, no server, wrong password) rejects
   * here, before the caller starts. A failure later fails the stream at its
   * end, so a short read never passes for a whole one.
   */
  private async read(name: string): Promise<Readable> {
    const where = `${this.where}/${name}`;
    const creds = await readSmbCredentials(this.config.credentials_file);
    const args = this.args(creds, `get ${name} -`);
    const child = start('smbclient', args, { stdout: 'pipe', secrets: creds.secrets });
    const stdout = child.stdout!;
    const exited = finish(child, 'smbclient', args, creds.secrets);
    exited.catch(() => undefined); // awaited through `done`
    // Done once all output is in and smbclient has ended; its exit says how it went.
    const done = finished(stdout)
      .catch(() => undefined)
      .then(() => exited);
    const held: Buffer[] = [];
    let heldBytes = 0;
    const opened = await new Promise<boolean>((resolve) => {
      const hold = (chunk: Buffer) => {
        held.push(chunk);
        heldBytes += chunk.length;
        if (heldBytes < HOLD_BYTES) return;
        stdout.pause();
        stdout.off('data', hold);
        resolve(true);
      };
      stdout.on('data', hold);
      done.then(
        () => resolve(false),
        () => resolve(false),
      );
    });
    const out = new PassThrough({ highWaterMark: 1024 * 1024 });
    if (!opened) {
      await done.catch((e: unknown) => {
        throw this.error(failedFrom(e, Buffer.concat(held).toString('utf8')), 'read', where);
      });
      out.end(Buffer.concat(held));
      return out;
    }
    out.write(Buffer.concat(held));
    stdout.pipe(out, { end: false });
    // What smbclient printed last went to stdout too (say, a failure to close the file): keep the tail.
    let tail: Buffer = Buffer.concat(held).subarray(-TAIL_BYTES);
    stdout.on('data', (chunk: Buffer) => {
      tail = chunk.length >= TAIL_BYTES ? chunk.subarray(-TAIL_BYTES) : Buffer.concat([tail, chunk]).subarray(-TAIL_BYTES);
    });
    done.then(
      () => out.end(),
      (e: unknown) => out.destroy(this.error(failedFrom(e, tail.toString('latin1')), 'read', where)),
    );
    // A reader that stops early must not leave smbclient behind.
    out.on('close', () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    });
    return out;
  }

  private args(creds: SmbCredentials, commands: string): string[] {
    return [
      this.config.share,
      '-p',
      String(this.config.port),
      ENCRYPTION[this.config.encryption],
      '-A',
      creds.file,
      ...(this.config.directory ? ['-D', this.config.directory] : []),
      '-c',
      commands,
    ];
  }

  /**
   * One smbclient connection running `commands`. Failing to connect, log in,
   * open the share or enter the directory throws the target's error (no
   * command ran then); otherwise the caller reads what the commands said,
   * and `ok` is the status of the last one.
   */
  private async session(
    commands: string,
    action: Action,
    options: { input?: string } = {},
  ): Promise<Failed & { ok: boolean; stdout: string }> {
    const creds = await readSmbCredentials(this.config.credentials_file);
    try {
      const r = await run('smbclient', this.args(creds, commands), {
        secrets: creds.secrets,
        timeoutMs: CONTROL_TIMEOUT_MS,
        ...(options.input === undefined ? {} : { input: options.input }),
      });
      return { ok: true, stdout: r.stdout, said: `${r.stdout}\n${r.stderr}`, cause: undefined };
    } catch (e) {
      const failure = failedFrom(e);
      // A session that was cut short (connection lost, killed, timed out) says nothing reliable about its commands.
      const { failure: what } = classifySmbFailure(failure.said, failure.signal);
      if (CONNECTION_FAILURES.includes(what) || what === 'dropped' || failure.signal) throw this.error(failure, action, this.where);
      const c = (e as { cause?: { stdout?: unknown } }).cause;
      return { ...failure, ok: false, stdout: typeof c?.stdout === 'string' ? c.stdout : '' };
    }
  }

  /** One smbclient connection running `commands`; failures become the target's errors. */
  private async smb(
    commands: string,
    action: Action,
    options: { input?: string; missingIsFine?: boolean } = {},
  ): Promise<RunResult & { missing?: boolean }> {
    const creds = await readSmbCredentials(this.config.credentials_file);
    try {
      return await run('smbclient', this.args(creds, commands), {
        secrets: creds.secrets,
        timeoutMs: CONTROL_TIMEOUT_MS,
        ...(options.input === undefined ? {} : { input: options.input }),
      });
    } catch (e) {
      const failure = failedFrom(e);
      if (options.missingIsFine && classifySmbFailure(failure.said, failure.signal).failure === 'not-found') {
        return { stdout: '', stderr: failure.said, missing: true };
      }
      throw this.error(failure, action, this.where);
    }
  }

  private error(failure: Failed, action: Action, where: string): UserError {
    const { said, signal, cause } = failure;
    const { failure: what, status } = classifySmbFailure(said, signal);
    const code = status ? ` (${status})` : signal ? ` (smbclient was killed by ${signal})` : '';
    const creds = this.config.credentials_file;
    const kept = action === 'write' || action === 'commit' ? `; ${EARLIER_KEPT}` : '';
    const discarded = action === 'write' ? `; ${PARTIAL_DISCARDED}` : '';
    const make = (message: string, at: string, hint: string) => new UserError('target', message, { where: at, hint, cause });
    switch (what) {
      case 'credentials':
        return make(
          `the SMB server refused the login${code}`,
          this.config.share,
          `Check the username, password and domain lines in ${creds}${kept}`,
        );
      case 'share':
        return make(
          `the share does not exist on the server${code}`,
          this.config.share,
          `Create the share on the server or correct target.share (smbclient -L //${this.host} -A ${creds} lists the shares)${kept}`,
        );
      case 'share-access':
        return make(
          `the SMB server does not let this user use the share${code}`,
          this.config.share,
          `Allow the user named in ${creds} on the share (valid users), or use another account${kept}`,
        );
      case 'unreachable':
        return make(
          `cannot reach the SMB server${code}`,
          `${this.host} port ${this.config.port}`,
          `Check that the server is running and reachable from this host, and that target.share and target.port are right${kept}`,
        );
      case 'encryption':
        return make(
          'the SMB server does not offer SMB3 encryption, and target.encryption is required',
          `${this.host} port ${this.config.port}`,
          `Turn encryption on at the server (Samba: server smb encrypt = desired), or set target.encryption: desired to accept a connection in clear${kept}`,
        );
      case 'directory':
        return make(
          `the directory does not exist on the share${code}`,
          this.where,
          `Create it on the share, or correct target.directory${kept}`,
        );
      case 'full':
        return make(`the share is full${discarded}${code}`, where, `Free space on the share or lower target.retention.keep${kept}`);
      case 'dropped':
        return make(
          `the connection to the SMB server was lost during the ${action === 'read' ? 'read' : 'transfer'}${discarded}${code}`,
          where,
          action === 'read'
            ? 'Check the server and the network, then try again'
            : `Check the server and the network, then run again${kept}`,
        );
      case 'denied':
        return make(`the share refused access${code}`, where, `Give the user named in ${creds} write access to ${this.where}${kept}`);
      case 'not-found':
        return make(`the backup file is not on the share${code}`, where, LIST_SHOWS);
      case 'other': {
        const last = said
          .replace(HARMLESS, '')
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean)
          .slice(-3)
          .join(' / ');
        return make(
          `smbclient failed${last ? `: ${last}` : code}`,
          where,
          `Check the share with: smbclient ${this.config.share} -p ${this.config.port} -A ${creds}${kept}`,
        );
      }
    }
  }
}

type Action = 'check' | 'write' | 'read' | 'commit' | 'list' | 'remove';

const pendingDump = (id: string) => `${INCOMING}/${checkId(id)}${DUMP_SUFFIX}`;
const pendingMeta = (id: string) => `${INCOMING}/${checkId(id)}${META_SUFFIX}`;
const finalDump = (id: string) => `${checkId(id)}${DUMP_SUFFIX}`;
const finalMeta = (id: string) => `${checkId(id)}${META_SUFFIX}`;

/** The names of the plain files in an ls output. */
function filesIn(stdout: string): string[] {
  return parseSmbListing(stdout)
    .filter((e) => !e.directory)
    .map((e) => e.name);
}

function idOf(name: string): string | undefined {
  const suffix = [DUMP_SUFFIX, META_SUFFIX].find((s) => name.endsWith(s));
  const id = suffix ? name.slice(0, -suffix.length) : undefined;
  return id && isBackupId(id) ? id : undefined;
}
