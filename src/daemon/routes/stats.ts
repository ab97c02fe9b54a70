/**
 * A sandbox's live figures: `GET /v1/sandboxes/{id}/stats` (CPU % over a quarter second it waits
 * for) and `GET /v1/sandboxes/{id}/stats/stream?interval=1s` (a `stats` event each interval, CPU %
 * over it; an `error` event and the end when the sandbox stops or goes).
 */
import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Engine } from '../../engine/engine.js';
import type { SandboxStats } from '../../engine/stats.js';
import { RealmError, errorMessage } from '../../util/errors.js';
import { parseDuration } from '../../util/units.js';
import { sandboxParam } from '../access.js';

/** The pause of a single read between its two samples (for CPU %). */
const ONE_READ_MS = 250;
const MIN_INTERVAL_MS = 250;
const MAX_INTERVAL_MS = 3_600_000;

function streamInterval(text: string | undefined): number {
  const ms = parseDuration(text ?? '1s');
  if (ms === null || ms < MIN_INTERVAL_MS || ms > MAX_INTERVAL_MS)
    throw new RealmError('INVALID_REQUEST', `interval "${text}" must be a duration from 250ms to 1h, such as 1s or 500ms`);
  return ms;
}

export function statsRoutes(app: Hono, engine: Engine): void {
  app.get('/v1/sandboxes/:id/stats', async (c) => {
    const id = sandboxParam(c);
    const first = await engine.sandboxStats(id);
    await sleep(ONE_READ_MS);
    return c.json(await engine.sandboxStats(id, first));
  });

  app.get('/v1/sandboxes/:id/stats/stream', async (c) => {
    const id = sandboxParam(c);
    const every = streamInterval(c.req.query('interval'));
    let prev = await engine.sandboxStats(id); // a sandbox that is not running answers before the stream starts
    return streamSSE(c, async (stream) => {
      const abort = new AbortController();
      stream.onAbort(() => abort.abort());
      await stream.writeSSE({ event: 'stats', data: JSON.stringify(prev) });
      while (!abort.signal.aborted) {
        try {
          await sleep(every, undefined, { signal: abort.signal });
        } catch {
          break; // the reader went
        }
        let next: SandboxStats;
        try {
          next = await engine.sandboxStats(id, prev);
        } catch (e) {
          const err =
            e instanceof RealmError ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: errorMessage(e) };
          await stream.writeSSE({ event: 'error', data: JSON.stringify({ error: err }) });
          break;
        }
        await stream.writeSSE({ event: 'stats', data: JSON.stringify(next) });
        prev = next;
      }
    });
  });
}
