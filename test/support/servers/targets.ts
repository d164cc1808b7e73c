/**
 * A real server for each network target (smbd, vsftpd, Ceph RGW), with what a
 * test needs to point syn3-backup at it: the lines under `target:` (reaching
 * the server at its own port, or at a proxy's in front of it), a credentials
 * file the server accepts or refuses, and the server going away and coming back.
 */
import { chmod, copyFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startFtpServer } from './ftp.js';
import { startS3Server } from './s3.js';
import { startSmbServer } from './smb.js';

export const SERVED_TYPES = ['smb', 'ftp', 's3'] as const;
export type ServedType = (typeof SERVED_TYPES)[number];

export interface TargetServer {
  readonly type: ServedType;
  /** The port the server itself listens on (127.0.0.1). */
  readonly port: number;
  /** The lines under `target:`, through `port` (the server's own by default) with the credentials in `credentials` (the server's by default). */
  lines(o?: { port?: number; credentials?: string }): string[];
  /** Writes a credentials (or password) file for this target, mode 0600: the server's own, or one with a password it refuses. */
  writeCredentials(file: string, o?: { wrong?: boolean }): Promise<void>;
  /** The server dies (SIGKILL, with every connection it holds) and stays down until back(). */
  gone(): Promise<void>;
  back(): Promise<void>;
  stop(): Promise<void>;
}

const WRONG = 'not-the-password';

/** The lines under `target:` for the tape target on the STAND-IN tape (a file, and mt on PATH). */
export function tapeStandInLines(tape: { device: string }): string[] {
  return ['type: tape', `device: ${tape.device}`, 'block_size: 64KiB', 'retention:', '  keep: 1'];
}

export async function startTargetServer(type: ServedType): Promise<TargetServer> {
  switch (type) {
    case 'smb': {
      const s = await startSmbServer({ shares: [{ name: 'backup' }] });
      return {
        type,
        port: s.port,
        lines: (o = {}) => [
          'type: smb',
          `share: ${s.unc('backup')}`,
          `port: ${o.port ?? s.port}`,
          `credentials_file: ${o.credentials ?? s.credentialsFile}`,
        ],
        writeCredentials: async (file, o = {}) => void s.writeCredentials(file, o.wrong ? { password: WRONG } : {}),
        gone: () => s.crash(),
        back: () => s.restart(),
        stop: () => s.stop(),
      };
    }
    case 'ftp': {
      const s = await startFtpServer();
      const dir = s.makeDirectory('backups');
      return {
        type,
        port: s.port,
        lines: (o = {}) => [
          'type: ftp',
          `host: ${s.host}`,
          `port: ${o.port ?? s.port}`,
          'secure: false',
          `user: ${s.user}`,
          `password_file: ${o.credentials ?? s.passwordFile}`,
          `directory: ${dir}`,
        ],
        writeCredentials: async (file, o = {}) => {
          if (o.wrong) await writeFile(file, `${WRONG}\n`, { mode: 0o600 });
          else await copyFile(s.passwordFile, file);
          await chmod(file, 0o600);
        },
        gone: () => s.crash(),
        back: () => s.restart(),
        stop: () => s.stop(),
      };
    }
    case 's3': {
      const s = await startS3Server();
      const bucket = await s.createBucket();
      const credentials = join(s.dir, 'syn3-s3.cred');
      await s.writeCredentialsFile(credentials);
      return {
        type,
        port: s.rgwPort,
        lines: (o = {}) => [
          'type: s3',
          `endpoint: http://127.0.0.1:${o.port ?? s.rgwPort}`,
          `region: ${s.region}`,
          `bucket: ${bucket}`,
          'prefix: sandbox/',
          `credentials_file: ${o.credentials ?? credentials}`,
        ],
        writeCredentials: (file, o = {}) =>
          s.writeCredentialsFile(file, o.wrong ? { accessKeyId: s.credentials.accessKeyId, secretAccessKey: WRONG } : undefined),
        gone: () => s.killGateway(),
        back: () => s.startGateway(),
        stop: () => s.stop(),
      };
    }
  }
}
