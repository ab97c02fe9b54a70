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
import { FORWARDED_HEADER, PRINCIPAL_HEADER } from '../../cluster/forward.js';
import { GATEWAY_AS_HEADER, GATEWAY_HOST_HEADER, RELAY_PATH } from '../../gateway/relay.js';
import { RealmError } from '../../util/errors.js';
import { principal } from '../principal.js';

/** Serves one relayed request as the gateway; `as`: whose bearer token the relaying node checked. */
export type RelayedHandler = (req: IncomingMessage, res: ServerResponse, as: string | undefined) => Promise<void>;

export function gatewayRelayRoutes(app: Hono, gateway: () => RelayedHandler | undefined): void {
  app.all(`${RELAY_PATH}/*`, async (c) => {
    if (principal(c).via !== 'peer' || c.req.header(FORWARDED_HEADER) === undefined)
      throw new RealmError('FORBIDDEN', `${RELAY_PATH} is for the nodes of this cluster: ask the gateway itself`);
    const serve = gateway();
    const env = c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined;
    if (!serve || !env?.incoming || !env.outgoing)
      throw new RealmError('NOT_FOUND', 'this node runs no gateway (realm serve --gateway HOST:PORT)');
    const req = env.incoming;
    const as = req.headers[GATEWAY_AS_HEADER];
    req.headers.host = String(req.headers[GATEWAY_HOST_HEADER] ?? '');
    for (const h of ['authorization', PRINCIPAL_HEADER, FORWARDED_HEADER, GATEWAY_HOST_HEADER, GATEWAY_AS_HEADER])
      delete req.headers[h];
    req.url = (req.url ?? '/').slice(RELAY_PATH.length) || '/';
    await serve(req, env.outgoing, typeof as === 'string' && /^uid:\d+$/.test(as) ? as : undefined);
    return RESPONSE_ALREADY_SENT;
  });
}
