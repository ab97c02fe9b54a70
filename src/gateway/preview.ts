/**
 * Preview URLs: `http://<port>-<sandbox>.<domain>:<gateway port>/…` reaches `port` on the
 * sandbox's own loopback (sandbox-proxy.ts). The default domain, realm.localhost, resolves to
 * loopback in browsers and Node without DNS. Private by default — a request (a WebSocket upgrade
 * the same) is let through only with one of:
 * - `Authorization: Bearer <token>`: an API token whose owner may use the sandbox (the API's check);
 * - a signed link's token (preview-links.ts) in the `realm_preview` query parameter: exchanged on
 *   a page load for an HttpOnly, SameSite=Lax cookie of this host alone, then redirected to the
 *   clean URL; or that cookie;
 * - a live public link to the port (`realm sandbox url ID PORT --public`).
 * Requests reuse kept-alive connections to the port (sandbox-agents.ts). The credential is taken out of what the sandbox sees. A sandbox another user owns answers as one
 * that does not exist, as in the API.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Engine } from '../engine/engine.js';
import { mayUse } from '../engine/owner.js';
import type { SandboxRecord } from '../store/store.js';
import { type ErrorCode, RealmError } from '../util/errors.js';
import { sendError } from './http.js';
import type { PreviewLinks } from './preview-links.js';
import { SandboxAgents } from './sandbox-agents.js';
import { type ProxyOptions, proxyHttp, proxyUpgrade, refuseUpgrade } from './sandbox-proxy.js';
import type { GatewayRelay } from './relay.js';
import type { NodeView } from '../cluster/types.js';

/** The preview domain unless `--preview-domain` says otherwise. */
export const DEFAULT_PREVIEW_DOMAIN = 'realm.localhost';
/** The query parameter and cookie that carry a link's token. */
export const PREVIEW_PARAM = 'realm_preview';

export interface PreviewTarget {
  port: number;
  sandbox: string;
}

type Verdict =
  | { ok: true; rec: SandboxRecord; opts: ProxyOptions; exchange?: string | undefined }
  | { ok: false; code: ErrorCode; message: string };

const PRIVATE = (t: PreviewTarget): string =>
  `port ${t.port} of sandbox ${t.sandbox} is private: send "Authorization: Bearer <token>" (an API token of the sandbox's owner), or open a link from \`realm sandbox url ${t.sandbox} ${t.port}\``;

