/**
 * The target named by `target.type`. Each is imported when it is needed: the
 * network clients (the S3 SDK above all) would otherwise slow every tick.
 */
import type { TargetConfig } from '../config/schema.js';
import type { Target } from './target.js';

export async function createTarget(config: TargetConfig): Promise<Target> {
  switch (config.type) {
    case 'file':
      return new (await import('./file.js')).FileTarget(config);
    case 'smb':
      return new (await import('./smb.js')).SmbTarget(config);
    case 'ftp':
      return new (await import('./ftp.js')).FtpTarget(config);
    case 's3':
      return new (await import('./s3.js')).S3Target(config);
    case 'tape':
      return new (await import('./tape/target.js')).TapeTarget(config);
  }
}
