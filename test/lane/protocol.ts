/**
 * The lane's wire protocol between the host (test/lane/guest.ts) and the agent
 * in the guest (test/lane/guest/agent.ts): one JSON object per line, both ways,
 * over a virtio-serial port. The host sends requests with ids; the agent
 * answers each with the same id, in any order (a background process may run
 * while other requests come and go). The agent's first line is its hello.
 */

export interface RunOptions {
  /** Text for the program's stdin (else stdin is /dev/null). */
  input?: string;
  /** Added to the agent's environment (PATH, HOME, LANG, DM_DISABLE_UDEV=1). */
  env?: Record<string, string>;
  cwd?: string;
  /** The agent kills the program's process group with SIGKILL after this long. */
  timeoutMs?: number;
}

export type Request =
  | { id: number; op: 'run'; argv: string[]; opts: RunOptions }
  | { id: number; op: 'start'; name: string; argv: string[]; opts: RunOptions }
  | { id: number; op: 'signal'; name: string; signal: string }
  | { id: number; op: 'wait'; name: string; timeoutMs?: number }
  | { id: number; op: 'write'; path: string; base64: string; mode?: number }
  | { id: number; op: 'read'; path: string }
  | { id: number; op: 'poweroff' };

export interface RunResult {
  /** The exit status; 128 + the signal's number when a signal ended it; 127 when it could not start. */
  exitCode: number;
  /** Decoded as UTF-8, at most 32 MiB each: binary or big results go through a file and readFile. */
  stdout: string;
  stderr: string;
  /** The signal that ended it, if one did. */
  signal?: string;
  /** True when the agent killed it at timeoutMs. */
  timedOut?: boolean;
}

export type Response = { id: number; ok: true; run?: RunResult; pid?: number; base64?: string } | { id: number; ok: false; error: string };

export interface Hello {
  hello: {
    /** The guest's /proc/uptime when the agent was ready: the kernel's and the init's share of the boot. */
    uptime: number;
    kernel: string;
    /** Extra disks by serial: serial → device path (/dev/vdb …). */
    disks: Record<string, string>;
  };
}
