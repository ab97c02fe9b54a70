/**
 * The HTTP gateway: `http://HOST:PORT/NAME/…` runs app NAME's module for the request, CGI-style
 * (cgi.ts), each request in a fresh instance with the app's limits, through the engine's one-shot
 * runs (a warm sandbox of the wasm driver's host, the compiled cache) — never in the daemon. An app
 * that traps, loops past its deadline or runs out of fuel answers a 5xx JSON error and is logged;
 * the gateway and every other app go on.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Engine } from '../engine/engine.js';
import { runSchema, type RunResult } from '../engine/schemas.js';
import type { AppRecord } from '../store/store.js';
import { ERROR_STATUS, type ErrorCode, RealmError, errorMessage } from '../util/errors.js';
import type { Apps } from './apps.js';
import { CgiHeadParser, cgiEnv } from './cgi.js';

/** The largest request body passed to an app. */
export const MAX_REQUEST_BODY = 16 * 1024 ** 2;
/** The most output one request's app may write. */
const MAX_RESPONSE = 64 * 1024 ** 2;

export interface Gateway {
  url: string;
  close(): Promise<void>;
}

/** Whether a client address is this machine's own (loopback). */
export function isLoopback(addr: string | undefined): boolean {
  if (!addr) return false;
  const v4 = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return v4.startsWith('127.') || addr === '::1';
}

/** Whether an app of this visibility is served to a client at `remote`. */
export function mayServe(visibility: AppRecord['visibility'], remote: string | undefined): boolean {
  return visibility === 'public' || isLoopback(remote);
}

function sendError(res: ServerResponse, code: ErrorCode, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(ERROR_STATUS[code], { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_REQUEST_BODY) {
        resolve(null);
        req.pause();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Each module's bytes as a run takes them (base64), kept for the apps served lately. */
class ModuleCache {
  private readonly map = new Map<string, string>();
  constructor(private readonly apps: Apps) {}
  get(rec: AppRecord): string {
    let b64 = this.map.get(rec.sha256);
    if (b64 === undefined) {
      b64 = this.apps.module(rec).toString('base64');
      if (this.map.size >= 32) this.map.delete(this.map.keys().next().value ?? '');
      this.map.set(rec.sha256, b64);
    }
    return b64;
  }
}

/** The answer for a run that ended without a complete CGI head. */
function failure(app: string, result: RunResult): [ErrorCode, string] {
  const why = result.stderr.trim().split('\n').slice(-2).join(' ').slice(0, 1000);
  switch (result.verdict) {
    case 'timeout':
      return ['APP_TIMEOUT', `app ${app} did not answer within its deadline`];
    case 'fuel-exhausted':
      return ['APP_FAILED', `app ${app} ran out of fuel`];
    case 'oom':
      return ['APP_FAILED', `app ${app} ran out of memory`];
    case 'output-limit':
      return ['APP_FAILED', `app ${app} wrote more than ${MAX_RESPONSE} bytes`];
    case 'ok':
      return ['APP_FAILED', `app ${app} ended without a CGI response (header lines, a blank line, then the body)`];
    case 'runtime-error':
    case 'compile-error':
      return ['APP_FAILED', `app ${app} failed: ${why || `exit code ${String(result.exitCode)}`}`];
  }
}

async function serveApp(
  engine: Engine,
  cache: ModuleCache,
  rec: AppRecord,
  req: IncomingMessage,
  res: ServerResponse,
  pathInfo: string,
  query: string,
): Promise<void> {
  const body = await readBody(req);
  if (body === null) return sendError(res, 'INVALID_REQUEST', `the request body is larger than ${MAX_REQUEST_BODY} bytes`);
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
  const abort = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const parser = new CgiHeadParser();
  let started = false;
  let badHead: string | undefined;
  const write = (chunk: Buffer): Promise<void> | void => {
    if (chunk.length && !res.write(chunk)) return new Promise((r) => res.once('drain', r).once('close', r));
  };
  let result: RunResult;
  try {
    result = await engine.run(
      runSchema.parse({
        language: 'wasm',
        files: [{ name: 'main.wasm', content: cache.get(rec), encoding: 'base64' }],
        memory: Math.max(rec.memoryBytes, 16 * 1024 ** 2),
        timeout: rec.timeoutMs,
        output: MAX_RESPONSE,
        ...(rec.fuel ? { fuel: rec.fuel } : {}),
      }),
      (stream, chunk) => {
        if (stream !== 'stdout' || badHead !== undefined) return;
        if (started) return write(chunk);
        let parsed;
        try {
          parsed = parser.push(chunk);
        } catch (e) {
          badHead = errorMessage(e);
          abort.abort();
          return;
        }
        if (!parsed) return;
        started = true;
        res.writeHead(parsed.head.status, parsed.head.statusText ?? '', parsed.head.headers.flat());
        return write(parsed.rest);
      },
      abort.signal,
      { env, stdin: body },
    );
  } catch (e) {
    const code = e instanceof RealmError ? e.code : 'INTERNAL';
    console.error(`realm gateway: ${rec.name}: ${errorMessage(e)}`);
    return sendError(res, code, e instanceof RealmError ? e.message : `app ${rec.name} could not run`);
  }
  if (badHead !== undefined) {
    console.error(`realm gateway: ${rec.name}: not a CGI response: ${badHead}`);
    return sendError(res, 'APP_FAILED', `app ${rec.name} did not answer with a CGI response: ${badHead}`);
  }
  if (started && result.verdict === 'ok') {
    res.end();
    return;
  }
  const [code, message] = failure(rec.name, result);
  console.error(`realm gateway: ${rec.name}: ${result.verdict}: ${message}`);
  // Once the head went out the status cannot change: the response is cut short instead.
  sendError(res, code, message);
}

/** Serve the gateway on host:port (port 0: a free one). */
export async function startGateway(engine: Engine, apps: Apps, host: string, port: number): Promise<Gateway> {
  const cache = new ModuleCache(apps);
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    const m = /^\/([^/]*)(\/.*)?$/.exec(path);
    const name = m?.[1] ?? '';
    const rec = name ? await apps.lookup(name) : null;
    // Another app's or a local app's absence looks the same to a client not allowed it.
    if (!rec || !mayServe(rec.visibility, req.socket.remoteAddress)) {
      return sendError(
        res,
        'APP_NOT_FOUND',
        name ? `no app "${name}" on this gateway` : 'ask for /NAME/…: an app pushed with `realm push NAME`',
      );
    }
    await serveApp(engine, cache, rec, req, res, m?.[2] ?? '/', q >= 0 ? url.slice(q + 1) : '');
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      console.error(`realm gateway: ${errorMessage(e)}`);
      sendError(res, 'INTERNAL', 'the gateway failed on this request');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
