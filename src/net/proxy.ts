/**
 * The filtering proxy of one sandbox: HTTP CONNECT (for HTTPS and anything over TCP) and plain
 * HTTP with absolute URLs, on a unix socket that is the sandbox's only way out. Destinations are
 * checked against the sandbox's allow/deny rules by the name the program asked for; names
 * resolve on the host (pinned names first), and the address found is checked again (addresses.ts):
 * loopback, private, link-local (cloud metadata), CGNAT and reserved ranges and the host's own
 * addresses are refused whatever the rules say, pinned names included, unless the operator opened
 * the range (`realm serve --allow-private`). The connection goes to the address checked.
 * Headers configured for a host (secrets) are added to requests there: plain HTTP as it passes,
 * HTTPS by ending the sandbox's TLS with a certificate from the daemon's proxy CA (trusted only by
 * sandboxes with injections) and speaking verified TLS to the real host. SOCKS5 is served on the
 * same socket (told apart by its first byte).
 */
import { lookup } from 'node:dns/promises';
import { chmodSync, chownSync, rmSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, createServer, request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { TLSSocket } from 'node:tls';
import type { ProxyCa } from './ca.js';
import { type Server, type Socket, connect, createServer as createNetServer, isIP } from 'node:net';
import { type Destinations, normalize } from './addresses.js';
import { type Policy, allowedBy, matches, type Rule } from './policy.js';
import { recordProxy } from '../metrics/record.js';
import { serveSocks } from './socks.js';

export interface Injection {
  rule: Rule;
  header: string;
  value: string;
}

export interface Denied {
  time: string;
  host: string;
  port: number;
  reason: string;
}

export interface ProxyOptions {
  policy: Policy;
  inject: Injection[];
  /** Names pinned to addresses (operator configuration, also how tests reach their servers). */
  pinned: Record<string, string>;
  /** Which addresses may be reached at all (the operator's opened ranges). */
  destinations: Destinations;
  onDenied: (d: Denied) => void;
  /** For HTTPS injection: the CA that signs the certificates shown to the sandbox, and the CAs the real hosts are checked against. */
  tls?: { ca: ProxyCa; upstreamCa: string[] } | undefined;
}

interface Target {
  host: string;
  port: number;
  address: string;
}

export class SandboxProxy {
  private readonly server = createServer();
  /** What listens: hands each connection to SOCKS or to the HTTP server by its first byte. */
  private readonly front: Server;
  private readonly sockets = new Set<Socket>();
  /** Requests inside intercepted TLS tunnels, and where each tunnel goes. */
  private readonly inner = createServer();
  private readonly targets = new WeakMap<Socket, Target & { secure: boolean }>();

  constructor(
    private readonly socketPath: string,
    private readonly opts: ProxyOptions,
  ) {
    this.server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => void this.tunnel(req, client, head));
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => void this.forward(req, res));
    this.inner.on('request', (req: IncomingMessage, res: ServerResponse) => this.forwardTunnelled(req, res));
    this.front = createNetServer((s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
      s.once('readable', () => {
        const first = s.read(1) as Buffer | null;
        if (!first) return void s.destroy();
        s.unshift(first);
        if (first[0] === 0x05)
          void serveSocks(
            s,
            (h, p) => this.resolve(h, p),
            (h, p, why) => this.deny(h, p, why),
          );
        else this.server.emit('connection', s);
      });
    });
  }

  async listen(uid: number): Promise<void> {
    rmSync(this.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.front.once('error', reject);
      this.front.listen(this.socketPath, () => resolve());
    });
    chmodSync(this.socketPath, 0o600);
    chownSync(this.socketPath, uid, uid);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.front.close(() => r()));
    rmSync(this.socketPath, { force: true });
  }

  /** The address to connect to, or why not. */
  private async resolve(host: string, port: number): Promise<{ address: string } | { denied: string }> {
    const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
    if (!allowedBy(this.opts.policy, bare, port)) return { denied: 'not allowed by the sandbox network rules' };
    const pinned = this.opts.pinned[bare];
    let address = pinned ?? bare;
    if (!pinned && !isIP(bare)) {
      try {
        address = (await lookup(bare)).address;
      } catch {
        return { denied: 'name does not resolve' };
      }
    }
    // By address, whatever the name or the rules: a rule cannot open the host or a private range.
    address = normalize(address);
    const refused = this.opts.destinations.refusal(address);
    if (refused) return { denied: `refused: ${refused} (an operator opens ranges with realm serve --allow-private CIDR)` };
    recordProxy(true);
    return { address };
  }

  private deny(host: string, port: number, reason: string): void {
    recordProxy(false);
    this.opts.onDenied({ time: new Date().toISOString(), host, port, reason });
  }

  private async tunnel(req: IncomingMessage, client: Socket, head: Buffer): Promise<void> {
    client.on('error', () => undefined);
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(req.url ?? '');
    const host = m?.[1] ?? '';
    const port = Number(m?.[2]);
    if (!m || !port) {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const r = await this.resolve(host, port);
    if ('denied' in r) {
      this.deny(host, port, r.denied);
      client.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\n\r\nrealm: ${host}:${port} is ${r.denied}\n`);
      return;
    }
    const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
    if (this.opts.tls && this.opts.inject.some((i) => matches(i.rule, bare, port))) {
      await this.intercept(client, head, { host: bare, port, address: r.address });
      return;
    }
    const upstream = connect(port, r.address, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'));
    client.on('close', () => upstream.destroy());
  }

  /**
   * A tunnel to a host with injections: TLS inside is ended here (a certificate for `t.host` from
   * the proxy CA), plain HTTP is read as it is; either way its requests get the host's headers.
   */
  private async intercept(client: Socket, head: Buffer, t: Target): Promise<void> {
    const tls = this.opts.tls;
    if (!tls) return;
    let context;
    try {
      context = await tls.ca.context(t.host);
    } catch {
      client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
      return;
    }
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length) client.unshift(head);
    client.once('readable', () => {
      const first = client.read(1) as Buffer | null;
      if (!first) return void client.destroy();
      client.unshift(first);
      // 0x16: a TLS handshake record.
      if (first[0] !== 0x16) {
        this.targets.set(client, { ...t, secure: false });
        this.inner.emit('connection', client);
        return;
      }
      const secure = new TLSSocket(client, { isServer: true, secureContext: context, ALPNProtocols: ['http/1.1'] });
      secure.on('error', () => client.destroy());
      this.targets.set(secure, { ...t, secure: true });
      this.inner.emit('connection', secure);
    });
  }

  /** A request inside an intercepted tunnel: add the host's headers, send it on (over verified TLS if it came in TLS). */
  private forwardTunnelled(req: IncomingMessage, res: ServerResponse): void {
    const t = this.targets.get(req.socket);
    if (!t || !this.opts.tls) return void res.writeHead(502).end();
    const headers = { ...req.headers };
    for (const inj of this.opts.inject) if (matches(inj.rule, t.host, t.port)) headers[inj.header.toLowerCase()] = inj.value;
    const common = { host: t.address, port: t.port, method: req.method, path: req.url, headers, setHost: false };
    const onResponse = (ures: IncomingMessage): void => {
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      ures.pipe(res);
    };
    const up = t.secure
      ? httpsRequest({ ...common, servername: isIP(t.host) ? undefined : t.host, ca: this.opts.tls.upstreamCa }, onResponse)
      : request(common, onResponse);
    up.on('error', (e) => {
      if (!res.headersSent)
        res.writeHead(502, { 'content-type': 'text/plain' }).end(`realm: ${t.host}:${t.port} failed: ${e.message}\n`);
      else res.destroy();
    });
    req.pipe(up);
  }

  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '');
      if (url.protocol !== 'http:') throw new Error('only http');
    } catch {
      res
        .writeHead(400, { 'content-type': 'text/plain' })
        .end('realm: send absolute http:// URLs through the proxy (HTTP_PROXY), or CONNECT for anything else\n');
      return;
    }
    const port = Number(url.port || 80);
    const r = await this.resolve(url.hostname, port);
    if ('denied' in r) {
      this.deny(url.hostname, port, r.denied);
      res.writeHead(403, { 'content-type': 'text/plain' }).end(`realm: ${url.hostname}:${port} is ${r.denied}\n`);
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    for (const inj of this.opts.inject) if (matches(inj.rule, url.hostname, port)) headers[inj.header.toLowerCase()] = inj.value;
    const up = request(
      { host: r.address, port, method: req.method, path: `${url.pathname}${url.search}`, headers, setHost: false },
      (ures) => {
        res.writeHead(ures.statusCode ?? 502, ures.headers);
        ures.pipe(res);
      },
    );
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(up);
  }
}
