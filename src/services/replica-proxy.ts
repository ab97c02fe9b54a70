/**
 * How the gateway reaches a port inside a replica's sandbox. A namespace sandbox has a network
 * namespace of its own with loopback only, so nothing on the host can dial its port; the daemon
 * dials it from inside that namespace (the driver's `dialPort`: a thread enters the namespace,
 * connects to 127.0.0.1:PORT and hands the socket back — see gateway/sandbox-proxy.ts, which
 * preview URLs use too), so a server bound to localhost inside works. HTTP requests go over kept-
 * alive connections to each replica (sandbox-agents.ts), dropped when the replica goes; upgrades
 * get a connection of their own, spliced byte for byte.
 */
import { traceHeaders, traced } from '../telemetry/trace.js';
import { type IncomingMessage, type ServerResponse, request } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Engine } from '../engine/engine.js';
import type { SandboxRecord } from '../store/store.js';
import { SandboxAgents, bodyless, headDeadline, retryable } from '../gateway/sandbox-agents.js';
import { dialSandboxPort } from '../gateway/sandbox-proxy.js';
import type { RawAccess } from '../gateway/fast-lane.js';
import { RawUpstreams } from '../gateway/raw-upstreams.js';
import { RealmError, errorMessage } from '../util/errors.js';

export interface ReplicaProxy {
  /**
   * Pass one HTTP request (its body streamed) to the sandbox's port; `path` is what the replica sees.
   * Rejects (SERVICE_UNAVAILABLE) when the replica failed before its answer began, nothing sent to
   * the client; APP_TIMEOUT when its head did not come whole in time (sandbox-agents.ts).
   */
  proxy(req: IncomingMessage, res: ServerResponse, sandboxId: string, port: number, path: string): Promise<void>;
  /** Pass a WebSocket (or other) upgrade: the head is rewritten with `path`, then bytes flow both ways. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, sandboxId: string, port: number, path: string): Promise<void>;
  /** A health check: an HTTP GET of `path` answers 2xx/3xx, or (no path) a TCP connection to the port opens. */
  check(sandboxId: string, port: number, timeoutMs: number, path?: string): Promise<boolean>;
  /** Raw connections to replicas' ports for the gateway's fast lane (fast-lane.ts), when offered. */
  readonly raw?: RawAccess;
  /** The replica in this sandbox is gone: drop what is kept for it (pooled connections). */
  forget(sandboxId: string): void;
  close(): void;
}

/** Headers that belong to one connection, not passed on (RFC 9110 7.6.1); the gateway's fast lane drops the same. */
export const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

export class DialReplicaProxy implements ReplicaProxy {
  /** Kept-alive connections to each replica's port (sandbox-agents.ts). */
  private readonly agents = new SandboxAgents();
  /** Kept-alive raw connections for the gateway's fast lane. */
  private readonly upstreams = new RawUpstreams();

  readonly raw: RawAccess = {
    take: (sandbox, port) => this.upstreams.take(sandbox, port),
    give: (sandbox, port, socket) => this.upstreams.give(sandbox, port, socket),
    dial: (sandbox, port) => this.dial(sandbox, port),
  };

  constructor(private readonly engine: Engine) {}

  /**
   * Replicas' sandbox records, looked up once: a replica's sandbox stays as it is while it serves
   * (the driver's dial still checks its process is the same; the reconciler sees it go).
   */
  private readonly records = new Map<string, SandboxRecord>();

  /** A connection to the replica's port, or SERVICE_UNAVAILABLE (the caller may try another replica). */
  private async dial(sandboxId: string, port: number): Promise<Socket> {
    try {
      let rec = this.records.get(sandboxId);
      if (!rec) {
        rec = await this.engine.getSandbox(sandboxId);
        if (rec.status === 'running') this.records.set(sandboxId, rec);
      }
      return await dialSandboxPort(this.engine, rec, port);
    } catch (e) {
      throw new RealmError('SERVICE_UNAVAILABLE', `the replica in sandbox ${sandboxId} did not answer: ${errorMessage(e)}`);
    }
  }

