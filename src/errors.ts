/**
 * The one error type with a message for the administrator. Anything else that
 * reaches the top of the CLI is a bug and is shown with its stack.
 */
export type ErrorKind = 'config' | 'usage' | 'tool' | 'target' | 'state' | 'module' | 'trust' | 'verify' | 'restore' | 'internal';

export interface UserErrorOptions {
  /** What to do about it: one sentence the administrator can act on. */
  hint?: string;
  /** Where it happened: a file (with :line), a device, a target. */
  where?: string;
  cause?: unknown;
  exitCode?: number;
}

export class UserError extends Error {
  readonly kind: ErrorKind;
  readonly hint: string | undefined;
  readonly where: string | undefined;
  readonly exitCode: number;

  constructor(kind: ErrorKind, message: string, options: UserErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UserError';
    this.kind = kind;
    this.hint = options.hint;
    this.where = options.where;
    this.exitCode = options.exitCode ?? exitCodeFor(kind);
  }

  /** One paragraph: what, where, how to fix. */
  paragraph(): string {
    const parts = [this.where ? `${this.where}: ${this.message}` : this.message];
    if (this.hint) parts.push(this.hint);
    return parts.map((p) => p.trim().replace(/\.?$/, '.')).join(' ');
  }
}

/** Exit codes an administrator's script can branch on (documented in the README). */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  config: 3,
  state: 4,
  target: 5,
  tool: 6,
} as const;

function exitCodeFor(kind: ErrorKind): number {
  switch (kind) {
    case 'usage':
      return EXIT.usage;
    // Modules are the administrator's own scripts, and trust is file ownership: set up like the configuration.
    case 'config':
    case 'module':
    case 'trust':
      return EXIT.config;
    case 'state':
      return EXIT.state;
    case 'target':
      return EXIT.target;
    case 'tool':
      return EXIT.tool;
    default:
      return EXIT.failed;
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

/** A reason that fits on one line in status output and in the machine's context. */
export function reasonOf(e: unknown): string {
  if (e instanceof UserError) return e.paragraph();
  if (e instanceof Error) return e.message;
  return String(e);
}
