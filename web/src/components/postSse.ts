/**
 * Server-Sent Events answering a POST (a streamed run, an image build): events.ts's `sse` reads
 * GET routes only. Resolves when the stream ends; aborting `signal` closes the connection, which
 * stops the work on the daemon.
 */
import { EventSourceParserStream } from 'eventsource-parser/stream';
import { request } from '../api';
import type { SseMessage } from '../events';

export async function postSse(
  path: string,
  json: unknown,
  onMessage: (m: SseMessage) => boolean | void,
  signal: AbortSignal,
): Promise<void> {
  const res = await request('POST', path, { json, signal, headers: { Accept: 'text/event-stream' } });
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      // A handler that returns true has what it wanted: stop reading.
      if (onMessage({ event: value.event ?? 'message', data: value.data, id: value.id }) === true) return;
    }
  } finally {
    reader.releaseLock();
    await reader.cancel().catch(() => undefined);
  }
}
