/** The HTTP client under every SDK call. No dependency on realm's daemon code. */
import type { Agent } from 'undici';
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { DaemonUnreachableError, errorFromBody } from './errors.js';
import { Images } from './images.js';
import { Blobs } from './blobs.js';
import { Jobs } from './jobs.js';
import { Nodes } from './nodes.js';
import { Metrics } from './metrics.js';
import { Logs } from './logs.js';
import { Services } from './services.js';
import { Manifest } from './manifest.js';
import { Upgrades } from './upgrades.js';
import { Packages } from './packages.js';

/** undici, loaded with the first fetch-style request: whole answers and event streams never pay for it. */
let undici: Promise<Pick<typeof import('undici'), 'Agent' | 'fetch' | 'request'>> | undefined;
const loadUndici = (): NonNullable<typeof undici> => (undici ??= import('undici'));

/** node:http (or node:https), loaded with the first request. */
type Http = Pick<typeof import('node:http'), 'Agent' | 'request'>;
let nodeHttp: Promise<Http> | undefined;
let nodeHttps: Promise<Http> | undefined;

/** Where the daemon listens unless told otherwise (`REALM_URL`). */
export const DEFAULT_URL = 'http://127.0.0.1:7070';

export interface ClientOptions {
  /**
   * Base URL of the daemon; defaults to `REALM_URL`, then http://127.0.0.1:7070. `unix:/PATH`
   * means the daemon's unix socket at PATH (as `socketPath`).
   */
  url?: string;
  /**
   * The daemon's unix socket (e.g. /run/realm/api.sock). There the daemon knows the caller by
   * its uid and wants no token; it acts for that user.
   */
  socketPath?: string;
  /** Bearer token, when the daemon wants one (`REALM_TOKEN`). */
  token?: string;
  /**
   * For an https:// daemon: the CA (PEM text) its certificate is verified against, instead of
   * Node's store (the system's CAs and NODE_EXTRA_CA_CERTS, used when this is not given). The CLI
   * reads it from the file REALM_CA names.
   */
  ca?: string | Uint8Array;
}

/** An answer's body as it comes, with its headers (an event stream's X-Realm-Boot, say). */
export type StreamBody = AsyncIterable<Uint8Array> & { headers: Record<string, string | string[] | undefined> };

export class Client {
  readonly url: string;
  /** The bearer token sent with every request, if any. */
  readonly token: string | undefined;
  /** The daemon's unix socket when requests go there instead of TCP. */
  readonly socketPath: string | undefined;
  /** The CA an https:// daemon's certificate is verified against (undefined: Node's store). */
  readonly ca: string | Uint8Array | undefined;
  /** Connections to the unix socket (none for TCP: the default dispatcher), made with the first request. */
  private dispatcher: Agent | undefined;
  /** Kept-alive connections for whole answers and event streams (node:http), made with the first request. */
  private agent: HttpAgent | undefined;

  /** Images: list, inspect, remove, prune, import, export, pull. */
  get images(): Images {
    return new Images(this);
  }

  /** The blob store: content-addressed (sha256) uploads, resumable by chunks, and verified downloads. */
  get blobs(): Blobs {
    return new Blobs(this);
  }

  /** Jobs: submit specs, follow logs, fetch artifacts. */
  get jobs(): Jobs {
    return new Jobs(this);
  }

  /** Process services: push, list, inspect, scale, restart, logs, remove. */
  get services(): Services {
    return new Services(this);
  }

  /** Signed manifests (status, apply, diff) and the owner keys the node trusts. */
  get manifest(): Manifest {
    return new Manifest(this);
  }

  /** Upgrades of realm itself across the nodes: post a signed release, follow each node. */
  get upgrades(): Upgrades {
    return new Upgrades(this);
  }

  /** Packages: deploy a .realm file as a service with its mounts. */
  get packages(): Packages {
    return new Packages(this);
  }

  /** The cluster's nodes: list, inspect, drain, tag. */
  get nodes(): Nodes {
    return new Nodes(this);
  }

  /** The node's metrics: Prometheus text, and the last hour in samples. */
  get metrics(): Metrics {
    return new Metrics(this);
  }

  /** The daemon's log (the admin's): recent lines, filtered, and a follow. */
  get logs(): Logs {
    return new Logs(this);
  }