export class Preview {
  /** The port URLs name (the gateway's, or the public listener's); set once it listens. */
  port = 0;
  /** Kept-alive connections to the sandboxes' ports. */
  private readonly agents = new SandboxAgents();
  /** In a cluster: a sandbox on another node is reached through it (relay.ts). */
  relay: GatewayRelay | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly links: PreviewLinks,
    private readonly tokens: { ownerOf(token: string): Promise<string | undefined> },
    readonly domain: string = DEFAULT_PREVIEW_DOMAIN,
  ) {}

  /** The preview target a Host header names, if it is one of this domain's. */
  match(host: string | undefined): PreviewTarget | undefined {
    if (!host) return undefined;
    const name = host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
    if (!name.endsWith(`.${this.domain}`)) return undefined;
    const m = /^(\d{1,5})-([a-z0-9][a-z0-9_-]*)$/.exec(name.slice(0, -this.domain.length - 1));
    const port = Number(m?.[1]);
    if (!m?.[2] || port < 1 || port > 65535) return undefined;
    return { port, sandbox: m[2] };
  }

  /** The URL of a sandbox's port, with a link's token when given. */
  url(sandbox: string, port: number, token?: string): string {
    const base = `http://${port}-${sandbox}.${this.domain}${this.port && this.port !== 80 ? `:${this.port}` : ''}/`;
    return token ? `${base}?${PREVIEW_PARAM}=${token}` : base;
  }

  private async sandbox(t: PreviewTarget, who: string): Promise<SandboxRecord | undefined> {
    try {
      const rec = await this.engine.getSandbox(t.sandbox);
      return mayUse(who, rec.owner) ? rec : undefined;
    } catch (e) {
      if (e instanceof RealmError && e.code === 'SANDBOX_NOT_FOUND') return undefined;
      throw e;
    }
  }

  /** Whether this node holds the sandbox (whoever owns it). */
  private async held(sandbox: string): Promise<boolean> {
    return this.engine.getSandbox(sandbox).then(
      () => true,
      () => false,
    );
  }

  /**
   * The other node that holds the sandbox, when one does, and whose bearer token was checked here
   * (tokens are each node's; a link is checked there, by the node that signed it).
   */
  private async elsewhere(
    req: IncomingMessage,
    t: PreviewTarget,
  ): Promise<{ ok: true; node: NodeView; as?: string | undefined } | { ok: false; message: string } | null> {
    // Held here (the common case) or not: etcd is asked only for a sandbox this node does not hold.
    if (!this.relay || (await this.held(t.sandbox))) return null;
    const node = await this.relay.sandboxHome(t.sandbox);
    if (!node) return null;
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const as = bearer ? await this.tokens.ownerOf(bearer) : undefined;
    if (bearer && !as) return { ok: false, message: `the bearer token is not valid on this node; ${PRIVATE(t)}` };
    return { ok: true, node, as };
  }

  /** Whether the request may reach the target, and what of it the sandbox must not see; `as`: a peer checked a bearer token of this principal. */
  private async verdict(req: IncomingMessage, t: PreviewTarget, as?: string): Promise<Verdict> {
    const url = new URL(req.url ?? '/', 'http://x');
    const cookies = (req.headers.cookie ?? '')
      .split(';')
      .map((c) => c.trim())
      .filter(Boolean);
    const ours = cookies.find((c) => c.startsWith(`${PREVIEW_PARAM}=`))?.slice(PREVIEW_PARAM.length + 1);
    const cookie = cookies.filter((c) => !c.startsWith(`${PREVIEW_PARAM}=`)).join('; ');
    const opts: ProxyOptions = { cookie };
    const notFound = {
      ok: false,
      code: 'SANDBOX_NOT_FOUND',
      message: `no sandbox "${t.sandbox}"; \`realm sandbox ls\` lists them`,
    } as const;
    if (as) {
      const rec = await this.sandbox(t, as);
      return rec ? { ok: true, rec, opts } : notFound;
    }
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer) {
      const owner = await this.tokens.ownerOf(bearer);
      if (!owner)
        return { ok: false, code: 'UNAUTHORIZED', message: `the bearer token is not valid on this node; ${PRIVATE(t)}` };
      const rec = await this.sandbox(t, owner);
      return rec ? { ok: true, rec, opts: { ...opts, dropHeaders: new Set(['authorization']) } } : notFound;
    }
    const fromQuery = url.searchParams.get(PREVIEW_PARAM) ?? undefined;
    const token = fromQuery ?? ours;
    // Links name the sandbox by id: a name in the Host is resolved first (as root: the link's HMAC decides).
    const rec = await this.sandbox(t, 'uid:0');
    if (token) {
      // Without a credential that checks out, a missing sandbox looks like any refused one.
      if (!rec)
        return {
          ok: false,
          code: 'UNAUTHORIZED',
          message: `the preview token is not one for port ${t.port} of sandbox ${t.sandbox}; ${PRIVATE(t)}`,
        };
      const c = this.links.check(token, rec.id, t.port);
      if (!c.ok) return { ok: false, code: 'UNAUTHORIZED', message: `${c.why}; ${PRIVATE(t)}` };
      // The link's maker must still be allowed the sandbox.
      if (!mayUse(c.link.owner, rec.owner))
        return { ok: false, code: 'UNAUTHORIZED', message: `the link's maker may no longer use sandbox ${t.sandbox}` };
      return { ok: true, rec, opts, exchange: fromQuery };
    }
    if (rec && this.links.publicLink(rec.id, t.port)) return { ok: true, rec, opts };
    return { ok: false, code: 'UNAUTHORIZED', message: PRIVATE(t) };
  }

  /**
   * Serve a request whose Host is a preview name: here, or relayed to the node that holds the
   * sandbox. `relayed`: a peer relayed it (it is served here, never sent on), `as` whose bearer
   * token it checked.
   */
  async handle(
    req: IncomingMessage,
    res: ServerResponse,
    t: PreviewTarget,
    relayed?: { as?: string | undefined },
  ): Promise<void> {
    const there = relayed ? null : await this.elsewhere(req, t);
    if (there && this.relay) {
      if (!there.ok) {
        req.resume();
        return sendError(res, 'UNAUTHORIZED', there.message);
      }
      return this.relay.relay(req, res, there.node, there.as);
    }
    const v = await this.verdict(req, t, relayed?.as);
    if (!v.ok) {
      req.resume();
      return sendError(res, v.code, v.message);
    }
    if (v.exchange) {
      // The link's token becomes a cookie of this host alone; the address bar loses the token.
      const c = this.links.check(v.exchange, v.rec.id, t.port);
      const maxAge = c.ok ? Math.max(1, Math.floor((c.link.expiresAt - Date.now()) / 1000)) : 1;
      const url = new URL(req.url ?? '/', 'http://x');
      url.searchParams.delete(PREVIEW_PARAM);
      req.resume();
      res.writeHead(303, {
        location: `${url.pathname}${url.search}`,
        'set-cookie': `${PREVIEW_PARAM}=${v.exchange}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Lax`,
        'content-length': '0',
        'cache-control': 'no-store',
      });
      res.end();
      return;
    }
    await proxyHttp(this.engine, v.rec, t.port, req, res, { ...v.opts, agents: this.agents });
  }

  /** Close the kept-alive connections. */
  close(): void {
    this.agents.close();
  }

  /**
   * Serve an Upgrade (WebSocket) whose Host is a preview name: the same checks, then spliced
   * through; relayed to the node that holds the sandbox as a request is. `relayed` as for handle.
   */
  async upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    t: PreviewTarget,
    relayed?: { as?: string | undefined },
  ): Promise<void> {
    const there = relayed ? null : await this.elsewhere(req, t);
    if (there && this.relay) {
      if (!there.ok) return refuseUpgrade(socket, 'UNAUTHORIZED', there.message);
      return this.relay.relayUpgrade(req, socket, head, there.node, there.as);
    }
    const v = await this.verdict(req, t, relayed?.as);
    if (!v.ok) return refuseUpgrade(socket, v.code, v.message);
    if (v.exchange) {
      // The token stays out of what the sandbox's server sees.
      const url = new URL(req.url ?? '/', 'http://x');
      url.searchParams.delete(PREVIEW_PARAM);
      req.url = `${url.pathname}${url.search}`;
    }
    await proxyUpgrade(this.engine, v.rec, t.port, req, socket, head, v.opts);
  }
}
