/**
 * Proxy an HTTP request or a WebSocket (any Upgrade) to a port on a sandbox's own loopback: what
 * preview URLs (preview.ts) and process services route through. The connection is made by the
 * sandbox's driver (`dialPort`: the namespace driver enters the sandbox's network namespace), so a
 * dev server bound to 127.0.0.1 inside is reached. Bodies stream both ways, never gathered; an
 * upgraded connection is spliced byte for byte until either side closes.
 *
 * Usage: `proxyHttp(engine, 'sb-1', 8000, req, res)`; `proxyUpgrade(engine, 'sb-1', 8000, req, socket, head)`.
 */
import { type Agent, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse, request } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { Engine } from '../engine/engine.js';
import type { SandboxRecord } from '../store/store.js';
import { ERROR_STATUS, type ErrorCode, RealmError, errorMessage } from '../util/errors.js';
import { sendError } from './http.js';
import { type SandboxAgents, bodyless, headDeadline, retryable } from './sandbox-agents.js';

/** Headers of one connection, not passed on (RFC 9110 7.6.1); `upgrade` and `connection` go on for upgrades only. */
const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export interface ProxyOptions {
  /** Request header names (lower case) not passed to the sandbox (the caller's credentials). */
  dropHeaders?: ReadonlySet<string>;
  /** A Cookie header to send instead of the request's (credential cookies taken out); '' sends none. */
  cookie?: string | undefined;
  /** Kept-alive connections to reuse (sandbox-agents.ts); without, each request dials afresh. */
  agents?: SandboxAgents | undefined;
}

/** A connection to `port` on the running sandbox's loopback, or a RealmError saying why not. */
export async function dialSandboxPort(engine: Engine, sandbox: string | SandboxRecord, port: number): Promise<Socket> {
  const rec = typeof sandbox === 'string' ? await engine.getSandbox(sandbox) : sandbox;
  if (rec.status !== 'running')
    throw new RealmError(
      'SANDBOX_NOT_RUNNING',
      `sandbox ${rec.id} is ${rec.status}: start it (realm sandbox start ${rec.id}) to reach its ports`,
    );
  refuseUnreachable(engine, rec);
  const dial = engine.sandboxes.drivers.get(rec.driver).dialPort;
  if (!dial) throw new Error('unreachable');
  try {
    return await dial(rec.driverState, port);
  } catch (e) {
    if (e instanceof RealmError) throw new RealmError(e.code, e.message.replace('the sandbox', `sandbox ${rec.id}`));
    throw new RealmError('PORT_UNREACHABLE', `cannot reach port ${port} of sandbox ${rec.id}: ${errorMessage(e)}`);
  }
}

/** Refuse a sandbox whose driver cannot reach its ports (DRIVER_UNAVAILABLE, naming the one that can). */
export function refuseUnreachable(engine: Engine, rec: SandboxRecord): void {
  if (!engine.sandboxes.drivers.get(rec.driver).dialPort)
    throw new RealmError(
      'DRIVER_UNAVAILABLE',
      `sandbox ${rec.id} runs on the ${rec.driver} driver, whose network stack the daemon cannot enter: preview URLs and port proxying need a namespace-driver sandbox (--driver namespace)`,
    );
}

function forwardHeaders(headers: IncomingHttpHeaders, opts: ProxyOptions, upgrade: boolean): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || opts.dropHeaders?.has(k) || (HOP.has(k) && !(upgrade && (k === 'upgrade' || k === 'connection'))))
      continue;
    if (k === 'cookie' && opts.cookie !== undefined) continue;
    out[k] = v;
  }
  if (opts.cookie) out.cookie = opts.cookie;
  return out;
}

/** Proxy one HTTP request to the sandbox's port; errors answer a JSON error (502 when nothing listens). */
export async function proxyHttp(
  engine: Engine,
  sandbox: string | SandboxRecord,
  port: number,
  req: IncomingMessage,
  res: ServerResponse,
  opts: ProxyOptions = {},
): Promise<void> {
  let connection: { agent: Agent } | { createConnection: () => Socket };
  try {
    const rec = typeof sandbox === 'string' ? await engine.getSandbox(sandbox) : sandbox;
    if (opts.agents) {
      // Refused as a dial would be, before a kept-alive connection is looked for.
      if (rec.status !== 'running') await dialSandboxPort(engine, rec, port);
      refuseUnreachable(engine, rec);
      connection = { agent: opts.agents.agent(rec.id, port, () => dialSandboxPort(engine, rec.id, port)) };
    } else {
      const socket = await dialSandboxPort(engine, rec, port);
      // No agent: this one connection, already made (an agent would dial on its own).
      connection = { createConnection: () => socket };
    }
  } catch (e) {
    req.resume();
    if (e instanceof RealmError) return sendError(res, e.code, e.message);
    throw e;
  }
  const noBody = bodyless(req);
  if (noBody) req.resume();
  const attempt = (again: boolean): Promise<void> =>
    new Promise<void>((resolve) => {
      const out = request({
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: forwardHeaders(req.headers, opts, false),
        ...connection,
      });
      const fail = (e: NodeJS.ErrnoException): void => {
        if (!res.headersSent && again && retryable(out, e, noBody)) return void attempt(false).then(resolve);
        if (!res.headersSent) {
          const dialErr = e instanceof RealmError;
          sendError(
            res,
            dialErr ? e.code : 'PORT_UNREACHABLE',
            dialErr ? e.message : `port ${port} of the sandbox broke off the response: ${e.message}`,
          );
        } else res.destroy();
        resolve();
      };
      headDeadline(out, `port ${port} of the sandbox`);
      out.on('error', fail);
      out.on('response', (up) => {
        const headers: string[] = [];
        for (let i = 0; i + 1 < up.rawHeaders.length; i += 2) {
          const k = up.rawHeaders[i] ?? '';
          if (!HOP.has(k.toLowerCase())) headers.push(k, up.rawHeaders[i + 1] ?? '');
        }
        res.writeHead(up.statusCode ?? 502, up.statusMessage ?? '', headers);
        up.pipe(res);
        up.on('error', () => res.destroy());
        res.once('close', () => {
          if (!up.complete) up.destroy();
          resolve();
        });
      });
      // The client going away mid-request ends the sandbox's side too.
      req.once('close', () => {
        if (!req.complete) out.destroy();
      });
      if (noBody) out.end();
      else req.pipe(out);
    });
  await attempt(true);
}

/** Answer a refused upgrade on its raw socket: an HTTP error with a JSON body, then close. */
export function refuseUpgrade(socket: Duplex, code: ErrorCode, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  const status = ERROR_STATUS[code];
  socket.end(
    `HTTP/1.1 ${status} ${status === 502 ? 'Bad Gateway' : 'Refused'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Splice an Upgrade request (a WebSocket) to the sandbox's port: its answer and every byte after pass through both ways. */
export async function proxyUpgrade(
  engine: Engine,
  sandbox: string | SandboxRecord,
  port: number,
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  opts: ProxyOptions = {},
): Promise<void> {
  let up: Socket;
  try {
    up = await dialSandboxPort(engine, sandbox, port);
  } catch (e) {
    if (e instanceof RealmError) return refuseUpgrade(client, e.code, e.message);
    throw e;
  }
  const lines = [`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1`];
  for (const [k, v] of Object.entries(forwardHeaders(req.headers, opts, true)))
    for (const one of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${one}`);
  up.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length) up.write(head);
  up.pipe(client);
  client.pipe(up);
  const end = (): void => {
    up.destroy();
    client.destroy();
  };
  up.once('error', end);
  client.once('error', end);
  up.once('close', end);
  client.once('close', end);
}
