/**
 * A job's log and artifacts stay on the node that ran the attempt; a request for them on another
 * node is sent on to it (streams included). A node that is down keeps them until it is back.
 */
import type { Context } from 'hono';
import { forward } from '../cluster/forward.js';
import type { Nodes } from '../cluster/types.js';
import { RealmError } from '../util/errors.js';
import { requestSignal } from './body.js';
import { forwardedByPeer, headersForPeer, toPeer } from './cluster-peers.js';
import { principal } from './principal.js';

/** The answer from `node` when it is another node (null: serve it here). */
export async function fromNodeThatRanIt(
  c: Context,
  nodes: Nodes,
  node: string | undefined,
  what: string,
): Promise<Response | null> {
  if (!nodes.clustered || node === undefined || node === nodes.selfId || forwardedByPeer(c)) return null;
  const target = (await nodes.list()).find((n) => n.id === node);
  if (!target || target.state === 'down')
    throw new RealmError(
      'NODE_UNREACHABLE',
      `${what} is kept on node ${node}, which is ${target ? 'down' : 'gone'}; it can be read again when that node is back (realm node ls)`,
    );
  const url = new URL(c.req.url);
  return forward({
    ...toPeer(nodes, target, url.pathname + url.search, principal(c).id),
    method: c.req.method,
    headers: headersForPeer(c),
    signal: requestSignal(c),
  });
}
