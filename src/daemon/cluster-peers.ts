/**
 * Asking the other nodes, as the caller: one way to address a peer (its address, this cluster's
 * peer credential, the caller's principal), the lists merged from every node, and finding which
 * node holds a sandbox or workspace this node does not.
 */
import type { Context } from 'hono';
import { FORWARDED_HEADER, type Forward, peerJson } from '../cluster/forward.js';
import type { NodeView, Nodes } from '../cluster/types.js';
import { mayUse } from '../engine/owner.js';
import { RealmError } from '../util/errors.js';
import { principal } from './principal.js';
import { UI_HEADER } from './ui-session.js';

/** Found on other nodes: peer path → node id (bounded; a miss asks again). */
const MAX_KNOWN = 10_000;

/** How to reach `node` at `pathAndQuery`, acting for `who` (a principal id). */
export function toPeer(
  nodes: Nodes,
  node: Pick<NodeView, 'address'>,
  pathAndQuery: string,
  who: string,
): Omit<Forward, 'method' | 'body' | 'headers'> {
  return { address: node.address, pathAndQuery, principal: who, peerToken: nodes.peerToken(), from: nodes.selfId };
}

/**
 * Headers a browser sent that this node checked and the peer must not check again: the page's
 * `Origin` (this node's own, which the peer's browser guard would refuse as another site's: every
 * dashboard action on a sandbox of another node was refused so) and the dashboard's session
 * (cookie and header), which is this node's and means nothing there. The peer acts on the peer
 * credential and the principal named (forward.ts).
 */
const CHECKED_HERE = new Set(['origin', 'cookie', UI_HEADER]);

/** The client's request headers, as an API request sent on to a peer carries them. */
export function headersForPeer(c: Context): Headers {
  const out = new Headers();
  for (const [k, v] of Object.entries(c.req.header())) if (!CHECKED_HERE.has(k.toLowerCase())) out.set(k, v);
  return out;
}

/** Whether a peer forwarded this request (it is then served here alone, never sent on). */
export function forwardedByPeer(c: Context): boolean {
  return principal(c).via === 'peer' && c.req.header(FORWARDED_HEADER) !== undefined;
}

/** The nodes other than this one that are not down. */
async function others(nodes: Nodes): Promise<NodeView[]> {
  return (await nodes.list()).filter((n) => !n.self && n.state !== 'down');
}

/**
 * The same list from every other node that is up, each entry naming its node: `key` is the
 * list's field (`sandboxes`, `workspaces`). A node that does not answer lists nothing (node ls says why).
 */
export async function fromPeers(c: Context, nodes: Nodes, key: string): Promise<Record<string, unknown>[]> {
  const url = new URL(c.req.url);
  const lists = await Promise.all(
    (await others(nodes)).map((n) =>
      peerJson<Record<string, Record<string, unknown>[]>>(toPeer(nodes, n, url.pathname + url.search, principal(c).id)).then(
        (r) => (r?.[key] ?? []).map((s) => ({ ...s, node: n.id })),
        () => [],
      ),
    ),
  );
  return lists.flat();
}

/** What is looked for on the other nodes: a sandbox (by id or name) or a workspace (by name). */
export interface Wanted {
  /** Its key among the notes in etcd (Nodes.sandboxHome). */
  note: string;
  /** Where a peer answers for it (GET), e.g. /v1/sandboxes/ID. */
  path: string;
  /** For messages: `sandbox sb-…`, `workspace fix-bug`. */
  what: string;
}

/**
 * Finds the node that holds what this node does not: the node last found for it (asked again, to
 * be sure), else the one etcd names for it, else the first other node that answers for it. One
 * on a node that is down is lost (NODE_UNREACHABLE says so).
 */
export class Finder {
  private readonly known = new Map<string, string>();

  constructor(private readonly nodes: Nodes) {}

  async locate(w: Wanted, who: string): Promise<NodeView | null> {
    const all = await this.nodes.list();
    const up = all.filter((n) => !n.self && n.state !== 'down');
    const hinted = up.find((n) => n.id === this.known.get(w.path));
    if (hinted && (await this.answers(hinted, w, who))) return hinted;
    const home = await this.nodes.sandboxHome(w.note);
    if (home && mayUse(who, home.owner)) {
      const node = all.find((n) => n.id === home.node);
      if (node && !node.self && node.state !== 'down') return node;
      if (node && node.state === 'down')
        throw new RealmError(
          'NODE_UNREACHABLE',
          `${w.what} lives on node ${node.id}, which is down: it is lost unless that node comes back (realm node ls)`,
        );
    }
    for (const n of up.filter((x) => x !== hinted)) {
      if (await this.answers(n, w, who)) {
        if (this.known.size >= MAX_KNOWN) this.known.clear();
        this.known.set(w.path, n.id);
        return n;
      }
    }
    this.known.delete(w.path);
    return null;
  }

  /** Forget where it was found (it is gone). */
  forget(w: Wanted): void {
    this.known.delete(w.path);
  }

  /** Whether `n` holds it for `who` (a node that does not answer holds nothing we can reach). */
  private async answers(n: NodeView, w: Wanted, who: string): Promise<boolean> {
    return (await peerJson(toPeer(this.nodes, n, w.path, who)).catch(() => null)) !== null;
  }
}
