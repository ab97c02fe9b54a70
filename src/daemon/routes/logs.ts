/**
 * `GET /v1/logs` and `GET /v1/logs/stream`: the daemon's log, the admin's alone (access.ts: the
 * lines name every tenant's sandboxes, runs and requests, and no line carries an owner that a
 * per-user filter could trust). Recent lines come from the ring in memory; older ones from the
 * files (logs/files.ts) when the ring does not reach back far enough.
 */
import type { Context, Hono } from 'hono';
import { type SSEMessage, streamSSE } from 'hono/streaming';
import type { DaemonLogs } from '../../logs/logger.js';
import { readLogFiles } from '../../logs/files.js';
import { type LogQuery, type LogRecord, logMatcher, parseLogQuery } from '../../logs/query.js';

/** Lines waiting for one slow reader before it is dropped. */
export const LOG_READER_BACKLOG = 1000;
const PING_MS = 15_000;

const query = (c: Context): LogQuery =>
  parseLogQuery({
    level: c.req.query('level'),
    sandbox: c.req.query('sandbox'),
    since: c.req.query('since'),
    limit: c.req.query('limit'),
  });

/** The newest `q.limit` lines that match, oldest first: the ring's, and the files' before it when it falls short. */
export async function readLogs(logs: DaemonLogs, q: LogQuery): Promise<LogRecord[]> {
  const match = logMatcher(q);
  const recent = logs.ring.tail(match, q.limit);
  if (recent.length >= q.limit || logs.ring.covers(q.since) || !logs.dir) return recent;
  // The files hold the ring's lines too (and older): read only what is older than the ring.
  const older = await readLogFiles(logs.dir, match, q.limit - recent.length, { since: q.since, before: logs.ring.first });
  return [...older, ...recent];
}

export function logRoutes(app: Hono, logs: DaemonLogs): void {
  app.get('/v1/logs', async (c) => c.json({ lines: await readLogs(logs, query(c)) }));

  app.get('/v1/logs/stream', (c) => {
    const q = query(c);
    const match = logMatcher({ ...q, since: undefined });
    return streamSSE(c, async (stream) => {
      const pending: (SSEMessage | 'ping')[] = [];
      let wake: (() => void) | undefined;
      let closed = false;
      let dropped = false;
      const push = (m: SSEMessage | 'ping'): void => {
        pending.push(m);
        wake?.();
      };
      // Subscribed before the backlog is read: a line made meanwhile is sent after it, not lost.
      const live: LogRecord[] = [];
      let caughtUp = false;
      const off = logs.ring.subscribe((r) => {
        if (dropped || !match(r)) return;
        if (!caughtUp) return void live.push(r);
        if (pending.length >= LOG_READER_BACKLOG) {
          dropped = true;
          pending.length = 0;
          push({
            event: 'overflow',
            data: JSON.stringify({ reason: `this reader fell ${LOG_READER_BACKLOG} lines behind; reconnect to follow again` }),
          });
          return;
        }
        push({ data: JSON.stringify(r) });
      });
      const ping = setInterval(() => push('ping'), PING_MS);
      stream.onAbort(() => {
        closed = true;
        wake?.();
      });
      try {
        const backlog = await readLogs(logs, q);
        for (const r of backlog) push({ data: JSON.stringify(r) });
        // Lines the backlog already holds (the same object, from the ring) are not sent twice.
        const seen = new Set<LogRecord>(backlog);
        for (const r of live) if (!seen.has(r)) push({ data: JSON.stringify(r) });
        caughtUp = true;
        for (;;) {
          const m = pending.shift();
          if (!m) {
            if (closed || dropped) break;
            await new Promise<void>((r) => (wake = r));
            wake = undefined;
            continue;
          }
          if (closed) break;
          if (m === 'ping') await stream.write(': ping\n\n');
          else await stream.writeSSE(m);
        }
      } finally {
        off();
        clearInterval(ping);
      }
    });
  });
}
