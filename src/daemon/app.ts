/** The HTTP API: REST under /v1, JSON, errors as `{ error: { code, message } }`. */
import { type RelayedGateway, gatewayRelayRoutes, takeRelayedUpgrade } from './routes/gateway-relay.js';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type Context, type Env, Hono, type MiddlewareHandler } from 'hono';
import { createNodeWebSocket } from '@hono/node-ws';
import { interactiveRoutes } from './routes/interactive.js';
import { bodyLimit } from 'hono/body-limit';
import type { Engine } from '../engine/engine.js';
import { errorBody, handleError } from './errors.js';
import { MAX_BODY, drainUnread, unreadBody } from './body.js';
import { nodeRoutes } from './routes/node.js';
import { runRoutes } from './routes/runs.js';
import { eventRoutes } from './routes/events.js';
import { statsRoutes } from './routes/stats.js';
import { sandboxRoutes } from './routes/sandboxes.js';
import { previewUrlRoutes } from './routes/preview-urls.js';
import type { Preview } from '../gateway/preview.js';
import type { PreviewLinks } from '../gateway/preview-links.js';
import { volumeRoutes } from './routes/volumes.js';
import { appRoutes } from './routes/apps.js';
import { serviceRoutes } from './routes/services.js';
import { manifestRoutes } from './routes/manifest.js';
import { upgradeRoutes } from './routes/upgrades.js';
import type { Upgrades } from '../upgrade/upgrades.js';
import type { Manifests } from '../services/manifest.js';
import { packageRoutes } from './routes/packages.js';
import { Packages } from '../packages/deploy.js';
import type { Services } from '../services/services.js';
import { jobRoutes } from './routes/jobs.js';
import type { Jobs } from '../jobs/jobs.js';
import type { Apps } from '../gateway/apps.js';
import { pistonRoutes } from './routes/piston.js';
import { replRoutes } from './routes/repl.js';
import { tokenRoutes } from './routes/tokens.js';
import { fileRoutes } from './routes/files.js';
import { processRoutes } from './routes/processes.js';
import { workspaceRoutes } from './routes/workspaces.js';
import { sshAgentRoutes } from './routes/ssh-agent.js';
import type { Tokens } from './auth.js';
import { type AnonymousGroup, authorize, guardUpgrade, owned } from './access.js';
import { identify, type Principal } from './principal.js';
import type { Client } from '@realm/sdk';
import { mcpRoutes } from './routes/mcp.js';
import { notFound } from './hygiene.js';
import { imageRoutes } from './routes/images.js';
import { browserGuard, type BrowserGuardOptions } from './browser-guard.js';
import { dashboard } from './ui.js';
import { UiSessions, uiSessionRoutes } from './ui-session.js';
import { blobBody, blobRoutes } from './routes/blobs.js';
import type { BlobStore } from '../blobs/store.js';
import type { Store } from '../store/store.js';
import type { PeerBlobs } from '../cluster/blob-peers.js';
import type { Nodes } from '../cluster/types.js';
import { clusterRouting } from './cluster-routing.js';
import { nodesRoutes } from './routes/nodes.js';
import { Relays, relayUpgrade } from './ws-forward.js';
import { type MetricsParts, metricsHandler, metricsRoutes, timeRequests } from './routes/metrics.js';
import { traceRequests } from './trace-requests.js';
import { requestLog } from './request-log.js';
import { logRoutes } from './routes/logs.js';
import type { DaemonLogs } from '../logs/logger.js';
import { requestHeader } from './request-header.js';

export { VERSION } from '../version.js';

export interface AppOptions {
  tokens: Tokens;
  /** The node's state store: dashboard sessions are kept there (they outlive a restart). */
  store: Store;
  /** Route groups callers without a token may use (`--anonymous runs`); none by default. */
  anonymous: ReadonlySet<AnonymousGroup>;
  /** What the operator opened beyond the closed defaults (posture.ts), for `GET /v1/node`. */
  warnings?: string[];
  /** A client of this daemon's own API acting as `principal` (its URL is known once it listens). */
  self: (principal: Principal) => Client;
  /** Apps on the gateway (`realm push`). */
  apps: Apps;
  /** Process services (`realm push --image`, `realm svc`). */
  services: Services;
  /** Signed manifests (`realm apply`) and the owner keys this node trusts. */
  manifests?: Manifests;
  /** Upgrades of realm itself (`realm upgrade`). */
  upgrades?: Upgrades;
  /** The blob store (jobs' inputs and artifacts). */
  blobs: BlobStore;
  /** In a cluster: blobs this node lacks, fetched from the others by digest. */
  blobPeers?: PeerBlobs;
  /** Jobs (`realm job`). */
  jobs: Jobs;
  /** The cluster's nodes, or this node alone. */
  nodes: Nodes;
  /** Host names and CORS origins the browser guard allows besides the daemon's own address. */
  browser?: BrowserGuardOptions;
  /** Metrics (null: `--no-metrics`); `public`: `GET /metrics` wants no token (`--metrics-public`). */
  metrics?: { parts: MetricsParts; public: boolean };
  /** Preview links of sandbox ports, and the gateway's preview URLs (none when the gateway is off). */
  preview?: { links: PreviewLinks; urls?: Preview | undefined };
  /** A server span per request (tracing is on: `--otlp-endpoint`); off: no middleware at all. */
  tracing?: boolean;
  /** The daemon's log (`GET /v1/logs`). */
  logs: DaemonLogs;
  /** The gateway, for requests a peer relays (routes/gateway-relay.ts); undefined while it is off or not started. */
  gatewayRelay?: () => RelayedGateway | undefined;
}

