/**
 * Which log lines a reader wants (`GET /v1/logs?level=&sandbox=&since=&limit=`), checked once
 * at the edge.
 */
import { RealmError } from '../util/errors.js';
import { parseDuration } from '../util/units.js';
import { LEVELS, type Level } from './log.js';

/** A log line as read back: pino's JSON, with these fields at least. */
export interface LogRecord {
  level: Level;
  /** ISO 8601. */
  time: string;
  msg: string;
  sandboxId?: string;
  [key: string]: unknown;
}

export interface LogQuery {
  /** The least level wanted (debug < info < warn < error). */
  level?: Level;
  /** Only lines about this sandbox (their sandboxId). */
  sandbox?: string;
  /** Only lines at or after this time (ms since the epoch). */
  since?: number;
  /** The newest this many (of those matching). */
  limit: number;
}

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 10_000;

const rank = (l: unknown): number => LEVELS.indexOf(l as Level);

/** Parse the query's parameters; `since` is an ISO 8601 time, ms since the epoch, or a duration ago (`10m`). */
export function parseLogQuery(
  q: { level?: string; sandbox?: string; since?: string; limit?: string },
  now = Date.now(),
): LogQuery {
  const out: LogQuery = { limit: DEFAULT_LIMIT };
  if (q.level !== undefined && q.level !== '') {
    if (rank(q.level) < 0) throw new RealmError('INVALID_REQUEST', `level "${q.level}": write one of ${LEVELS.join(', ')}`);
    out.level = q.level as Level;
  }
  if (q.sandbox !== undefined && q.sandbox !== '') out.sandbox = q.sandbox;
  const s = q.since;
  if (s !== undefined && s !== '') {
    if (/^\d{12,}$/.test(s)) out.since = Number(s);
    else if (/^\d{4}-\d\d-\d\d/.test(s)) {
      out.since = Date.parse(s);
      if (!Number.isFinite(out.since))
        throw new RealmError('INVALID_REQUEST', `since "${s}" is not a time such as 2026-12-05T08:00:00Z`);
    } else {
      const ago = parseDuration(s);
      if (ago === null)
        throw new RealmError(
          'INVALID_REQUEST',
          `since "${s}": write a time (2026-12-05T08:00:00Z, or ms since the epoch) or a duration ago (10m, 1h)`,
        );
      out.since = now - ago;
    }
  }
  if (q.limit !== undefined && q.limit !== '') {
    if (!/^\d+$/.test(q.limit) || Number(q.limit) < 1 || Number(q.limit) > MAX_LIMIT)
      throw new RealmError('INVALID_REQUEST', `limit "${q.limit}": write a whole number from 1 to ${MAX_LIMIT}`);
    out.limit = Number(q.limit);
  }
  return out;
}

/** Whether a line is one the query wants (its limit aside). */
export function logMatcher(q: LogQuery): (r: LogRecord) => boolean {
  const least = q.level ? rank(q.level) : 0;
  return (r) =>
    rank(r.level) >= least &&
    (q.sandbox === undefined || r.sandboxId === q.sandbox) &&
    (q.since === undefined || Date.parse(r.time) >= q.since);
}
