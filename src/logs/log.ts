/**
 * The daemon's log, as every module writes to it: `log.warn('…', { sandboxId })`. This file
 * loads no logger library: the daemon attaches its pino logger (logs/logger.ts) as a sink when
 * it starts; until then (and in code that runs without a daemon, such as tests of the engine)
 * lines of info and above go to stderr in the text form, as they always did.
 *
 *   log.warn(`sandbox ${id} denied ${host}:${port}`, { sandboxId: id });
 *   log.error('blob GC failed', { err });
 */
import { requestFields } from './context.js';
import { textLine } from './text.js';

export const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LEVELS)[number];

/** What a line may say besides its message; the ids use these names everywhere. */
export interface LogFields {
  sandboxId?: string;
  runId?: string;
  jobId?: string;
  /** An app or process service (`realm push`, `realm svc`). */
  service?: string;
  node?: string;
  requestId?: string;
  /** An Error (logged with its message and stack), or whatever was thrown. */
  err?: unknown;
  [key: string]: unknown;
}

export interface LogSink {
  write(level: Level, msg: string, fields: LogFields): void;
}

const sinks = new Set<LogSink>();

/** Send every line to `sink` (a daemon's logger) until the returned function is called. */
export function addLogSink(sink: LogSink): () => void {
  sinks.add(sink);
  return () => void sinks.delete(sink);
}

function write(level: Level, msg: string, fields: LogFields = {}): void {
  if (sinks.size === 0) {
    if (level === 'debug') return;
    const err = fields.err instanceof Error ? { err: fields.err.message } : {};
    process.stderr.write(textLine({ level, msg, ...requestFields(), ...fields, ...err }));
    return;
  }
  for (const s of sinks) {
    try {
      s.write(level, msg, fields);
    } catch {
      // A log that cannot be written never stops the work that logged.
    }
  }
}

export const log = {
  debug: (msg: string, fields?: LogFields): void => write('debug', msg, fields),
  info: (msg: string, fields?: LogFields): void => write('info', msg, fields),
  warn: (msg: string, fields?: LogFields): void => write('warn', msg, fields),
  error: (msg: string, fields?: LogFields): void => write('error', msg, fields),
};