export interface App {
  app: Hono;
  /** Attach WebSocket upgrades to the HTTP server. */
  injectWebSocket: (server: Server) => void;
  /** End every WebSocket (terminals, agent forwarding, relays to other nodes): the HTTP server's close does not see upgraded connections. */
  closeWebSockets: () => void;
}

export function createApp(engine: Engine, opts: AppOptions): App {
  const app = new Hono();
  const ws = createNodeWebSocket({ app });
  // Every WebSocket route upgrades through this: a refused one says why in a frame and runs nothing.
  // One on another node is relayed there (ws-forward.ts).
  const relays = new Relays();
  const upgradeWebSocket = relayUpgrade(guardUpgrade(ws.upgradeWebSocket), relays);
  app.onError(handleError);
  // First: every line logged while a request is served carries its id (request-log.ts).
  app.use('*', requestLog());
  const metrics = opts.metrics ?? { parts: null, public: false };
  if (opts.tracing) app.use('*', traceRequests());
  if (metrics.parts) app.use('*', timeRequests());
  // A request answered without reading its body (404, 401, 413…) ends its connection: the client
  // must not send its next request on a socket the server is about to close. What it still sends
  // is taken in first (bounded), so the close does not reset the answer away (see drainUnread).
  app.use('*', async (c, next) => {
    await next();
    if (unreadBody(c)) {
      c.header('Connection', 'close');
      await drainUnread(c);
    }
  });
  // Before auth and every route: a page in a browser acts through none of them (browser-guard.ts).
  app.use('*', browserGuard(opts.browser));
  // The dashboard's files at /ui/ (ui.ts): public, under the browser guard, before identify.
  app.use('*', dashboard());
  app.notFound(notFound(app));
  const limit: MiddlewareHandler = bodyLimit({
    maxSize: MAX_BODY,
    onError: (c) =>
      c.json(errorBody('INVALID_REQUEST', `request body is larger than ${MAX_BODY} bytes; send less code, files or stdin`), 413),
  });
  // Image and blob uploads stream to disk, never gathered: images are capped by the image store's
  // own limits (per layer), blobs by nothing but the disk. A body of known length is judged by its
  // header; only one sent in chunks needs counting.
  app.use('*', async (c: Context<Env, string>, next) => {
    if ((c.req.method === 'POST' && c.req.path === '/v1/images/import') || blobBody(c.req.method, c.req.path)) return next();
    const length = requestHeader(c, 'content-length');
    if (length !== undefined)
      return Number(length) > MAX_BODY
        ? c.json(
            errorBody('INVALID_REQUEST', `request body is larger than ${MAX_BODY} bytes; send less code, files or stdin`),
            413,
          )
        : next();
    return requestHeader(c, 'transfer-encoding') === undefined ? next() : limit(c, next);
  });
  // A scraper without a token reaches /metrics only when the operator said so (--metrics-public).
  if (metrics.public) app.get('/metrics', metricsHandler(metrics.parts));
  // Who the request acts for, what it may reach, and whose sandbox, workspace or volume it names.
  const sessions = new UiSessions(opts.tokens, opts.store);
  app.use('*', identify(opts.tokens, opts.nodes, sessions));
  app.use('*', authorize(opts.anonymous));
  // What lives on another node is served there (after the caller is known, before ownership here).
  app.use('*', clusterRouting(engine, opts.nodes));
  app.use('*', owned(engine));
  nodeRoutes(app, engine, opts.nodes, [...opts.anonymous], opts.warnings ?? []);
  nodesRoutes(app, opts.nodes);
  runRoutes(app, engine);
  eventRoutes(app, engine.events);
  statsRoutes(app, engine);
  sandboxRoutes(app, engine, opts.nodes);
  if (opts.preview) previewUrlRoutes(app, engine, opts.preview.urls, opts.preview.links);
  fileRoutes(app, engine);
  processRoutes(app, engine, upgradeWebSocket);
  workspaceRoutes(app, engine, opts.nodes);
  sshAgentRoutes(app, engine, upgradeWebSocket);
  volumeRoutes(app, engine);
  appRoutes(app, opts.apps);
  serviceRoutes(app, opts.services, opts.nodes);
  gatewayRelayRoutes(app, opts.gatewayRelay ?? (() => undefined));
  const packages = new Packages(engine, opts.services, opts.apps, opts.blobs, opts.blobPeers);
  if (opts.manifests) manifestRoutes(app, Object.assign(opts.manifests, { packages }));
  if (opts.upgrades) upgradeRoutes(app, opts.upgrades);
  packageRoutes(app, packages, opts.services);
  jobRoutes(app, opts.jobs, opts.nodes);
  imageRoutes(app, engine);
  blobRoutes(app, opts.blobs, opts.blobPeers);
  pistonRoutes(app, engine);
  replRoutes(app, engine);
  tokenRoutes(app, opts.tokens);
  uiSessionRoutes(app, sessions);
  mcpRoutes(app, opts.self);
  interactiveRoutes(app, engine, upgradeWebSocket);
  if (!metrics.public) app.get('/metrics', metricsHandler(metrics.parts)); // the admin's (access.ts)
  metricsRoutes(app, metrics.parts);
  logRoutes(app, opts.logs);
  return {
    app,
    injectWebSocket: (server) => {
      // A gateway upgrade a peer relays is the gateway's (a raw splice), never a WebSocket route's.
      const relayed = takeRelayedUpgrade(opts.nodes, opts.gatewayRelay ?? (() => undefined));
      const routes = new EventEmitter();
      ws.injectWebSocket(routes as Server);
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        if (!relayed(req, socket, head)) routes.emit('upgrade', req, socket, head);
      });
    },
    closeWebSockets: () => {
      relays.closeAll();
      for (const client of ws.wss.clients) client.terminate();
    },
  };
}
