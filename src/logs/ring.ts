/**
 * The newest log lines in memory, for `GET /v1/logs` and its stream: a bounded ring (older lines
 * are in the files) and the readers following it. Each line is parsed once, here.
 */
import type { LogRecord } from './query.js';

/** Lines kept in memory. */
export const LOG_RING = 5000;

export type LogListener = (r: LogRecord) => void;

export class LogRing {
  private readonly lines: LogRecord[] = [];
  /** Each line as written (its JSON, no newline), beside its record: the files are matched by it. */
  private readonly raw: string[] = [];
  private readonly listeners = new Set<LogListener>();
  /** Some line was let go: what the ring holds is not all there was. */
  private dropped = false;
  /** Lines before this (ms) are of an earlier daemon's life: in the files only. */
  private readonly start = Date.now();

  constructor(private readonly capacity = LOG_RING) {}

  /** Keep one line (pino's JSON, with or without its newline); returns it parsed. */
  push(line: string): LogRecord | undefined {
    let r: LogRecord;
    try {
      r = JSON.parse(line) as LogRecord;
    } catch {
      return undefined;
    }
    this.lines.push(r);
    this.raw.push(line.trimEnd());
    if (this.lines.length > this.capacity) {
      this.lines.shift();
      this.raw.shift();
      this.dropped = true;
    }
    for (const l of this.listeners) {
      try {
        l(r);
      } catch {
        // a reader's fault is its own
      }
    }
    return r;
  }

  subscribe(l: LogListener): () => void {
    this.listeners.add(l);
    return () => void this.listeners.delete(l);
  }

  /** The newest `limit` lines that `match` holds for, oldest first. */
  tail(match: (r: LogRecord) => boolean, limit: number): LogRecord[] {
    const out: LogRecord[] = [];
    for (let i = this.lines.length - 1; i >= 0 && out.length < limit; i--) {
      const r = this.lines[i];
      if (match(r)) out.push(r);
    }
    return out.reverse();
  }

  /** Whether the ring holds every line at or after `since` (ms): then the files have nothing more to add. */
  covers(since: number | undefined): boolean {
    if (since === undefined) return false;
    const from = this.dropped ? this.oldest : this.start;
    return from !== undefined && from <= since;
  }

  /** The time of the oldest line held (ms), or undefined when empty. */
  get oldest(): number | undefined {
    const o = this.lines[0];
    return o ? Date.parse(o.time) : undefined;
  }

  /** The oldest line held, as written and its time: where reading the files may stop. */
  get first(): { line: string; time: number } | undefined {
    const o = this.lines[0];
    const line = this.raw[0];
    return o && line !== undefined ? { line, time: Date.parse(o.time) } : undefined;
  }
}
