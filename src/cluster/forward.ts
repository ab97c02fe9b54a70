/**
 * A request sent on to the node that serves it. The caller was authenticated here; the peer is
 * told who it is (`x-realm-principal`) with this cluster's peer credential, which only members
 * hold, so a client cannot claim to be anyone by sending the header itself. Bodies and answers
 * stream both ways (uploads, downloads, Server-Sent Events).
 */
import { traceHeaders, traced } from '../telemetry/trace.js';
import type { Readable } from 'node:stream';
import { Readable as NodeReadable } from 'node:stream';
import { RealmError } from '../util/errors.js';
import { dialFailure, peerFetch } from './peer-tls.js';
import { requestFields } from '../logs/context.js';

export const PRINCIPAL_HEADER = 'x-realm-principal';
export const FORWARDED_HEADER = 'x-realm-forwarded-by';
export const NODE_HEADER = 'x-realm-node';

/** Hop-by-hop headers, and those this hop sets itself. */
const DROP_REQUEST = new Set([
  'host',
  'authorization',
  'connection',
  'keep-alive',
  'transfer-encoding',
  // Set below: the length of a body read already, the client's for one still arriving.
  'content-length',
  'upgrade',
  'te',
  'trailer',
  'proxy-authorization',
  PRINCIPAL_HEADER,
  FORWARDED_HEADER,
]);
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding']);

export interface Forward {
  method: string;
  /** The peer's API address, e.g. http://10.0.0.2:7070 (https:// is verified with --peer-ca: peer-tls.ts). */
  address: string;
  /** Path and query, as the client sent them. */
  pathAndQuery: string;
  headers: Headers;
  /** A body read already (placement looked into it), or one still arriving. */
  body?: Buffer | Readable | undefined;
  principal: string;
  peerToken: string;
  from: string;
  signal?: AbortSignal | undefined;
}

/** Send the request on, in a client span whose context the peer continues (its `traceparent`). */
export function forward(f: Forward): Promise<Response> {
  return traced(
    'cluster.forward',
    { 'http.request.method': f.method, 'server.address': new URL(f.address).host, 'realm.node.from': f.from },
    async (span) => {
      const res = await forwardNow(f);
      span.set({ 'http.response.status_code': res.status });
      return res;
    },
    { client: true },
  );
}

async function forwardNow(f: Forward): Promise<Response> {
  const headers = new Headers();
  for (const [k, v] of f.headers) if (!DROP_REQUEST.has(k.toLowerCase())) headers.set(k, v);
  // This hop's span, not the client's: the peer's work nests under the forward (none when off).
  for (const [k, v] of Object.entries(traceHeaders())) headers.set(k, v);
  headers.set('authorization', `Bearer ${f.peerToken}`);
  headers.set(PRINCIPAL_HEADER, f.principal);
  headers.set(FORWARDED_HEADER, f.from);
  // The node that serves it logs under the same request id (this one's, made or the client's).
  const { requestId } = requestFields();
  if (requestId) headers.set('x-request-id', requestId);
  const hasBody = f.method !== 'GET' && f.method !== 'HEAD' && f.body !== undefined;
  // A body still arriving goes on with the length its client gave (else it would go chunked, and a
  // server that reads only Content-Length — Python's http.server — would get none of it).
  const length = f.headers.get('content-length');
  if (hasBody && !Buffer.isBuffer(f.body) && length !== null && /^\d+$/.test(length)) headers.set('content-length', length);
  let res: Response;
  try {
    res = await peerFetch(new URL(f.pathAndQuery, f.address), {
      method: f.method,
      headers,
      ...(hasBody
        ? Buffer.isBuffer(f.body)
          ? { body: f.body }
          : { body: NodeReadable.toWeb(f.body as Readable) as ReadableStream<Uint8Array>, duplex: 'half' }
        : {}),
      redirect: 'manual',
      ...(f.signal ? { signal: f.signal } : {}),
    });
  } catch (e) {
    throw new RealmError(
      'NODE_UNREACHABLE',
      `node at ${f.address} did not answer (${dialFailure(e)}); \`realm node ls\` shows its state`,
    );
  }
  const out = new Headers();
  for (const [k, v] of res.headers) if (!DROP_RESPONSE.has(k.toLowerCase())) out.set(k, v);
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers: out });
}

/** A GET to a peer as `principal`, answered as JSON; null when it answers 404. */
export async function peerJson<T>(f: Omit<Forward, 'method' | 'body' | 'headers'>): Promise<T | null> {
  const res = await forward({ ...f, method: 'GET', headers: new Headers({ accept: 'application/json' }) });
  if (res.status === 404) {
    await res.body?.cancel();
    return null;
  }
  if (!res.ok) {
    const text = await res.text();
    throw new RealmError('NODE_UNREACHABLE', `node at ${f.address} answered ${res.status}: ${text.slice(0, 300)}`);
  }
  return (await res.json()) as T;
}
