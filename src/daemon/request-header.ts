/**
 * A request header, read from Node's own request where the daemon runs on @hono/node-server.
 *
 * `c.req.header()` there has node-server build a WHATWG `Headers` of every header first (~0.05 ms
 * on a small request's way, before any route runs); the middlewares every request passes read
 * theirs here instead. The value is `Headers.get`'s: a repeated header's values joined by ", ".
 * Elsewhere (tests calling `app.request`) the web request's.
 */
import type { IncomingMessage } from 'node:http';

interface HeaderContext {
  env?: unknown;
  req: { header(name: string): string | undefined };
}

export function requestHeader(c: HeaderContext, name: string): string | undefined {
  const headers = (c.env as { incoming?: Partial<IncomingMessage> } | undefined)?.incoming?.headersDistinct;
  if (!headers) return c.req.header(name);
  return headers[name.toLowerCase()]?.join(', ');
}
