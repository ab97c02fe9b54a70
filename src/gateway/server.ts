/**
 * The HTTP gateway: `http://HOST:PORT/NAME/…` runs app NAME's module for the request, CGI-style
 * (cgi.ts), each request in a fresh instance with the app's limits, by the app's runners
 * (runners.ts: realm-wasm in serve mode in a namespace sandbox of the app's) — never in the daemon. An app
 * that traps, loops past its deadline or runs out of fuel answers a 5xx JSON error and is logged;
 * the gateway and every other app go on.
 */
import { tracedRequest } from '../telemetry/trace.js';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Engine } from '../engine/engine.js';
import type { AppRecord } from '../store/store.js';
import { type ErrorCode, RealmError, errorMessage } from '../util/errors.js';
import { refusal } from './access.js';
import { type Apps, wasmKind } from './apps.js';
import { type CgiHead, CgiHeadParser, cgiEnv } from './cgi.js';
import { MAX_REQUEST_BODY, type Outcome, readBody, sendError } from './http.js';
import { serveComponent } from './http-component.js';
import { ComponentPool } from './http-component-pool.js';
import { type AppAnswer, AppPool, MAX_OUTPUT } from './runners.js';
import { recordGateway, since } from '../metrics/record.js';
import type { Services } from '../services/services.js';
import { hostTarget, pathTarget, serveService, upgradeService } from './services.js';
import type { Preview } from './preview.js';
import { servePreview, servePreviewUpgrades } from './preview-listen.js';
import { refuseUpgrade } from './sandbox-proxy.js';
import type { GatewayRelay } from './relay.js';
import { log } from '../logs/log.js';
import { fastLane } from './fast-lane.js';

/** The most of a response held back to be sent whole with its length (see serveApp). */
const HOLD_BYTES = 64 * 1024;

/** How long an app's runners stay without requests. */
const IDLE_MS = 5 * 60_000;

export interface Gateway {
  url: string;
  /** Serve a request another node relayed (relay.ts): preview URLs and public services only; `as`: whose bearer token it checked. */
  serveRelayed: (req: IncomingMessage, res: ServerResponse, as: string | undefined) => Promise<void>;
  /** The same for an upgrade (a WebSocket) a peer relayed: preview URLs and public services. */
  serveRelayedUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer, as: string | undefined) => Promise<void>;
  close(): Promise<void>;
}

/** The answer for a request that ended without a complete CGI head. */
function failure(app: string, result: AppAnswer): [ErrorCode, string] {
  const why = result.message.slice(0, 1000);
  switch (result.verdict) {
    case 'timeout':
      return ['APP_TIMEOUT', `app ${app} did not answer within its deadline`];
    case 'fuel-exhausted':
      return ['APP_FAILED', `app ${app} ran out of fuel`];
    case 'oom':
      return ['APP_FAILED', `app ${app} ran out of memory`];
    case 'output-limit':
      return ['APP_FAILED', `app ${app} wrote more than ${MAX_OUTPUT} bytes`];
    case 'ok':
      return ['APP_FAILED', `app ${app} ended without a CGI response (header lines, a blank line, then the body)`];
    case 'runtime-error':
    case 'compile-error':
      return ['APP_FAILED', `app ${app} failed: ${why || `exit code ${String(result.exitCode)}`}`];
  }
}

