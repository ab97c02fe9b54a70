/**
 * Any node serves the whole API: what belongs on another node goes there.
 * - A run or a sandbox create with `placement` ({node, tags}) goes to a node that fits (see
 *   cluster/placement.ts); one without stays here when this node fits, as on a lone node.
 * - A request about a sandbox this node does not hold is sent to the node that does (asked of
 *   the others once, then remembered), streams included; a WebSocket is accepted here and
 *   relayed there (ws-forward.ts).
 * A request a peer forwarded is served here as it is: it never travels twice.
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { Engine } from '../engine/engine.js';
import { RealmError } from '../util/errors.js';
import { FORWARDED_HEADER, NODE_HEADER, forward, peerJson } from '../cluster/forward.js';
import { place } from '../cluster/placement.js';
import type { Constraints, NodeView, Nodes } from '../cluster/types.js';
import { checkTag } from '../cluster/tags.js';
import { bodyStream, rawBody, requestSignal } from './body.js';
import { mayUse } from '../engine/owner.js';
import { type Principal, principal } from './principal.js';
import { isUpgrade } from './access.js';

const PLACED = new Set(['/v1/runs', '/v1/runs/stream', '/v1/sandboxes']);
/** Sandboxes found on other nodes: id → node id (bounded; a miss asks again). */
const MAX_KNOWN = 10_000;

interface Placement {
  placement?: { node?: unknown; tags?: unknown };
  driver?: unknown;
}

/** The constraints a run or create body carries; a malformed `placement` is refused here. */
export function constraintsOf(body: Buffer, defaultDriver: string): Constraints {
  let parsed: Placement = {};
  // Only a body that names a placement is parsed here (the route parses it anyway).
  if (body.includes('"placement"') || body.includes('"driver"')) {
    try {
      parsed = JSON.parse(body.toString('utf8')) as Placement;
    } catch {
      return { tags: [], driver: defaultDriver }; // the route answers the bad JSON
    }
  }
  const p = parsed.placement ?? {};
  if (typeof p !== 'object' || p === null)
    throw new RealmError('INVALID_REQUEST', 'placement must be an object: {"node": "ID", "tags": ["T", …]}');
  if (p.node !== undefined && typeof p.node !== 'string')
    throw new RealmError('INVALID_REQUEST', 'placement.node must be a node id (realm node ls)');
  if (p.tags !== undefined && (!Array.isArray(p.tags) || p.tags.some((t) => typeof t !== 'string')))
    throw new RealmError('INVALID_REQUEST', 'placement.tags must be a list of tags, e.g. ["gpu"]');
  const tags = ((p.tags as string[] | undefined) ?? []).map(checkTag);
  const driver = typeof parsed.driver === 'string' ? parsed.driver : defaultDriver;
  return { node: p.node, tags, driver };
}