  /** One request to a replica, in a client span the replica may continue (its `traceparent`) when tracing is on. */
  proxy(req: IncomingMessage, res: ServerResponse, sandboxId: string, port: number, path: string): Promise<void> {
    return traced(
      'gateway.upstream',
      { 'http.request.method': req.method, 'realm.sandbox.id': sandboxId, 'server.port': port },
      async (span) => {
        await this.proxyNow(req, res, sandboxId, port, path);
        span.set({ 'http.response.status_code': res.statusCode });
      },
      { client: true },
    );
  }

  private async proxyNow(
    req: IncomingMessage,
    res: ServerResponse,
    sandboxId: string,
    port: number,
    path: string,
  ): Promise<void> {
    const agent = this.agents.agent(sandboxId, port, () => this.dial(sandboxId, port));
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
    // The replica's work continues this hop's span, not the caller's (none when tracing is off).
    Object.assign(headers, traceHeaders());
    const noBody = bodyless(req);
    if (noBody) req.resume();
    const attempt = (again: boolean): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const out = request({ method: req.method, path, headers, agent }, (up) => {
          const h: Record<string, string | string[]> = {};
          for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP.has(k)) h[k] = v;
          res.writeHead(up.statusCode ?? 502, up.statusMessage, h);
          up.pipe(res);
          up.once('end', resolve);
          up.once('error', () => resolve(void res.destroy()));
        });
        // Before an answer began, the caller may try another replica; after, the response is cut short.
        headDeadline(out, `the replica in sandbox ${sandboxId}`);
        out.once('error', (e: NodeJS.ErrnoException) => {
          if (res.headersSent) resolve(void res.destroy());
          else if (again && retryable(out, e, noBody)) attempt(false).then(resolve, reject);
          else if (e instanceof RealmError) reject(e);
          else reject(new RealmError('SERVICE_UNAVAILABLE', `the replica did not answer: ${e.message}`));
        });
        res.once('close', () => {
          out.destroy();
          resolve();
        });
        if (noBody) out.end();
        else req.pipe(out);
      });
    await attempt(true);
  }

  async upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    sandboxId: string,
    port: number,
    path: string,
  ): Promise<void> {
    const up = await this.dial(sandboxId, port);
    // From the parsed headers, not the raw ones: what the gateway took out (a relaying peer's
    // credential) stays out, and what it added (X-Forwarded-Prefix) goes in.
    const lines = [`${req.method ?? 'GET'} ${path} HTTP/1.1`];
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined) for (const one of Array.isArray(v) ? v : [v]) lines.push(`${k}: ${one}`);
    up.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length) up.write(head);
    up.pipe(socket);
    socket.pipe(up);
    const done = (): void => {
      up.destroy();
      socket.destroy();
    };
    up.once('error', done).once('close', done);
    socket.once('error', done).once('close', done);
  }

  async check(sandboxId: string, port: number, timeoutMs: number, path?: string): Promise<boolean> {
    let socket: Socket;
    try {
      socket = await dialSandboxPort(this.engine, sandboxId, port);
    } catch {
      return false;
    }
    if (path === undefined) {
      socket.destroy();
      return true;
    }
    return new Promise((resolve) => {
      const out = request(
        {
          path,
          headers: { host: 'localhost', 'user-agent': 'realm-health' },
          timeout: timeoutMs,
          createConnection: () => socket,
        },
        (up) => {
          up.resume();
          const code = up.statusCode ?? 0;
          resolve(code >= 200 && code < 400);
          socket.destroy();
        },
      );
      out.once('timeout', () => out.destroy());
      out.once('error', () => resolve(false));
      out.end();
    });
  }

  forget(sandboxId: string): void {
    this.agents.forget(sandboxId);
    this.upstreams.forget(sandboxId);
    this.records.delete(sandboxId);
  }

  close(): void {
    this.agents.close();
    this.upstreams.close();
    this.records.clear();
  }
}
