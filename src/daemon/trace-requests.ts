/**
 * Middleware: one server span per API request (when tracing is on), continuing the caller's trace
 * from its `traceparent`. Named and labelled by the route's pattern (never the raw path, which
 * holds ids), with the method, the status and the request's id; the engine's spans nest in it.
 */
import type { MiddlewareHandler } from 'hono';
import { requestContext } from '../logs/context.js';
import { tracedRequest } from '../telemetry/trace.js';
import { routePattern } from './request-log.js';

export function traceRequests(): MiddlewareHandler {
  return (c, next) =>
    tracedRequest(
      c.req.method,
      (name) => c.req.header(name),
      {
        'http.request.method': c.req.method,
        'url.scheme': new URL(c.req.url).protocol.replace(':', ''),
        // The id request-log.ts gave the request (it runs first): the one its response and log lines carry.
        'realm.request_id': requestContext.getStore()?.requestId,
      },
      async (span) => {
        await next();
        const route = routePattern(c);
        const status = c.res.status;
        span.rename(route ? `${c.req.method} ${route}` : c.req.method);
        span.set({ 'http.route': route, 'http.response.status_code': status });
        if (status >= 500) span.fail(`answered ${status}`);
      },
    );
}
