/**
 * The log files under `<data-dir>/logs`: `realm.log`, and the rotated `realm.log.1` (newest) to
 * `realm.log.N` (oldest), as rotating-file-stream's classical rotation names them. Read back for
 * `GET /v1/logs` when the ring in memory does not reach far enough.
 */
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { LogRecord } from './query.js';

export const LOG_FILE = 'realm.log';

/** The log files in `dir`, oldest first. */
export function logFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const rotated = names
    .map((n) => ({ n, i: n === LOG_FILE ? 0 : Number(/^realm\.log\.(\d+)$/.exec(n)?.[1] ?? NaN) }))
    .filter((f) => Number.isInteger(f.i))
    .sort((a, b) => b.i - a.i);
  return rotated.map((f) => join(dir, f.n));
}

/**
 * The newest `limit` lines of the files that `match` holds for and that come before `before` (the
 * ring's oldest line: from there on the ring has them), oldest first. Many lines share a
 * millisecond, so the ring's line is found by its text; any later time ends the read as well.
 * Files last written before `since` are skipped unread.
 */
export async function readLogFiles(
  dir: string,
  match: (r: LogRecord) => boolean,
  limit: number,
  opts: { since?: number | undefined; before?: { line: string; time: number } | undefined } = {},
): Promise<LogRecord[]> {
  let out: LogRecord[] = [];
  let done = false;
  for (const file of logFiles(dir)) {
    if (done) break;
    try {
      if (opts.since !== undefined && statSync(file).mtimeMs < opts.since) continue;
    } catch {
      continue; // rotated away meanwhile
    }
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
    try {
      for await (const line of lines) {
        if (line === opts.before?.line) {
          done = true;
          break;
        }
        let r: LogRecord;
        try {
          r = JSON.parse(line) as LogRecord;
        } catch {
          continue; // a line cut by a crash
        }
        if (opts.before !== undefined && Date.parse(r.time) > opts.before.time) {
          done = true; // every later line is newer still
          break;
        }
        if (!match(r)) continue;
        out.push(r);
        if (out.length >= 2 * limit) out = out.slice(-limit);
      }
    } catch {
      // rotated away while read: what was read stands
    }
  }
  return out.slice(-limit);
}
