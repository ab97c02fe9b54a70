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
      return c.json(
        errorBody('METHOD_NOT_ALLOWED', `${c.req.path} answers ${allow.join(', ')}, not ${c.req.method}; see /v1/openapi.json`),
        405,
      );
    }
    return c.json(errorBody('NOT_FOUND', `no route ${c.req.method} ${c.req.path}; see /v1/openapi.json`), 404);
  };
}

type Headers = OutgoingHttpHeaders | OutgoingHttpHeader[] | undefined;

/** `content-length: 0` with the Node adapter's default text/plain: an answer the app gave no body and no type. */
function emptyUntyped(res: ServerResponse, headers: Headers): boolean {
  const get = (name: string): string | undefined => {
    if (headers && typeof headers === 'object' && !Array.isArray(headers))
      for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return String(v);
    const v = res.getHeader(name);
    return v === undefined ? undefined : String(v);
  };
  return get('content-length') === '0' && (get('content-type') ?? '').startsWith('text/plain');
}

/**
 * The HTTP server's response class: an answer with no body (204, 304, or one the app sent empty
 * with `content-length: 0` and no type, as /mcp's 202 and 200) has no content type. The Node
 * adapter of hono gives every answer one (text/plain when the app set none), so it is taken off
 * where the head is written. (realm never answers text/plain.)
 */
export class BodilessResponse<R extends IncomingMessage = IncomingMessage> extends ServerResponse<R> {
  override writeHead(status: number, reason?: string | Headers, headers?: Headers): this {
    if (status === 204 || status === 304 || emptyUntyped(this, typeof reason === 'string' ? headers : reason)) {
      this.removeHeader('content-type');
      for (const h of [reason, headers]) {
        if (h && typeof h === 'object' && !Array.isArray(h))
          for (const k of Object.keys(h)) if (k.toLowerCase() === 'content-type') delete h[k];
      }
    }
    return typeof reason === 'string' ? super.writeHead(status, reason, headers) : super.writeHead(status, reason);
  }
}
