/** A small Server-Sent Events reader over a fetch response body. */

export interface SseMessage {
  event: string;
  data: string;
  /** The event's `id:` (what to resume from), when it has one. */
  id?: string;
}

/**
 * Yield each event of an SSE stream (`event:` and `data:` lines, a blank line ends one): a fetch
 * response's body, or any chunks (a node:http answer). Leaving early ends the stream.
 */
export async function* readSse(body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  const iterable: AsyncIterable<Uint8Array> = Symbol.asyncIterator in body ? body : readerChunks(body);
  const chunks: AsyncIterator<Uint8Array, unknown> = iterable[Symbol.asyncIterator]();
  let buf = '';
  try {
    for (;;) {
      const next = await chunks.next();
      if (next.done) break;
      buf += decoder.decode(next.value, { stream: true });
      let end: number;
      while ((end = buf.search(/\r?\n\r?\n/)) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end).replace(/^\r?\n\r?\n/, '');
        let event = 'message';
        let id: string | undefined;
        const data: string[] = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          else if (line.startsWith('id:')) id = line.slice(3).trim();
        }
        if (data.length) yield { event, data: data.join('\n'), ...(id !== undefined ? { id } : {}) };
      }
    }
  } finally {
    await chunks.return?.();
  }
}

/** A stream's chunks through its reader (a ReadableStream is not async iterable in every runtime). */
async function* readerChunks(body: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}
