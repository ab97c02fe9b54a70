/**
 * The gateway in a cluster: a preview URL whose sandbox lives on another node, or a service with
 * no healthy replica on this node, is relayed to a node that has one (services.ts finds it from
 * the replicas every node reports) — over that node's API (its
 * peer credential, and TLS verified with --peer-ca, as forwarded API requests are), where the
 * gateway relay route (daemon/routes/gateway-relay.ts) serves it as that node's gateway would.
 * A preview's credential is checked where it can be: a bearer token here (tokens are each node's;
 * the peer is told whose it is), a signed link or its cookie there (links are signed by the node
 * that holds the sandbox); a service's visibility is checked here, where the client came in. Wasm
 * apps are the cluster's and every node serves each itself (cluster/apps-cluster.ts); a public app
 * this node does not have (yet: its module is still on its way, or it lives on a node of an older
 * release that keeps apps to itself) is found by asking the peers, and a local one is never relayed. Bodies
 * and answers stream. Upgrades (WebSockets) go over a connection of their own to the peer's API
 * (its relay route takes the upgrade: gateway-relay.ts), whose answer (the 101 or a refusal) and
 * every byte after are passed through as they are.
 */
import { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { type Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FORWARDED_HEADER, PRINCIPAL_HEADER, forward, peerJson } from '../cluster/forward.js';
import { dialFailure, peerWsOptions } from '../cluster/peer-tls.js';
import type { NodeView, Nodes } from '../cluster/types.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { sendError } from './http.js';
import { refuseUpgrade } from './sandbox-proxy.js';

/** The relay route on the API (peers only). */
export const RELAY_PATH = '/v1/cluster/gateway';
/** The Host the client named (the relayed request's own Host is the peer's API address). */
export const GATEWAY_HOST_HEADER = 'x-realm-gateway-host';
/** Whose bearer token the relaying node checked (a preview's owner check is made with it there). */
export const GATEWAY_AS_HEADER = 'x-realm-gateway-as';

/** How long the peer has to answer an upgrade. */
const UPGRADE_HEAD_MS = 10_000;
/** Request headers not sent on with a relayed upgrade: the client's credential (checked here) and what this hop sets. */
const UPGRADE_DROP = new Set([
  'host',
  'authorization',
  'proxy-authorization',
  PRINCIPAL_HEADER,
  FORWARDED_HEADER,
  GATEWAY_HOST_HEADER,
  GATEWAY_AS_HEADER,
]);

/** Headers of a refusal's framing: its body is passed on as read, ended by the connection's close. */
const FRAMING = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);

/** How long where an app runs (or that no peer runs it) is believed before peers are asked again. */
const APP_TTL_MS = 5_000;
const MAX_KNOWN = 10_000;

export class GatewayRelay {
  private readonly apps = new Map<string, { node: string | null; at: number }>();

  constructor(private readonly nodes: Nodes) {}

  /** The other node, up, that holds sandbox `id` (as noted in etcd); null: this one, or none known. */
  async sandboxHome(id: string): Promise<NodeView | null> {
    if (!this.nodes.clustered) return null;
    const home = await this.nodes.sandboxHome(id);
    if (!home || home.node === this.nodes.selfId) return null;
    return (await this.nodes.list()).find((n) => n.id === home.node && n.state !== 'down') ?? null;
  }

  /**
   * The other node, up, that runs public wasm app `name`, which this node does not have (yet, or
   * a node of an older release pushed it: apps are otherwise every node's); null: none does.
   * Asked of each peer, remembered a few seconds.
   */
  async appHome(name: string): Promise<NodeView | null> {
    if (!this.nodes.clustered) return null;
    const all = (await this.nodes.list()).filter((n) => !n.self && n.state !== 'down');
    const known = this.apps.get(name);
    if (known && Date.now() - known.at < APP_TTL_MS) return all.find((n) => n.id === known.node) ?? null;
    let found: NodeView | null = null;
    for (const n of all) {
      const app = await peerJson<{ visibility?: string }>({
        address: n.address,
        pathAndQuery: `/v1/apps/${encodeURIComponent(name)}`,
        principal: 'uid:0',
        peerToken: this.nodes.peerToken(),
        from: this.nodes.selfId,
      }).catch(() => null);
      if (app?.visibility === 'public') {
        found = n;
        break;
      }
    }
    if (this.apps.size >= MAX_KNOWN) this.apps.clear();
    this.apps.set(name, { node: found?.id ?? null, at: Date.now() });
    return found;
  }

