/**
 * The target named by `target.type`. Each is imported when it is needed: the
 * network clients (the S3 SDK above all) would otherwise slow every tick.
 */
import { hostname } from 'node:os';
import type { TargetConfig } from '../config/schema.js';
import type { Target } from './target.js';

/** What a target may need beyond its own section: the tape library keeps its catalogue in paths.state. */
export interface TargetContext {
  stateDir?: string;
  host?: string;
}

export async function createTarget(config: TargetConfig, context: TargetContext = {}): Promise<Target> {
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
      if (config.changer && config.slots) {
        const { TapeLibraryTarget } = await import('./tape/library.js');
        return new TapeLibraryTarget(
          { ...config, changer: config.changer, slots: config.slots },
          { ...context, host: context.host ?? hostname() },
        );
      }
      return new (await import('./tape/target.js')).TapeTarget(config);
  }
}
