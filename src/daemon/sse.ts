/**
 * Output as Server-Sent Events: `stdout` and `stderr` events carry `{ data }` (UTF-8 text, never
 * a character split across events), an `exit` event carries the result, an `error` event an
 * API error that happened after the stream began. A closed connection kills the program.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { OutputListener } from '../engine/engine.js';
import { RealmError, errorMessage } from '../util/errors.js';

export function streamOutput(c: Context, work: (onData: OutputListener, signal: AbortSignal) => Promise<unknown>): Response {
  return streamSSE(c, async (stream) => {
    const abort = new AbortController();
    stream.onAbort(() => abort.abort());
    const decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
    // Writes are queued so events keep their order; onData is called synchronously.
    let queue: Promise<void> = Promise.resolve();
    const send = (event: string, data: unknown): void => {
      queue = queue.then(() => stream.writeSSE({ event, data: JSON.stringify(data) })).catch(() => abort.abort());
    };
    try {
      const result = await work((which, chunk) => {
        const text = decoders[which].write(chunk);
        if (text) send(which, { data: text });
      }, abort.signal);
      for (const which of ['stdout', 'stderr'] as const) {
        const rest = decoders[which].end();
        if (rest) send(which, { data: rest });
      }
      send('exit', result);
    } catch (e) {
      const err = e instanceof RealmError ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: errorMessage(e) };
      send('error', { error: err });
    }
    await queue;
  });
}

/**
 * Progress of long work as Server-Sent Events: `progress` events (whatever `work` reports), then
 * `done` with the result, or `error` with `{error}`. A closed connection aborts the work.
 */
export function streamProgress<P>(c: Context, work: (onProgress: (p: P) => void, signal: AbortSignal) => Promise<unknown>): Response {
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