  /** Relay the request to `node`'s gateway; `as`: the owner of the bearer token checked here. */
  async relay(req: IncomingMessage, res: ServerResponse, node: NodeView, as?: string): Promise<void> {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined && k !== GATEWAY_AS_HEADER) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
    headers.set(GATEWAY_HOST_HEADER, req.headers.host ?? '');
    if (as) headers.set(GATEWAY_AS_HEADER, as);
    const gone = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    let answer: Response;
    try {
      answer = await forward({
        method: req.method ?? 'GET',
        address: node.address,
        pathAndQuery: `${RELAY_PATH}${req.url ?? '/'}`,
        headers,
        body: req,
        // The relay route is served to peers alone; who may reach what is the gateway's to decide there.
        principal: 'uid:0',
        peerToken: this.nodes.peerToken(),
        from: this.nodes.selfId,
        signal: gone.signal,
      });
    } catch (e) {
      req.resume();
      const code = e instanceof RealmError ? e.code : 'NODE_UNREACHABLE';
      return sendError(res, code, `node ${node.id} holds this and did not answer: ${errorMessage(e)}`);
    }
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of answer.headers) if (k !== 'set-cookie') out[k] = v;
    const cookies = answer.headers.getSetCookie();
    if (cookies.length) out['set-cookie'] = cookies;
    res.writeHead(answer.status, answer.statusText, out);
    if (!answer.body) return void res.end();
    await pipeline(Readable.fromWeb(answer.body as import('node:stream/web').ReadableStream<Uint8Array>), res).catch(() =>
      res.destroy(),
    );
  }

  /**
   * Relay an upgrade (a WebSocket) to `node`'s gateway: the peer's answer, 101 or a refusal, goes
   * back as it came, and after a 101 the bytes flow both ways until either side closes.
   */
  relayUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, node: NodeView, as?: string): void {
    const headers: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !UPGRADE_DROP.has(k)) headers[k] = v;
    headers.authorization = `Bearer ${this.nodes.peerToken()}`;
    headers[PRINCIPAL_HEADER] = 'uid:0';
    headers[FORWARDED_HEADER] = this.nodes.selfId;
    headers[GATEWAY_HOST_HEADER] = req.headers.host ?? '';
    if (as) headers[GATEWAY_AS_HEADER] = as;
    const url = new URL(`${RELAY_PATH}${req.url ?? '/'}`, node.address);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const out = send(url, { method: req.method ?? 'GET', headers, timeout: UPGRADE_HEAD_MS, ...peerWsOptions() });
    /** The peer's status line and headers, as the client is to see them (a refusal's body ends with the connection). */
    const headOf = (res: IncomingMessage, refused: boolean): string => {
      const lines = [`HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}`];
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2)
        if (!refused || !FRAMING.has(res.rawHeaders[i]?.toLowerCase() ?? ''))
          lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
      return `${lines.join('\r\n')}\r\n${refused ? 'connection: close\r\n' : ''}\r\n`;
    };
    let answered = false;
    out.once('upgrade', (res: IncomingMessage, up: Socket, upHead: Buffer) => {
      answered = true;
      const end = (): void => {
        up.destroy();
        socket.destroy();
      };
      up.once('error', end).once('close', end);
      socket.once('error', end).once('close', end);
      if (socket.destroyed) return end();
      up.setTimeout(0);
      socket.write(headOf(res, false));
      if (upHead.length) socket.write(upHead);
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    out.once('response', (res: IncomingMessage) => {
      // Refused there (no such sandbox, not allowed): the answer as it is, then the connection ends.
      answered = true;
      socket.write(headOf(res, true));
      res.pipe(socket);
      res.once('error', () => socket.destroy());
    });
    out.once('timeout', () => out.destroy(new Error(`no answer within ${UPGRADE_HEAD_MS / 1000} s`)));
    out.once('error', (e) => {
      if (answered) return void socket.destroy();
      refuseUpgrade(
        socket,
        'NODE_UNREACHABLE',
        `node ${node.id} holds this and did not answer: ${dialFailure(e)}; \`realm node ls\` shows its state`,
      );
    });
    socket.once('close', () => {
      if (!answered) out.destroy();
    });
    out.end();
  }
}
