/**
 * Request bodies and the request's abort signal, read from Node's own request where the daemon
 * runs on @hono/node-server.
 *
 * Touching `c.req.raw.body`, `.bodyUsed`, `.signal` or `c.req.text()` there makes node-server
 * build a whole WHATWG Request (headers copied, the body wrapped as a web stream, an
 * AbortController) — a good part of a small request's cost. Reading the IncomingMessage
 * directly skips that; other runtimes (tests calling `app.request`) use the web API.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { requestHeader } from './request-header.js';

/** Largest request body accepted (code, files and stdin travel in it). */
export const MAX_BODY = 80 * 1024 * 1024;

interface BodyContext {
  env?: unknown;
  req: { raw: Request; header(name: string): string | undefined; arrayBuffer(): Promise<ArrayBuffer> };
}

/** node-server's request: the body, once read, kept where node-server also looks (`rawBody`). */
type Incoming = IncomingMessage & { rawBody?: Buffer };

function nodeIncoming(c: BodyContext): Incoming | undefined {
  const env = c.env as { incoming?: Incoming } | undefined;
  return env?.incoming;
}

/** A request body over MAX_BODY: answered 413 INVALID_REQUEST. */
export class BodyTooLarge extends Error {
  constructor() {
    super(`request body is larger than ${MAX_BODY} bytes; send less code, files or stdin`);
  }
}

function tooLarge(): BodyTooLarge {
  return new BodyTooLarge();
}

/** The whole request body (at most MAX_BODY bytes, else PAYLOAD_TOO_LARGE). */
export async function rawBody(c: BodyContext): Promise<Buffer> {
  const incoming = nodeIncoming(c);
  // A body sent in chunks (Transfer-Encoding, no Content-Length) is counted by the web stream the
  // body limit wraps around it (see app.ts), which reads Node's request itself: read that one.
  // Any other request (a bodiless POST included) is read from Node's request, as before.
  if (!incoming || (requestHeader(c, 'transfer-encoding') !== undefined && !incoming.rawBody)) {
    const buf = Buffer.from(await c.req.arrayBuffer());
    if (buf.length > MAX_BODY) throw tooLarge();
    return buf;
  }
  if (incoming.rawBody) return incoming.rawBody;
  const chunks: Buffer[] = [];
  // All of it already in (the usual small request: it came with its headers): taken at once,
  // without an async iterator's turns (~0.1 ms).
  const length = Number(incoming.headers['content-length'] ?? NaN);
  const allIn = incoming.complete || (Number.isSafeInteger(length) && incoming.readableLength === length);
  if (allIn && incoming.readableFlowing === null && !incoming.readableDidRead) {
    for (let chunk: unknown; (chunk = incoming.read()) !== null;) chunks.push(chunk as Buffer);
    const size = chunks.reduce((n, c) => n + c.length, 0);
    if (size > MAX_BODY) throw tooLarge();
    incoming.rawBody = chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks);
    return incoming.rawBody;
  }
  // Not in yet, its length known: the routes run as the head is parsed, before the parser pushed
  // the body that came in the same read. Taken as it comes and done at its length (an async
  // iterator would wait for 'end' as well: a few turns, ~0.15 ms).
  if (Number.isSafeInteger(length) && length <= MAX_BODY && incoming.readableFlowing === null && !incoming.readableDidRead) {
    incoming.rawBody = await bodyOfLength(incoming, length);
    return incoming.rawBody;
  }
  let size = 0;
  for await (const chunk of incoming as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) {
      incoming.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  incoming.rawBody = chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks);
  return incoming.rawBody;
}

/** The `length` bytes of a body that arrives (rejected if the request ends or breaks before them). */
function bodyOfLength(incoming: Incoming, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (e?: Error): void => {
      incoming.off('data', onData).off('end', onEnd).off('error', finish).off('close', onClose);
      if (e) reject(e);
      else if (size < length) reject(new Error(`the request body ended after ${size} of its ${length} bytes`));
      else resolve(chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= length) finish();
    };
    const onEnd = (): void => finish();
    const onClose = (): void => finish();
    incoming.on('data', onData).on('end', onEnd).on('error', finish).on('close', onClose);
  });
}

/** A JSON body, an empty one meaning `{}`. */
export async function jsonBody(c: BodyContext): Promise<unknown> {
  const text = (await rawBody(c)).toString('utf8');
  if (!text.trim()) return {};
  return JSON.parse(text) as unknown;
}

/** Whether the request has a body that nobody read (its connection cannot carry another request). */
export function unreadBody(c: BodyContext): boolean {
  const incoming = nodeIncoming(c);
  if (!incoming) return Boolean(c.req.raw.body && !c.req.raw.bodyUsed);
  if (incoming.rawBody || incoming.complete) return false;
  return Number(requestHeader(c, 'content-length') ?? 0) > 0 || requestHeader(c, 'transfer-encoding') !== undefined;
}

/** Most of an unread body the daemon takes in (and drops) so its client reads the answer; and for how long. */
const DRAIN_BYTES = 2 * MAX_BODY;
const DRAIN_MS = 5000;

/**
 * Take in and drop what is left of a request body the answer did not read (a 413, 401, 404…),
 * before the answer goes out and its connection closes. Closed while the client still sends,
 * the socket would be reset, and the reset can reach the client before the answer it should
 * read. A body past DRAIN_BYTES, or one still coming after DRAIN_MS, is not waited for.
 */
export async function drainUnread(c: BodyContext): Promise<void> {
  const incoming = nodeIncoming(c);
  if (!incoming || incoming.complete || incoming.destroyed) return;
  await new Promise<void>((resolve) => {
    let bytes = 0;
    const done = (): void => {
      clearTimeout(timer);
      incoming.off('data', count).off('end', done).off('close', done).off('error', done);
      resolve();
    };
    const count = (chunk: Buffer): void => {
      bytes += chunk.length;
      if (bytes > DRAIN_BYTES) done();
    };
    const timer = setTimeout(done, DRAIN_MS);
    incoming.on('data', count).once('end', done).once('close', done).once('error', done);
    incoming.resume();
  });
}

const signals = new WeakMap<IncomingMessage, AbortSignal>();

/** Aborted when the client goes away before its answer is sent. */
export function requestSignal(c: BodyContext): AbortSignal {
  const incoming = nodeIncoming(c);
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
  if (!incoming || !outgoing) return c.req.raw.signal;
  let signal = signals.get(incoming);
  if (!signal) {
    const ac = new AbortController();
    outgoing.once('close', () => {
      if (!outgoing.writableFinished) ac.abort(new Error('the client went away'));
    });
    signal = ac.signal;
    signals.set(incoming, signal);
  }
  return signal;
}

/**
 * The request body as a Node stream, read as it arrives and never gathered (blob uploads): Node's
 * own request where the daemon runs on node-server, else the web body.
 */
export function bodyStream(c: BodyContext): Readable {
  const incoming = nodeIncoming(c);
  if (incoming) return incoming;
  const body = c.req.raw.body;
  return body ? Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>) : Readable.from([] as Buffer[]);
}