export function clusterRouting(engine: Engine, nodes: Nodes): MiddlewareHandler {
  const known = new Map<string, string>();
  return async (c, next) => {
    // Answers made here name this node; one served elsewhere keeps the x-realm-node it came with.
    c.header(NODE_HEADER, nodes.selfId);
    return route(c, next);
  };

  async function route(c: Context, next: () => Promise<void>): Promise<Response | void> {
    const who = principal(c);
    if (who.uid === null || forwardedByPeer(c)) return next();
    const { method, path } = c.req;
    if (method === 'POST' && PLACED.has(path)) {
      if (nodes.fenced)
        throw new RealmError(
          'CLUSTER_UNAVAILABLE',
          `node ${nodes.selfId} is cut off from etcd and takes no new work until etcd answers again; send it to another node, or see realm doctor`,
        );
      const body = await rawBody(c);
      const want = constraintsOf(body, engine.config.defaultDriver ?? 'namespace');
      if (!nodes.clustered) {
        // Alone: nothing to choose; a placement asked for is checked against this node, and a
        // driver it lacks is the engine's to refuse (DRIVER_UNAVAILABLE), as always.
        if (want.node === undefined && want.tags.length === 0) return next();
        want.driver = undefined;
      }
      const target = place(await nodes.list(), want);
      if (target.self) return next();
      return send(c, target, who, body);
    }
    if (!nodes.clustered) return next();
    const sb = /^\/v1\/sandboxes\/([^/]+)(\/|$)/.exec(path);
    if (sb) {
      const id = decode(sb[1] ?? '');
      if (id === null || (await held(id))) return next();
      const node = await locate(id, who);
      if (!node) return next(); // nowhere: answered here, as not found
      if (isUpgrade(c)) {
        const url = new URL(c.req.url);
        c.set('wsPeer', {
          node: node.id,
          address: node.address,
          pathAndQuery: url.pathname + url.search,
          principal: who.id,
          peerToken: nodes.peerToken(),
          from: nodes.selfId,
        });
        return next();
      }
      const res = await send(c, node, who, bodyStream(c));
      // The node named answers that it has no such sandbox (it went at its TTL): drop the note.
      if (res.status === 404 && sb[2] === '') await nodes.forgetSandbox(id).catch(() => undefined);
      return res;
    }
    return next();
  }

  async function held(id: string): Promise<boolean> {
    try {
      await engine.getSandbox(id);
      return true;
    } catch (e) {
      if (e instanceof RealmError && e.code === 'SANDBOX_NOT_FOUND') return false;
      throw e;
    }
  }

  /**
   * The node that holds sandbox `id` for `who`: the one etcd names for it, else the first other
   * node that answers for it. One on a node that is down is lost (NODE_UNREACHABLE says so).
   */
  async function locate(id: string, who: Principal): Promise<NodeView | null> {
    const all = await nodes.list();
    const home = await nodes.sandboxHome(id);
    if (home && mayUse(who.id, home.owner)) {
      const node = all.find((n) => n.id === home.node);
      if (node && !node.self && node.state !== 'down') return node;
      if (node && node.state === 'down')
        throw new RealmError(
          'NODE_UNREACHABLE',
          `sandbox ${id} lives on node ${node.id}, which is down: it is lost unless that node comes back (realm node ls)`,
        );
    }
    const others = all.filter((n) => !n.self && n.state !== 'down');
    const hint = known.get(id);
    const order = hint ? [...others.filter((n) => n.id === hint), ...others.filter((n) => n.id !== hint)] : others;
    for (const n of order) {
      const found = await peerJson<{ id: string }>({
        address: n.address,
        pathAndQuery: `/v1/sandboxes/${encodeURIComponent(id)}`,
        principal: who.id,
        peerToken: nodes.peerToken(),
        from: nodes.selfId,
      }).catch(() => null); // a node that does not answer holds nothing we can reach
      if (found) {
        if (known.size >= MAX_KNOWN) known.clear();
        known.set(id, n.id);
        return n;
      }
    }
    known.delete(id);
    return null;
  }

  function send(c: Context, target: NodeView, who: Principal, body: Buffer | ReturnType<typeof bodyStream>): Promise<Response> {
    const url = new URL(c.req.url);
    return forward({
      method: c.req.method,
      address: target.address,
      pathAndQuery: url.pathname + url.search,
      headers: new Headers(c.req.header()),
      body,
      principal: who.id,
      peerToken: nodes.peerToken(),
      from: nodes.selfId,
      signal: requestSignal(c),
    });
  }
}

/** Whether a peer forwarded this request (it is then served here alone, never sent on). */
export function forwardedByPeer(c: Context): boolean {
  return principal(c).via === 'peer' && c.req.header(FORWARDED_HEADER) !== undefined;
}

/**
 * The same list from every other node that is up, each entry naming its node: `key` is the
 * list's field (`sandboxes`). A node that does not answer lists nothing (node ls says why).
 */
export async function fromPeers(c: Context, nodes: Nodes, key: string): Promise<Record<string, unknown>[]> {
  const url = new URL(c.req.url);
  const others = (await nodes.list()).filter((n) => !n.self && n.state !== 'down');
  const lists = await Promise.all(
    others.map((n) =>
      peerJson<Record<string, Record<string, unknown>[]>>({
        address: n.address,
        pathAndQuery: url.pathname + url.search,
        principal: principal(c).id,
        peerToken: nodes.peerToken(),
        from: nodes.selfId,
      }).then(
        (r) => (r?.[key] ?? []).map((s) => ({ ...s, node: n.id })),
        () => [],
      ),
    ),
  );
  return lists.flat();
}

function decode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}
