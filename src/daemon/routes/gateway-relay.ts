/**
 * The gateway relay (gateway/relay.ts): a peer node sends here a gateway request for a sandbox
 * or a public service of this node, and it is served as this node's gateway would serve it, the
 * Host being the one the client named. Peers only: a client's request (even the admin's) is
 * refused, so the API never serves gateway traffic of its own accord. Not in the OpenAPI document:
 * it is no operation of the API, only a tunnel between members of one cluster.
 */
import type { Hono } from 'hono';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { FORWARDED_HEADER, NODE_HEADER, PRINCIPAL_HEADER } from '../../cluster/forward.js';
import { GATEWAY_AS_HEADER, GATEWAY_HOST_HEADER, RELAY_PATH } from '../../gateway/relay.js';
import type { Duplex } from 'node:stream';
import type { Nodes } from '../../cluster/types.js';
import { refuseUpgrade } from '../../gateway/sandbox-proxy.js';
import { RealmError } from '../../util/errors.js';
import { principal } from '../principal.js';
import { REQUEST_ID_HEADER } from '../request-log.js';

/** The gateway's side of relayed traffic; `as`: whose bearer token the relaying node checked. */
export interface RelayedGateway {
  serveRelayed(req: IncomingMessage, res: ServerResponse, as: string | undefined): Promise<void>;
  serveRelayedUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, as: string | undefined): Promise<void>;
}

/** Make a relayed request the gateway's: the Host the client named, the path after the relay prefix, no peer headers. */
function unwrap(req: IncomingMessage): string | undefined {
  const as = req.headers[GATEWAY_AS_HEADER];
  req.headers.host = String(req.headers[GATEWAY_HOST_HEADER] ?? '');
  for (const h of ['authorization', PRINCIPAL_HEADER, FORWARDED_HEADER, GATEWAY_HOST_HEADER, GATEWAY_AS_HEADER])
    delete req.headers[h];
  req.url = (req.url ?? '/').slice(RELAY_PATH.length) || '/';
  return typeof as === 'string' && /^uid:\d+$/.test(as) ? as : undefined;
}

export function gatewayRelayRoutes(app: Hono, gateway: () => RelayedGateway | undefined): void {
  app.all(`${RELAY_PATH}/*`, async (c) => {
    if (principal(c).via !== 'peer' || c.req.header(FORWARDED_HEADER) === undefined)
      throw new RealmError('FORBIDDEN', `${RELAY_PATH} is for the nodes of this cluster: ask the gateway itself`);
    const serve = gateway();
    const env = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
    if (!serve || !env?.incoming || !env.outgoing)
      throw new RealmError('NOT_FOUND', 'this node runs no gateway (realm serve --gateway HOST:PORT)');
    const req = env.incoming;
    const as = unwrap(req);
    // The app's answer as the gateway makes it: none of the API's own headers (answer-header.ts).
    env.outgoing.removeHeader(REQUEST_ID_HEADER);
    env.outgoing.removeHeader(NODE_HEADER);
    await serve.serveRelayed(req, env.outgoing, as);
    return RESPONSE_ALREADY_SENT;
  });
}

/**
 * Take a relayed upgrade (a WebSocket to a preview URL or a public service) off the API's
 * listener before its WebSocket routes see it: true when it was one, answered here. Peers only,
 * as for requests: the peer credential with the header naming the forwarding node.
 */
export function takeRelayedUpgrade(
  nodes: Pick<Nodes, 'isPeer'>,
  gateway: () => RelayedGateway | undefined,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean {
  return (req, socket, head) => {
    const url = req.url ?? '/';
    if (url !== RELAY_PATH && !url.startsWith(`${RELAY_PATH}/`)) return false;
    socket.on('error', () => socket.destroy());
    const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!token || !nodes.isPeer(token) || req.headers[FORWARDED_HEADER] === undefined) {
      refuseUpgrade(socket, 'FORBIDDEN', `${RELAY_PATH} is for the nodes of this cluster: ask the gateway itself`);
      return true;
    }
    const serve = gateway();
    if (!serve) {
      refuseUpgrade(socket, 'NOT_FOUND', 'this node runs no gateway (realm serve --gateway HOST:PORT)');
      return true;
    }
    serve.serveRelayedUpgrade(req, socket, head, unwrap(req)).catch(() => socket.destroy());
    return true;
  };
}
