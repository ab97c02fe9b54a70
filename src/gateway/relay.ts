/**
 * The gateway in a cluster: a preview URL whose sandbox lives on another node, or a service with
 * no healthy replica on this node, is relayed to a node that has one (services.ts finds it from
 * the replicas every node reports) — over that node's API (its
 * peer credential, and TLS verified with --peer-ca, as forwarded API requests are), where the
 * gateway relay route (daemon/routes/gateway-relay.ts) serves it as that node's gateway would.
 * A preview's credential is checked where it can be: a bearer token here (tokens are each node's;
 * the peer is told whose it is), a signed link or its cookie there (links are signed by the node
 * that holds the sandbox); a service's visibility is checked here, where the client came in.
 * Bodies and answers stream; upgrades (WebSockets) are not relayed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { forward } from '../cluster/forward.js';
import type { NodeView, Nodes } from '../cluster/types.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { sendError } from './http.js';

/** The relay route on the API (peers only). */
export const RELAY_PATH = '/v1/cluster/gateway';
/** The Host the client named (the relayed request's own Host is the peer's API address). */
export const GATEWAY_HOST_HEADER = 'x-realm-gateway-host';
/** Whose bearer token the relaying node checked (a preview's owner check is made with it there). */
export const GATEWAY_AS_HEADER = 'x-realm-gateway-as';

export class GatewayRelay {
  constructor(private readonly nodes: Nodes) {}

  /** The other node, up, that holds sandbox `id` (as noted in etcd); null: this one, or none known. */
  async sandboxHome(id: string): Promise<NodeView | null> {
    if (!this.nodes.clustered) return null;
    const home = await this.nodes.sandboxHome(id);
    if (!home || home.node === this.nodes.selfId) return null;
    return (await this.nodes.list()).find((n) => n.id === home.node && n.state !== 'down') ?? null;
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
}
