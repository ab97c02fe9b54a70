/**
 * Middleware: each API request gets an id — the client's `X-Request-Id` when it is a sane token,
 * else a new UUID — echoed in the response's `X-Request-Id`, carried to every log line made while
 * serving it (logs/context.ts), and one line per request: method, route pattern (never the raw
 * path, which holds ids), status and the time to the response head. Reads (GET/HEAD) log at
 * debug (dashboards poll), changes at info, 5xx at error.
 */
import { randomUUID } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { type RequestContext, requestContext } from '../logs/context.js';
import { log } from '../logs/log.js';
import { requestHeader } from './request-header.js';
import { answerHeader } from './answer-header.js';

export const REQUEST_ID_HEADER = 'X-Request-Id';
/** What a client's id may be: a token a log line shows as is (no spaces, quotes or controls). */
const SANE_ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

/**
 * The pattern of the route that served (or would have), e.g. `/v1/sandboxes/:id/exec`: the last
 * route matched that is not a `*` middleware; undefined when none did.
 */
export function routePattern(c: Context): string | undefined {
  let route: string | undefined;
  for (const r of matchedRoutes(c)) if (r.path !== '*' && r.path !== '/*') route = r.path;
  return route;
}

export function requestLog(): MiddlewareHandler {
  return async (c, next) => {
    const given = requestHeader(c, REQUEST_ID_HEADER);
    const requestId = given !== undefined && SANE_ID.test(given) ? given : randomUUID();
    const ctx: RequestContext = {
      requestId,
      done: false,
      // Pinned by the access checks (access.ts) once they ran.
      get sandboxId() {
        return c.get('sandboxId') as string | undefined;
      },
    };
    answerHeader(c, REQUEST_ID_HEADER, requestId);
    const start = performance.now();
    try {
      await requestContext.run(ctx, next);
    } finally {
      const durationMs = Math.round((performance.now() - start) * 10) / 10;
      ctx.done = true;
      // Made and formatted after the answer went (the line carries its request's fields itself),
      // before the next request is read.
      setImmediate(() => {
        const status = c.res.status;
        const route = routePattern(c) ?? 'unmatched';
        const who = c.get('principal')?.id;
        const fields = {
          requestId,
          method: c.req.method,
          route,
          status,
          durationMs,
          ...(who ? { principal: who } : {}),
          ...(ctx.sandboxId ? { sandboxId: ctx.sandboxId } : {}),
        };
        const level = status >= 500 ? 'error' : c.req.method === 'GET' || c.req.method === 'HEAD' ? 'debug' : 'info';
        log[level](`${c.req.method} ${route} ${status} ${durationMs}ms`, fields);
      });
    }
  };
}
