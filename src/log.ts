/**
 * Logging: every line goes as JSON into <state>/syn3-backup.log; the console
 * gets readable lines on a terminal, only warnings and errors under cron (so
 * a tick with nothing to do prints nothing and cron mails only trouble), or
 * JSON lines with --log-format json (for journald).
 */
import { appendFileSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger, type StreamEntry } from 'pino';

export type LogFormat = 'auto' | 'text' | 'json';
export type { Logger };

export interface LogOptions {
  stateDir?: string;
  format: LogFormat;
  runId: string;
  command: string;
  /** Quiet console (cron): warnings and errors only. Defaults to "stderr is not a terminal". */
  quiet?: boolean;
  verbose?: boolean;
}

export const LOG_FILE = 'syn3-backup.log';

/** While a restore rebuilds the file system under paths.state the log file is gone; the console still has the line. */
const tryAppend = (file: string, line: string): boolean => {
  try {
    appendFileSync(file, line, { mode: 0o600 });
    return true;
  } catch {
    return false;
  }
};

export function createLogger(o: LogOptions): Logger {
  const streams: StreamEntry[] = [];
  if (o.stateDir) {
    const file = join(o.stateDir, LOG_FILE);
    mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
    closeSync(openSync(file, 'a', 0o600));
    // Opened per line, never held open: the initrd phase of a sandbox restore unmounts and formats the / that paths.state is on.
    streams.push({ level: 'debug', stream: { write: (line: string) => void tryAppend(file, line) } });
  }
  const quiet = o.quiet ?? (o.format === 'auto' && !process.stderr.isTTY);
  const consoleLevel = o.verbose ? 'debug' : quiet && o.format !== 'json' ? 'warn' : 'info';
  streams.push({
    level: consoleLevel,
    stream:
      o.format === 'json' ? pino.destination({ dest: 2, sync: true }) : { write: (line: string) => process.stderr.write(humanLine(line)) },
  });
  return pino(
    { level: 'debug', base: { runId: o.runId, command: o.command }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.multistream(streams),
  );
}

const LEVELS: Record<number, string> = { 20: 'debug', 30: 'info', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
// Fields the readable line already says in its message.
const HIDDEN = new Set(['level', 'time', 'msg', 'runId', 'command', 'pid', 'hostname', 'state', 'step']);

export function humanLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 19) : '';
  const level = Number(entry.level);
  const tag = level >= 40 ? `${LEVELS[level]} ` : '';
  const extra = Object.entries(entry)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${tag}${String(entry.msg ?? '')}${extra ? `  ${extra}` : ''}\n`;
}

/** A run id: sortable, unique enough on one host with one run at a time. */
export function newRunId(now = new Date()): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}
