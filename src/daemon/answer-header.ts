/**
 * A header every answer carries (`X-Request-Id`, `X-Realm-Node`), set before the route runs.
 *
 * Where the daemon runs on @hono/node-server it goes on Node's response: it then rides on every
 * answer written there — Hono's, a route's own `Response` (MCP's, one forwarded from a peer) and
 * bytes written straight to Node's (blob downloads), streams too. A header the answer itself
 * carries wins (`writeHead` merges, its own first): a peer's answer keeps the peer's values.
 * Elsewhere (tests calling `app.request`) it goes on Hono's prepared headers.
 */
import type { ServerResponse } from 'node:http';
import type { Context } from 'hono';

export function answerHeader(c: Context, name: string, value: string): void {
  const outgoing = nodeResponse(c);
  if (outgoing) outgoing.setHeader(name, value);
  else c.header(name, value);
}

/** Node's response, where the daemon runs on @hono/node-server. */
export function nodeResponse(c: Context): ServerResponse | undefined {
  return (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
}