  constructor(opts: ClientOptions = {}) {
    const env = typeof process !== 'undefined' ? process.env : {};
    const url = opts.url ?? (opts.socketPath ? undefined : env.REALM_URL) ?? DEFAULT_URL;
    this.socketPath = opts.socketPath ?? (url.startsWith('unix:') ? url.slice('unix:'.length) : undefined);
    // Over the socket the URL only names the paths; `localhost` is what the daemon expects as Host.
    this.url = this.socketPath ? 'http://localhost' : url.replace(/\/+$/, '');
    this.token = opts.token ?? env.REALM_TOKEN;
    this.ca = opts.ca;
  }

  /** undici, and the unix socket's dispatcher when requests go there. */
  private async transport(): Promise<Awaited<ReturnType<typeof loadUndici>>> {
    const u = await loadUndici();
    if (this.socketPath) this.dispatcher ??= new u.Agent({ connect: { socketPath: this.socketPath } });
    else if (this.ca) this.dispatcher ??= new u.Agent({ connect: { ca: caText(this.ca) } });
    return u;
  }

  /** Where requests go, for messages: the socket's path or the URL. */
  get address(): string {
    return this.socketPath ? `unix:${this.socketPath}` : this.url;
  }

  /**
   * Send a request and decode the JSON answer; API errors become typed errors. Whole answers and
   * event streams go through node:http, which starts in a fraction of undici's time (a CLI
   * command makes one request) and lets the process end as soon as the answer is read: an idle
   * kept-alive connection holds nothing open.
   */
  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
    headers?: Record<string, string>,
    onSent?: () => void,
  ): Promise<T> {
    const res = await this.open(method, path, body, signal, headers, onSent);
    let text = '';
    try {
      res.setEncoding('utf8');
      for await (const chunk of res) text += chunk as string;
    } catch (e) {
      throw this.transportError(e);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Send a request (JSON, or raw bytes for a Uint8Array) and hand back the answer's body as it
   * comes, in chunks (for event streams); API errors become typed errors.
   */
  async stream(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
    headers?: Record<string, string>,
  ): Promise<StreamBody> {
    return this.open(method, path, body, signal, headers);
  }

  /** One request over node:http; the answer once its status is known (an error status read and thrown). */
  private async open(
    method: string,
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
    extra?: Record<string, string>,
    onSent?: () => void,
  ): Promise<IncomingMessage> {
    const raw = body instanceof Uint8Array;
    const payload = body === undefined ? undefined : raw ? body : JSON.stringify(body);
    const headers = {
      ...extra,
      ...this.headers(body === undefined ? undefined : raw ? 'application/octet-stream' : 'application/json'),
    };
    if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
    let res: IncomingMessage;
    try {
      const secure = !this.socketPath && this.url.startsWith('https:');
      const http = await (secure ? (nodeHttps ??= import('node:https')) : (nodeHttp ??= import('node:http')));
      this.agent ??= keptAlive(http, secure ? this.ca : undefined);
      const agent = this.agent;
      dropIdled(agent);
      res = await new Promise<IncomingMessage>((resolve, reject) => {
        // Plain HTTP has no TLS server name: saying so spares the agent's check that the host is
        // not an IP address, whose IPv6 pattern takes Node 20 ~11 ms to compile on first use.
        const req = http.request(
          this.url + path,
          {
            method,
            headers,
            agent,
            ...(secure ? {} : { servername: '' }),
            ...(this.socketPath ? { socketPath: this.socketPath } : {}),
            ...(signal ? { signal } : {}),
          },
          resolve,
        );
        req.once('error', reject);
        // The whole body is with the kernel (not yet answered): a caller may send what comes next.
        if (onSent) req.end(payload, onSent);
        else req.end(payload);
      });
    } catch (e) {
      throw this.transportError(e);
    }
    noteKeepAlive(res);
    const status = res.statusCode ?? 0;
    if (status >= 400) {
      let text = '';
      res.setEncoding('utf8');
      try {
        for await (const chunk of res) text += chunk as string;
      } catch (e) {
        throw this.transportError(e);
      }
      throw errorFromBody(status, parseJson(text));
    }
    return res;
  }

  /** Send a request (JSON, or raw bytes for a Uint8Array) and hand back the response; API errors become typed errors. */
  send(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    if (body === undefined) return this.sendRaw(method, path, undefined, undefined, signal);
    if (body instanceof Uint8Array)
      return this.sendRaw(method, path, body as Uint8Array<ArrayBuffer>, 'application/octet-stream', signal);
    return this.sendRaw(method, path, JSON.stringify(body), 'application/json', signal);
  }

  /** Send a body as it is (bytes, text or a stream) with this content type (and `headers`); API errors become typed errors. */
  async sendRaw(
    method: string,
    path: string,
    body: BodyInit | undefined,
    contentType: string | undefined,
    signal?: AbortSignal,
    headers?: Record<string, string>,
  ): Promise<Response> {
    let res: Response;
    try {
      // A stream body must say it is sent while the answer may already come (fetch's duplex).
      const payload = body === undefined ? {} : body instanceof ReadableStream ? { body, duplex: 'half' } : { body };
      const init = { method, headers: { ...headers, ...this.headers(contentType) }, ...payload, ...(signal ? { signal } : {}) };
      // Node's own fetch takes no socket path: undici's (the same implementation) does, through its dispatcher.
      const u = this.socketPath || this.ca ? await this.transport() : undefined;
      res =
        u && this.dispatcher
          ? ((await u.fetch(this.url + path, { ...init, dispatcher: this.dispatcher } as Parameters<
              typeof u.fetch
            >[1])) as unknown as Response)
          : await fetch(this.url + path, init);
    } catch (e) {
      throw this.transportError(e);
    }
    if (!res.ok) throw errorFromBody(res.status, parseJson(await res.text()));
    return res;
  }

  private headers(contentType: string | undefined): Record<string, string> {
    const headers: Record<string, string> = {};
    if (contentType) headers['content-type'] = contentType;
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    return headers;
  }

  /** The error for a request that reached no daemon (ECONNREFUSED, no socket file), as every request makes it. */
  unreachable(e: unknown): Error {
    return this.transportError(e);
  }

  /** An abort stays an abort; anything else means no daemon answered. */
  private transportError(e: unknown): Error {
    if ((e as Error).name === 'AbortError') return e as Error;
    const err = new DaemonUnreachableError(
      'DAEMON_UNREACHABLE',
      `no realm daemon answers at ${this.address} (${(e as Error).message}); start one with \`realm serve\` or set REALM_URL`,
    );
    err.cause = e; // e.g. ECONNREFUSED: nothing reached the daemon
    return err;
  }
}

/** How long the daemon keeps each connection open while idle (its Keep-Alive hint, less a margin), and since when it idles. */
const idleLimit = new WeakMap<Socket, number>();
const idleSince = new WeakMap<Socket, number>();

function keptAlive(http: Http, ca: string | Uint8Array | undefined): HttpAgent {
  // node:https's Agent takes TLS options; node:http's is never given any.
  const agent = new http.Agent({ keepAlive: true, ...(ca ? { ca: caText(ca) } : {}) });
  agent.on('free', (socket: Socket) => idleSince.set(socket, Date.now()));
  return agent;
}

/** Note how long the daemon keeps this answer's connection once idle (`Keep-Alive: timeout=5`); a second less, as Node's agent reckons. */
function noteKeepAlive(res: IncomingMessage): void {
  const seconds = Number(/timeout=(\d+)/.exec(String(res.headers['keep-alive'] ?? ''))?.[1]);
  if (seconds > 0) idleLimit.set(res.socket, seconds * 1000 - 1000);
}

/**
 * Close the kept-alive connections idle for longer than the daemon keeps them. A connection the
 * daemon closed is dropped when its end is read; but a long synchronous task (stringifying a
 * large body) holds that back, and a request written there fails with ECONNRESET or EPIPE, as if
 * no daemon answered. The idlest connections come first in the agent's free list, where it skips
 * those destroyed.
 */
function dropIdled(agent: HttpAgent): void {
  const now = Date.now();
  for (const sockets of Object.values(agent.freeSockets)) {
    for (const socket of sockets ?? []) {
      const limit = idleLimit.get(socket);
      const since = idleSince.get(socket);
      if (limit !== undefined && since !== undefined && now - since >= limit) socket.destroy();
    }
  }
}

/** A CA as TLS options take it. */
export function caText(ca: string | Uint8Array): string {
  return typeof ca === 'string' ? ca : Buffer.from(ca).toString('utf8');
}

/** The JSON in an error answer, or undefined when it is not JSON. */
function parseJson(text: string): unknown {
  try {
    return text ? (JSON.parse(text) as unknown) : undefined;
  } catch {
    return undefined;
  }
}
