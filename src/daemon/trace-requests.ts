/**
 * Middleware: one server span per API request (when tracing is on), continuing the caller's trace
 * from its `traceparent`. Named and labelled by the route's pattern (never the raw path, which
 * holds ids), with the method, the status and the request's id; the engine's spans nest in it.
 */
import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { tracedRequest } from '../telemetry/trace.js';

/** A caller's `X-Request-Id` is kept when it is a plain token of modest length; else one is made. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestId(given: string | undefined): string {
  return given !== undefined && REQUEST_ID.test(given) ? given : randomUUID();
}

export function traceRequests(): MiddlewareHandler {
  return (c, next) =>
    tracedRequest(
      c.req.method,
      (name) => c.req.header(name),
      {
        'http.request.method': c.req.method,
        'url.scheme': new URL(c.req.url).protocol.replace(':', ''),
        'realm.request_id': requestId(c.req.header('x-request-id')),
      },
      async (span) => {
        await next();
        // The last route matched that is not a `*` middleware: the one that served (or would have).
        let route: string | undefined;
        for (const r of matchedRoutes(c)) if (r.path !== '*' && r.path !== '/*') route = r.path;
        const status = c.res.status;
        span.rename(route ? `${c.req.method} ${route}` : c.req.method);
        span.set({ 'http.route': route, 'http.response.status_code': status });
        if (status >= 500) span.fail(`answered ${status}`);
      },
    );
}
