import type { TargetConfig } from '../config/schema.js';
import { FileTarget } from './file.js';
import type { Target } from './target.js';

export function createTarget(config: TargetConfig): Target {
  switch (config.type) {
    case 'file':
      return new FileTarget(config);
  }
}
