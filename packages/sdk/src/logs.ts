/**
 * The daemon's log (`GET /v1/logs`, `GET /v1/logs/stream`): the admin's alone (others get
 * ForbiddenError), since the lines name every tenant's sandboxes and runs.
 *
 * @example
 *   const c = new Client();
 *   for (const l of await c.logs.list({ level: 'warn', sandbox: 'sb-…' })) console.log(l.time, l.msg);
 *   for await (const l of c.logs.follow({ level: 'info' })) console.log(l.msg);
 */
import type { Client } from './client.js';
import { readSse } from './sse.js';

/** One line: pino's JSON, with the ids it is about where known. */
export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  /** ISO 8601. */
  time: string;
  msg: string;
  requestId?: string;
  sandboxId?: string;
  runId?: string;
  jobId?: string;
  service?: string;
  node?: string;
  [key: string]: unknown;
}

export interface LogsQuery {
  /** The least level: debug < info < warn < error. */
  level?: LogLine['level'];
  /** Only lines about this sandbox id. */
  sandbox?: string;
  /** A time (ISO 8601 or a Date) or a duration ago (`10m`, `1h`). */
  since?: string | Date;
  /** The newest N (default 100, at most 10000); for `follow`, the kept lines sent first. */
  limit?: number;
}

function search(q: LogsQuery): string {
  const p = new URLSearchParams();
  if (q.level) p.set('level', q.level);
  if (q.sandbox) p.set('sandbox', q.sandbox);
  if (q.since !== undefined) p.set('since', q.since instanceof Date ? q.since.toISOString() : q.since);
  if (q.limit !== undefined) p.set('limit', String(q.limit));
  const s = p.toString();
  return s ? `?${s}` : '';
}

export class Logs {
  constructor(private readonly c: Client) {}

  /** The newest lines that match, oldest first. */
  async list(q: LogsQuery = {}): Promise<LogLine[]> {
    return (await this.c.request<{ lines: LogLine[] }>('GET', `/v1/logs${search(q)}`)).lines;
  }

  /**
   * The newest `limit` kept lines that match, then each new one as it is made, until `signal`
   * aborts (or the daemon drops a reader that fell 1000 lines behind: the iteration ends).
   */
  async *follow(q: LogsQuery & { signal?: AbortSignal } = {}): AsyncGenerator<LogLine> {
    const body = await this.c.stream('GET', `/v1/logs/stream${search(q)}`, undefined, q.signal);
    for await (const msg of readSse(body)) {
      if (msg.event === 'overflow') return;
      if (msg.event === 'message' && msg.data) yield JSON.parse(msg.data) as LogLine;
    }
  }
}
