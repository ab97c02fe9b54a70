/**
 * HTTP hygiene every route shares: a path served under other methods answers 405 with `Allow`
 * (not 404), and an answer without a body (204, 304) carries no content type.
 */
import { type IncomingMessage, type OutgoingHttpHeader, type OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Context, Hono, NotFoundHandler } from 'hono';
import { errorBody } from './errors.js';

/** A route path (`/v1/sandboxes/:id`) as a pattern matching one request path. */
function pattern(path: string): RegExp {
  const parts = path.split('/').map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${parts.join('/')}/?$`);
}

/** Methods the app serves `path` under, from its routes (middleware, `ALL`, is not a method). */
export function allowedMethods(app: Hono, path: string): string[] {
  const methods = new Set<string>();
  for (const r of app.routes) if (r.method !== 'ALL' && pattern(r.path).test(path)) methods.add(r.method);
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}

/** Not found: 405 with Allow when the path exists under other methods, else 404. */
export function notFound(app: Hono): NotFoundHandler {
  return (c: Context) => {
    const allow = allowedMethods(app, c.req.path);
    if (allow.length && !allow.includes(c.req.method)) {
      c.header('Allow', allow.join(', '));
      return c.json(errorBody('METHOD_NOT_ALLOWED', `${c.req.path} answers ${allow.join(', ')}, not ${c.req.method}; see /v1/openapi.json`), 405);
    }
    return c.json(errorBody('NOT_FOUND', `no route ${c.req.method} ${c.req.path}; see /v1/openapi.json`), 404);
  };
}

type Headers = OutgoingHttpHeaders | OutgoingHttpHeader[] | undefined;

/**
 * The HTTP server's response class: an answer with no body (204, 304) has no content type. The
 * Node adapter of hono gives every answer one (text/plain when the app set none), so it is
 * taken off where the head is written.
 */
export class BodilessResponse<R extends IncomingMessage = IncomingMessage> extends ServerResponse<R> {
  override writeHead(status: number, reason?: string | Headers, headers?: Headers): this {
    if (status === 204 || status === 304) {
      this.removeHeader('content-type');
      for (const h of [reason, headers]) {
        if (h && typeof h === 'object' && !Array.isArray(h)) for (const k of Object.keys(h)) if (k.toLowerCase() === 'content-type') delete h[k];
      }
    }
    return typeof reason === 'string' ? super.writeHead(status, reason, headers) : super.writeHead(status, reason);
  }
}
