/**
 * The daemon's logger: pino, writing JSON lines to a rotated file under the data dir
 * (`<data-dir>/logs/realm.log`, rotating-file-stream's classical rotation: by size, the newest N
 * rotated files kept), to a ring in memory for `GET /v1/logs`, and to stderr as text or JSON.
 * Only the daemon loads this (and pino): the CLI's other commands start without it.
 *
 *   const logs = new DaemonLogs({ dir: join(dataDir, 'logs'), level: 'info' });
 *   logs.follow(engine.events);
 *   await logs.close();
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { pino, stdTimeFunctions, type Logger } from 'pino';
import { createStream, type RotatingFileStream } from 'rotating-file-stream';
import type { EventBus, EventIds, HeldEvent } from '../engine/events.js';
import { requestFields } from './context.js';
import { LOG_FILE } from './files.js';
import { LEVELS, type Level, type LogFields, addLogSink, log } from './log.js';
import { LogRing } from './ring.js';
import { textLine } from './text.js';

export interface LogOptions {
  /** The least level logged (default info; `realm serve --log-level`). */
  level?: Level;
  /** stderr's form: `text` (default) or `json` (`realm serve --log-format`). */
  format?: 'text' | 'json';
  /** stderr: false for none; a level to show only lines at or above it there (default: all logged). */
  stderr?: boolean | Level;
  /** The files' directory (default none: no file). */
  dir?: string | null;
  /** A file is rotated once it reaches this size (default 10 MiB; `--log-file-size`). */
  maxFileBytes?: number;
  /** Rotated files kept besides the current one (default 5; `--log-files`). */
  files?: number;
  /** Lines kept in memory (default LOG_RING). */
  ringSize?: number;
}

export const DEFAULT_LOG_FILE_BYTES = 10 * 1024 * 1024;
export const DEFAULT_LOG_FILES = 5;

const rank = (l: unknown): number => LEVELS.indexOf(l as Level);

/** Event ids by the names log lines use for them. */
const ID_FIELDS: Record<keyof EventIds, string> = {
  sandbox: 'sandboxId',
  run: 'runId',
  job: 'jobId',
  node: 'node',
  app: 'service',
  service: 'service',
};
/** Events worth a warning; the others are info. */
const WARN_EVENTS = new Set([
  'sandbox.oom',
  'job.failed',
  'node.left',
  'service.replica.exited',
  'service.replica.stopped',
  'service.rolled-back',
  'service.failed',
]);

export class DaemonLogs {
  readonly ring: LogRing;
  /** Where the files are; null when there are none. */
  readonly dir: string | null;
  readonly level: Level;
  private readonly logger: Logger;
  private file: RotatingFileStream | undefined;
  private readonly detach: () => void;
  private unfollow: (() => void) | undefined;
  /** Lines of this turn for the file and for stderr, written together once it ends (flush). */
  private toFile: string[] = [];
  private toStderr: string[] = [];
  private flushing: NodeJS.Immediate | undefined;

  constructor(opts: LogOptions = {}) {
    this.level = opts.level ?? 'info';
    this.dir = opts.dir ?? null;
    this.ring = new LogRing(opts.ringSize);
    const stderrFrom =
      opts.stderr === false ? Infinity : Math.max(rank(this.level), rank(opts.stderr === true ? undefined : opts.stderr));
    const json = opts.format === 'json';
    if (this.dir) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      chmodSync(this.dir, 0o700); // one made by hand, or by an older realm, is narrowed too
      const file = createStream(LOG_FILE, {
        path: `${this.dir}/`,
        size: `${Math.max(1, Math.ceil((opts.maxFileBytes ?? DEFAULT_LOG_FILE_BYTES) / 1024))}K`,
        // At least one: without `rotate` the library names files by time and keeps them all.
        rotate: Math.max(1, opts.files ?? DEFAULT_LOG_FILES),
        // The lines name every tenant's sandboxes and runs: the admin's alone.
        mode: 0o600,
      });
      file.on('error', (e: Error) => {
        // rotating-file-stream ends on its first error; the ring and stderr go on.
        this.file = undefined;
        process.stderr.write(`realm: ERROR the log file in ${this.dir} cannot be written, logging there stopped: ${e.message}\n`);
      });
      this.file = file;
    }
    // The ring takes each line at once (a reader of the logs sees it); the file and stderr take
    // the lines of one turn of the event loop together, after it: a line logged while answering
    // a request (its request line, a run's event) is written after the answer went, not before.
    const destination = {
      write: (line: string): void => {
        const r = this.ring.push(line);
        this.toFile.push(line);
        if (r && rank(r.level) >= stderrFrom) this.toStderr.push(json ? line : textLine(r));
        this.flushing ??= setImmediate(this.flush);
      },
    };
    this.logger = pino(
      {
        level: this.level,
        base: { pid: process.pid },
        timestamp: stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
        // The request being served, if any (a field the line sets itself wins).
        mixin: () => requestFields(),
      },
      destination,
    );
    this.detach = addLogSink({ write: (level: Level, msg: string, fields: LogFields) => this.logger[level](fields, msg) });
    // A daemon that ends (or dies of an uncaught error) still says what it logged last on stderr.
    process.on('exit', this.flush);
  }

  /** Write the lines held for the file and stderr. */
  private readonly flush = (): void => {
    if (this.flushing) clearImmediate(this.flushing);
    this.flushing = undefined;
    // Line by line into the file stream: it rotates between writes, so a file stays near its size.
    for (const line of this.toFile) this.file?.write(line);
    if (this.toStderr.length) process.stderr.write(this.toStderr.join(''));
    this.toFile = [];
    this.toStderr = [];
  };

  /** Log each event of the bus as a line of its own (ids under their log names). */
  follow(bus: EventBus): void {
    this.unfollow?.();
    this.unfollow = bus.subscribe((e: HeldEvent) => {
      const fields: LogFields = { event: e.type, eventId: e.id };
      const ids = Object.entries(e.ids) as [keyof EventIds, string | undefined][];
      for (const [k, v] of ids) if (v) fields[ID_FIELDS[k]] = v;
      if (e.owner) fields.owner = e.owner;
      if (Object.keys(e.data).length) fields.data = e.data;
      const msg = [e.type, ...ids.map(([, v]) => v).filter(Boolean)].join(' ');
      if (WARN_EVENTS.has(e.type)) log.warn(msg, fields);
      else log.info(msg, fields);
    });
  }

  /** Stop logging here; what was written is flushed to the file. */
  async close(): Promise<void> {
    this.unfollow?.();
    this.detach();
    this.flush();
    process.off('exit', this.flush);
    const file = this.file;
    this.file = undefined;
    if (file) await new Promise<void>((r) => file.end(() => r()));
  }
}