async function serveApp(
  pool: AppPool,
  rec: AppRecord,
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
  pathInfo: string,
  query: string,
): Promise<Outcome> {
  const local = req.socket.address() as AddressInfo;
  const env = cgiEnv({
    method: req.method ?? 'GET',
    pathInfo,
    query,
    headers: req.headers,
    bodyLength: body.length,
    httpVersion: req.httpVersion,
    remoteAddress: req.socket.remoteAddress ?? '',
    serverName: (req.headers.host ?? local.address).replace(/:\d+$/, ''),
    serverPort: local.port,
    app: rec.name,
  });
  const parser = new CgiHeadParser();
  let started = false;
  let badHead: string | undefined;
  // A response whose end comes with its head (a small one, most) goes out whole, in one write with
  // its Content-Length; else the head and what came so far go once this turn of the event loop is
  // over, and the body streams chunked from then on.
  let held: { head: CgiHead; chunks: Buffer[]; bytes: number } | undefined;
  /** Send what is held (false: the client is behind, as res.write says). */
  const flush = (): boolean => {
    const h = held;
    held = undefined;
    if (!h || res.destroyed) return true;
    res.writeHead(h.head.status, h.head.statusText ?? '', h.head.headers.flat());
    let ok = true;
    for (const c of h.chunks) ok = res.write(c);
    return ok;
  };
  // The body streams: when the client is slow, the runner's output waits (and the app in its
  // write) until the response drains, or the client goes.
  let resume: (() => void) | undefined;
  const drained = (): void => {
    const r = resume;
    resume = undefined;
    r?.();
  };
  res.on('drain', drained);
  res.once('close', drained);
  const write = (chunk: Buffer): boolean => {
    if (badHead !== undefined || res.destroyed) return true;
    if (held) {
      if (chunk.length) held.chunks.push(chunk);
      held.bytes += chunk.length;
      return held.bytes <= HOLD_BYTES || flush();
    }
    if (started) return chunk.length ? res.write(chunk) : true;
    let parsed;
    try {
      parsed = parser.push(chunk);
    } catch (e) {
      badHead = errorMessage(e);
      return true;
    }
    if (!parsed) return true;
    started = true;
    held = { head: parsed.head, chunks: parsed.rest.length ? [parsed.rest] : [], bytes: parsed.rest.length };
    setImmediate(() => void flush());
    return true;
  };
  let result: AppAnswer;
  try {
    result = await pool.request(env, body, { write, onDrain: (r) => (resume = r) });
  } catch (e) {
    const code = e instanceof RealmError ? e.code : 'INTERNAL';
    log.error(`gateway: ${rec.name}: ${errorMessage(e)}`, { service: rec.name, err: e });
    sendError(res, code, e instanceof RealmError ? e.message : `app ${rec.name} could not run`);
    return { ok: false };
  }
  const { memoryBytes } = result;
  if (badHead !== undefined) {
    log.warn(`gateway: ${rec.name}: not a CGI response: ${badHead}`, { service: rec.name });
    sendError(res, 'APP_FAILED', `app ${rec.name} did not answer with a CGI response: ${badHead}`);
    return { ok: false, memoryBytes };
  }
  if (started && result.verdict === 'ok') {
    const whole = held;
    held = undefined;
    if (!whole) res.end();
    else if (!res.destroyed) {
      const { head, chunks, bytes } = whole;
      res.writeHead(head.status, head.statusText ?? '', [...head.headers.flat(), 'Content-Length', String(bytes)]);
      res.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
    }
    return { ok: true, memoryBytes };
  }
  // A failed request whose head was held still gets its JSON error (the head never went out).
  held = undefined;
  const [code, message] = failure(rec.name, result);
  log.warn(`gateway: ${rec.name}: ${result.verdict}: ${message}`, { service: rec.name, verdict: result.verdict });
  // Once the head went out the status cannot change: the response is cut short instead.
  sendError(res, code, message);
  return { ok: false, memoryBytes };
}

/**
 * Serve the gateway on host:port (port 0: a free one): apps and process services by path; with
 * `preview`, preview URLs of sandbox ports by Host as well (preview.ts).
 */
