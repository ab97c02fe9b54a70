/**
 * Metrics: `GET /metrics` (Prometheus text), `GET /v1/metrics/history` (the last hour in 5 s
 * samples, JSON), the API's request timer, and the separate `--metrics HOST:PORT` listener.
 */
import { authority, hostOf, isLoopbackName } from '../../util/host.js';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { routePattern } from '../request-log.js';
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
      const seconds = (performance.now() - start) / 1000;
      setImmediate(() => recordRequest(c.req.method, routePattern(c) ?? 'unmatched', c.res.status, seconds)); // after the answer
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
  /** The daemon's `--host-name`s: DNS names scrapers may use for it. */
  hostNames: readonly string[] = [],
): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    // No token here, so no page may read it: a DNS name a page could rebind to this address is
    // refused (as the API's browser guard does); loopback names, IP literals and --host-name pass.
    if (!scraperHost(req.headers.host, hostNames)) {
      res
        .writeHead(403, { 'content-type': 'text/plain' })
        .end(`Host ${req.headers.host ?? '(none)'} is not a name of this daemon: scrape it by its address, or add --host-name\n`);
      return;
    }
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

/** Whether a scraper's Host can only mean this daemon: a loopback name, an IP literal, or one of its --host-names. */
function scraperHost(header: string | undefined, hostNames: readonly string[]): boolean {
  const h = hostOf(header);
  if (h === undefined) return false;
  if (isLoopbackName(h) || /^\d+\.\d+\.\d+\.\d+$/.test(h) || h.startsWith('[')) return true;
  return hostNames.some((n) => authority(n, undefined)?.host === h);
}
