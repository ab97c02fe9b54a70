/**
 * Output as Server-Sent Events: `stdout` and `stderr` events carry `{ data }` (UTF-8 text, never
 * a character split across events), an `exit` event carries the result, an `error` event an
 * API error that happened after the stream began. A closed connection kills the program. Output
 * waiting for a slow client is coalesced into few events; past 1 MiB the program's output is no
 * longer read (the program waits in write, as on a pipe) until the client catches up.
 */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { OutputListener } from '../engine/engine.js';
import { OutputEvents } from './output-events.js';
import { RealmError, errorMessage } from '../util/errors.js';

export function streamOutput(c: Context, work: (onData: OutputListener, signal: AbortSignal) => Promise<unknown>): Response {
  return streamSSE(c, async (stream) => {
    const abort = new AbortController();
    stream.onAbort(() => abort.abort());
    const out = new OutputEvents((msg) => stream.writeSSE(msg));
    abort.signal.addEventListener('abort', () => out.close(), { once: true });
    try {
      const result = await work((which, chunk) => out.output(which, chunk), abort.signal);
      out.event({ event: 'exit', data: JSON.stringify(result) });
    } catch (e) {
      const err = e instanceof RealmError ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: errorMessage(e) };
      out.event({ event: 'error', data: JSON.stringify({ error: err }) });
    }
    await out.flushed();
  });
}

/**
 * Progress of long work as Server-Sent Events: `progress` events (whatever `work` reports), then
 * `done` with the result, or `error` with `{error}`. A closed connection aborts the work.
 */
export function streamProgress<P>(
  c: Context,
  work: (onProgress: (p: P) => void, signal: AbortSignal) => Promise<unknown>,
): Response {
  return streamSSE(c, async (stream) => {
    const abort = new AbortController();
    stream.onAbort(() => abort.abort());
    let queue: Promise<void> = Promise.resolve();
    const send = (event: string, data: unknown): void => {
      queue = queue.then(() => stream.writeSSE({ event, data: JSON.stringify(data) })).catch(() => abort.abort());
    };
    // Phases can be quiet for minutes; a ping keeps proxies and client timeouts from closing the stream.
    const ping = setInterval(() => send('ping', {}), 15_000);
    try {
      send('done', await work((p) => send('progress', p), abort.signal));
    } catch (e) {
      const err = e instanceof RealmError ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: errorMessage(e) };
      send('error', { error: err });
    } finally {
      clearInterval(ping);
    }
    await queue;
  });
}
