/**
 * Metrics: `GET /metrics` (Prometheus text), `GET /v1/metrics/history` (the last hour in 5 s
 * samples, JSON), the API's request timer, and the separate `--metrics HOST:PORT` listener.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { History } from '../../metrics/history.js';
import type { Metrics } from '../../metrics/metrics.js';
import { recordRequest } from '../../metrics/record.js';
import { RealmError, errorMessage } from '../../util/errors.js';

/** Metrics on, or off (`realm serve --no-metrics`). */
export type MetricsParts = { metrics: Metrics; history: History } | null;

const OFF = 'this daemon serves no metrics: it was started with --no-metrics; start it without';

/** `GET /metrics`: the exposition text. */
export function metricsHandler(parts: MetricsParts): (c: Context) => Promise<Response> {
  return async (c) => {
    if (!parts) throw new RealmError('METRICS_OFF', OFF);
    const { text, contentType } = await parts.metrics.scrape();
    return c.body(text, 200, { 'content-type': contentType });
  };
}

/** `GET /v1/metrics/history?since=MS`: samples taken after `since` (ms since the epoch), oldest first. */
export function metricsRoutes(app: Hono, parts: MetricsParts): void {
  app.get('/v1/metrics/history', (c) => {
    if (!parts) throw new RealmError('METRICS_OFF', OFF);
    const since = Number(c.req.query('since') ?? 0);
    if (!Number.isFinite(since) || since < 0)
      throw new RealmError('INVALID_REQUEST', 'since: write a time in milliseconds since the epoch, e.g. 1764900000000');
    return c.json({ intervalSeconds: parts.history.intervalMs / 1000, samples: parts.history.samples(since) });
  });
}

/**
 * Middleware: time each request to its response head, labelled by the pattern of the route that
 * answered (never the raw path, which holds ids) and its status.
 */
export function timeRequests(): MiddlewareHandler {
  return async (c, next) => {
    const start = performance.now();
    try {
      await next();
    } finally {
      // The last route matched that is not a `*` middleware: the one that served (or would have).
      let route = 'unmatched';
      for (const r of matchedRoutes(c)) if (r.path !== '*' && r.path !== '/*') route = r.path;
      recordRequest(c.req.method, route, c.res.status, (performance.now() - start) / 1000);
    }
  };
}

/**
 * The separate metrics listener (`realm serve --metrics HOST:PORT`): `GET /metrics` only, without
 * a token, for a scraper; loopback unless the operator names another address (posture.ts warns).
 */
export async function startMetricsListener(
  metrics: Metrics,
  host: string,
  port: number,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('GET /metrics\n');
      return;
    }
    metrics.scrape().then(
      ({ text, contentType }) =>
        res.writeHead(200, { 'content-type': contentType }).end(req.method === 'HEAD' ? undefined : text),
      (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(e)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await closed;
    },
  };
}