export async function startGateway(
  engine: Engine,
  apps: Apps,
  host: string,
  port: number,
  o: { services?: Services | undefined; preview?: Preview | undefined; relay?: GatewayRelay | undefined } = {},
): Promise<Gateway> {
  const { services, preview, relay } = o;
  /** A cluster's service with no healthy replica here: relayed to a node with one. */
  const toReplica = (name: string, req: IncomingMessage, res: ServerResponse) => async (): Promise<boolean> => {
    const node = await services?.elsewhere(name);
    if (!node || !relay) return false;
    await relay.relay(req, res, node);
    return true;
  };
  /** A public wasm app this node does not have, relayed to a node that runs it (cluster); false: none does. */
  const appElsewhere = async (name: string, req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const home = await relay?.appHome(name);
    if (!home || !relay) return false;
    await relay.relay(req, res, home);
    return true;
  };
  const pools = new Map<string, AppPool | ComponentPool>();
  const same = (a: AppRecord, b: AppRecord): boolean => a.sha256 === b.sha256 && a.createdAt === b.createdAt;
  /** The app's runners go: new requests start others; those they serve finish first (retire). */
  const retiring = new Set<AppPool | ComponentPool>();
  const drop = async (name: string): Promise<void> => {
    const pool = pools.get(name);
    if (!pool) return;
    pools.delete(name);
    retiring.add(pool);
    try {
      await pool.retire();
    } finally {
      retiring.delete(pool);
    }
  };
  // A change of an app's record: runners of another version go (a pool of the record it has now stays).
  apps.onChange = async (name) => {
    if (!pools.has(name)) return;
    const rec = await apps.lookup(name);
    const pool = pools.get(name); // the one there now (a request may have made it meanwhile)
    if (pool && rec && same(pool.app, rec)) return;
    await drop(name);
  };
  // An app's runners (and their sandbox) end when it has not been asked for a while; the next request starts them again.
  const sweep = setInterval(() => {
    for (const [name, pool] of pools) if (pool.idle && Date.now() - pool.lastUsed > IDLE_MS) void drop(name);
  }, IDLE_MS / 5);
  sweep.unref();
  /** The app's runners, for this version of it (a push replaces them). */
  const poolFor = (rec: AppRecord): AppPool | ComponentPool => {
    let pool = pools.get(rec.name);
    if (pool && !same(pool.app, rec)) {
      void drop(rec.name);
      pool = undefined;
    }
    if (!pool) {
      // wasi:http components have runners of their own (http-component-pool.ts).
      const module = (): Buffer => apps.module(rec);
      pool = wasmKind(module()) === 'component' ? new ComponentPool(engine, rec, module) : new AppPool(engine, rec, module);
      pools.set(rec.name, pool);
    }
    return pool;
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const start = performance.now();
    const url = req.url ?? '/';
    // `<service>.<domain>`: a process service by name, the path as it is.
    const byHost = services && preview && hostTarget(req.headers.host, preview.domain, url);
    if (byHost) {
      if (services && (await serveService(services, byHost, req, res, { elsewhere: toReplica(byHost.name, req, res) }))) return;
      // As for a path: a client cannot tell a missing service from a local one it may not reach.
      req.resume();
      return sendError(
        res,
        ...(refusal(byHost.name, null, req.headers, req.socket.remoteAddress) ?? [
          'APP_NOT_FOUND',
          `no service "${byHost.name}"`,
        ]),
      );
    }
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    const m = /^\/([^/]*)(\/.*)?$/.exec(path);
    const name = m?.[1] ?? '';
    if (!name) return sendError(res, 'APP_NOT_FOUND', 'ask for /NAME/…: an app pushed with `realm push NAME`');
    // Process services (services.ts) first; a name is an app's or a service's, never both.
    if (services && (await serveService(services, pathTarget(url, name), req, res, { elsewhere: toReplica(name, req, res) })))
      return;
    const rec = await apps.lookup(name);
    if (!rec && (await appElsewhere(name, req, res))) return;
    const refused = refusal(name, rec, req.headers, req.socket.remoteAddress);
    if (refused || !rec) return sendError(res, ...(refused ?? ['APP_NOT_FOUND', `no app "${name}" on this gateway`]));
    await serveAppRequest(rec, req, res, start);
  };
  /** Run app `rec` for a request to /NAME/…, allowed already. */
  const serveAppRequest = async (rec: AppRecord, req: IncomingMessage, res: ServerResponse, start: number): Promise<void> => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rest = (q >= 0 ? url.slice(0, q) : url).slice(rec.name.length + 1);
    // Every app kind takes the body whole: it is read (and refused past the limit) before dispatch.
    const body = await readBody(req);
    if (body === null) return sendError(res, 'INVALID_REQUEST', `the request body is larger than ${MAX_REQUEST_BODY} bytes`);
    const pool = poolFor(rec);
    const serve = pool instanceof ComponentPool ? serveComponent.bind(null, pool) : serveApp.bind(null, pool);
    const outcome = await serve(rec, req, res, body, rest || '/', q >= 0 ? url.slice(q + 1) : '');
    apps.noteRequest(rec.name, outcome.ok, outcome.memoryBytes);
    recordGateway(rec.name, outcome.ok, since(start));
  };
  const server: Server = createServer((req, res) => {
    // `<port>-<sandbox>.<domain>`: a sandbox's port, not an app.
    if (preview && servePreview(preview, req, res)) return;
    // A server span when tracing is on (the caller's traceparent continued), by app: never the path or query.
    tracedRequest(
      `${req.method ?? 'GET'} /{app}`,
      (h) => [req.headers[h]].flat()[0],
      { 'http.request.method': req.method, 'http.route': '/{app}/*', 'realm.app': /^\/([^/?]*)/.exec(req.url ?? '/')?.[1] },
      async (span) => {
        await handle(req, res);
        span.set({ 'http.response.status_code': res.statusCode });
        if (res.statusCode >= 500) span.fail(`answered ${res.statusCode}`);
      },
    ).catch((e: unknown) => {
      log.error(`gateway: ${errorMessage(e)}`, { err: e });
      sendError(res, 'INTERNAL', 'the gateway failed on this request');
    });
  });
  // Upgrades: a preview URL's (by Host), else a process service's (by path).
  const upgradeToService = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => undefined);
    const url = req.url ?? '/';
    const name = /^\/([^/?]+)/.exec(url)?.[1];
    const t = (preview && hostTarget(req.headers.host, preview.domain, url)) || (name ? pathTarget(url, name) : undefined);
    // A cluster's service with no healthy replica here goes to a node with one.
    const elsewhere = async (): Promise<boolean> => {
      const node = t && (await services?.elsewhere(t.name));
      if (!node || !relay) return false;
      relay.relayUpgrade(req, socket, head, node);
      return true;
    };
    const served = services && t ? upgradeService(services, t, req, socket, head, { elsewhere }) : Promise.resolve(false);
    served.then(
      (ok) => void (ok || socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')),
      () => socket.destroy(),
    );
  };
  /** Upgraded connections a peer relayed (they came in on the API's listener): ended with the gateway. */
  const relayedUpgrades = new Set<Duplex>();
  let endUpgrades = (): void => undefined;
  if (preview) endUpgrades = servePreviewUpgrades(server, preview, upgradeToService);
  else server.on('upgrade', upgradeToService);
  // The listener: plain GETs to a service's replicas go the fast lane's way, the rest to `server`.
  const raw = services?.proxy.raw;
  const lane = services && raw ? fastLane({ services, raw, preview, http: server }) : undefined;
  const listener = lane?.server ?? server;
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(port, host, () => resolve());
  });
  // Node's server watches its connections' request and header timeouts once it is listening:
  // the connections handed to it are watched as if it listened itself.
  if (lane) server.emit('listening');
  const addr = listener.address() as AddressInfo;
  return {
    url: `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
    serveRelayed: async (req, res, as) => {
      const t = preview?.match(req.headers.host);
      if (t && preview) return preview.handle(req, res, t, { as });
      const url = req.url ?? '/';
      const name = /^\/([^/?]+)/.exec(url)?.[1];
      const target = (preview && hostTarget(req.headers.host, preview.domain, url)) || (name ? pathTarget(url, name) : undefined);
      // A cluster's service: its visibility was checked where the request came in; it is served
      // here, never sent on again. A wasm app is relayed only when public.
      if (services && target && (await serveService(services, target, req, res, { checked: true }))) return;
      const app = target?.prefix && name ? await apps.lookup(name) : null;
      if (app?.visibility === 'public') return serveAppRequest(app, req, res, performance.now());
      req.resume();
      sendError(res, 'APP_NOT_FOUND', `no public service or app ${target ? `"${target.name}" ` : ''}on this node`);
    },
    serveRelayedUpgrade: async (req, socket, head, as) => {
      relayedUpgrades.add(socket);
      socket.once('close', () => relayedUpgrades.delete(socket));
      socket.on('error', () => socket.destroy());
      const t = preview?.match(req.headers.host);
      if (t && preview) return preview.upgrade(req, socket, head, t, { as });
      const url = req.url ?? '/';
      const name = /^\/([^/?]+)/.exec(url)?.[1];
      const target = (preview && hostTarget(req.headers.host, preview.domain, url)) || (name ? pathTarget(url, name) : undefined);
      if (services && target && (await upgradeService(services, target, req, socket, head, { checked: true }))) return;
      refuseUpgrade(socket, 'APP_NOT_FOUND', `no public service ${target ? `"${target.name}" ` : ''}on this node`);
    },
    close: async () => {
      apps.onChange = undefined;
      clearInterval(sweep);
      const closed = new Promise<void>((r) => listener.close(() => r()));
      // Stops its connection watch; it never listened itself, so its callback's error is expected.
      if (lane) server.close(() => undefined);
      lane?.close();
      server.closeAllConnections();
      endUpgrades();
      for (const s of relayedUpgrades) s.destroy();
      relayedUpgrades.clear();
      await Promise.all([closed, ...[...pools.values(), ...retiring].map((p) => p.close())]);
      pools.clear();
    },
  };
}
