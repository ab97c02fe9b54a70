/**
 * Any node serves the whole API: what belongs on another node goes there.
 * - A run, a sandbox create or a new workspace with `placement` ({node, tags}) goes to a node that
 *   fits (see cluster/placement.ts); one without stays here when this node fits, as on a lone node.
 * - A workspace that exists is opened where it lives (names are cluster-wide: cluster-workspaces.ts).
 * - A request about a sandbox or workspace this node does not hold is sent to the node that does
 *   (cluster-peers.ts finds it), streams included; a WebSocket is accepted here and relayed there
 *   (ws-forward.ts).
 * A request a peer forwarded is served here as it is: it never travels twice.
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { Engine } from '../engine/engine.js';
import { RealmError } from '../util/errors.js';
import { parseCpus, parseSize } from '../util/units.js';
import { NODE_HEADER, forward } from '../cluster/forward.js';
import { place } from '../cluster/placement.js';
import type { Constraints, NodeView, Nodes } from '../cluster/types.js';
import { checkTag } from '../cluster/tags.js';
import { bodyStream, rawBody, requestSignal } from './body.js';
import { type Principal, principal } from './principal.js';
import { answerHeader } from './answer-header.js';
import { isUpgrade } from './access.js';
import { endedIfCut, placedFailure } from './cluster-placed.js';
import { Finder, type Wanted, forwardedByPeer, headersForPeer, toPeer } from './cluster-peers.js';
import { nameOpened, resumable, wantedWorkspace } from './cluster-workspaces.js';

const PLATFORM_RE = /^[a-z0-9]+\/[a-z0-9_]+$/;
const PLACED = new Set(['/v1/runs', '/v1/runs/stream', '/v1/sandboxes', '/v1/workspaces']);
const SANDBOX = /^\/v1\/sandboxes\/([^/]+)(\/|$)/;
const WORKSPACE = /^\/v1\/workspaces\/([^/]+)(\/|$)/;

interface Placement {
  placement?: { node?: unknown; tags?: unknown; platform?: unknown };
  driver?: unknown;
  language?: unknown;
  memory?: unknown;
  cpus?: unknown;
}

/**
 * The constraints a run or create body carries; a malformed `placement` is refused here.
 * `languageDriver`: the driver a run's language runs on, if it has one of its own (a wasm
 * language on the wasm driver), which a run that names no driver needs of its node.
 */
export function constraintsOf(
  body: Buffer,
  defaultDriver: string,
  languageDriver?: (language: string) => string | undefined,
): Constraints {
  let parsed: Placement = {};
  // Only a body that names a placement is parsed here (the route parses it anyway).
  const keys = ['"placement"', '"driver"', '"memory"', '"cpus"', ...(languageDriver ? ['"language"'] : [])];
  if (keys.some((k) => body.includes(k))) {
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
  if (p.platform !== undefined && (typeof p.platform !== 'string' || !PLATFORM_RE.test(p.platform)))
    throw new RealmError('INVALID_REQUEST', 'placement.platform is OS/ARCH, e.g. linux/amd64 or linux/arm64');
  const tags = ((p.tags as string[] | undefined) ?? []).map(checkTag);
  const driver =
    typeof parsed.driver === 'string'
      ? parsed.driver
      : ((typeof parsed.language === 'string' ? languageDriver?.(parsed.language) : undefined) ?? defaultDriver);
  // Sizes as the route takes them; one it refuses is its to answer (it is no constraint here).
  const memory = typeof parsed.memory === 'string' || typeof parsed.memory === 'number' ? parseSize(parsed.memory) : null;
  const cpus = typeof parsed.cpus === 'string' || typeof parsed.cpus === 'number' ? parseCpus(parsed.cpus) : null;
  return {
    node: p.node,
    tags,
    driver,
    ...(typeof p.platform === 'string' ? { platform: p.platform } : {}),
    ...(memory !== null ? { memoryBytes: memory } : {}),
    ...(cpus !== null ? { cpus } : {}),
  };
}

export function clusterRouting(engine: Engine, nodes: Nodes): MiddlewareHandler {
  const finder = new Finder(nodes);
  return async (c, next) => {
    // Answers made here name this node; one served elsewhere keeps the x-realm-node it came with.
    answerHeader(c, NODE_HEADER, nodes.selfId);
    return route(c, next);
  };

  async function route(c: Context, next: () => Promise<void>): Promise<Response | void> {
    const who = principal(c);
    if (who.uid === null || forwardedByPeer(c)) return next();
    const { method, path } = c.req;
    if (method === 'POST' && PLACED.has(path)) {
      const body = await rawBody(c);
      const want = constraintsOf(
        body,
        engine.config.defaultDriver ?? 'namespace',
        nodes.clustered && path.startsWith('/v1/runs') ? (l) => languageDriverOf(engine, l) : undefined,
      );
      // A workspace that exists is resumed where it lives, wherever placement points.
      const name = path === '/v1/workspaces' ? nameOpened(body) : undefined;
      if (name !== undefined) {
        const here = await heldWorkspace(c, name);
        const there = here || !nodes.clustered ? null : await finder.locate(wantedWorkspace(name), who.id);
        const home = there ?? (here ? (await nodes.list()).find((n) => n.self) : undefined);
        if (home) {
          resumable(name, home, want);
          return there ? send(c, there, who, body) : next();
        }
      }
      if (nodes.fenced)
        throw new RealmError(
          'CLUSTER_UNAVAILABLE',
          `node ${nodes.selfId} is cut off from etcd and takes no new work until etcd answers again; send it to another node, or see realm doctor`,
        );
      if (!nodes.clustered) {
        // Alone: nothing to choose; a placement asked for is checked against this node, and a
        // driver it lacks is the engine's to refuse (DRIVER_UNAVAILABLE), as always.
        if (want.node === undefined && want.tags.length === 0 && !want.platform) return next();
        want.driver = undefined;
      }
      const target = place(await nodes.list(), want);
      if (target.self) return next();
      try {
        return endedIfCut(await send(c, target, who, body), target);
      } catch (e) {
        throw placedFailure(target, e);
      }
    }
    if (!nodes.clustered) return next();
    const sb = SANDBOX.exec(path);
    if (sb) {
      const id = decode(sb[1] ?? '');
      if (id === null || (await heldSandbox(c, id))) return next();
      const w = { note: id, path: `/v1/sandboxes/${encodeURIComponent(id)}`, what: `sandbox ${id}` };
      return elsewhere(c, next, who, w, sb[2] === '');
    }
    const ws = WORKSPACE.exec(path);
    if (ws) {
      const name = decode(ws[1] ?? '');
      if (name === null || (await heldWorkspace(c, name))) return next();
      // A 404 there keeps the note: a clone whose sandbox was removed still holds the name.
      return elsewhere(c, next, who, wantedWorkspace(name), false);
    }
    return next();
  }

  /**
   * Serve a request about what another node holds there (a WebSocket is relayed); nowhere: here,
   * as not found. `exact`: the request names the thing itself (not one of its sub-resources).
   */
  async function elsewhere(
    c: Context,
    next: () => Promise<void>,
    who: Principal,
    w: Wanted,
    exact: boolean,
  ): Promise<Response | void> {
    const node = await finder.locate(w, who.id);
    if (!node) return next();
    if (isUpgrade(c)) {
      const url = new URL(c.req.url);
      c.set('wsPeer', { node: node.id, ...toPeer(nodes, node, url.pathname + url.search, who.id) });
      return next();
    }
    const res = await send(c, node, who, bodyStream(c));
    // The node named answers that it has no such thing (a sandbox gone at its TTL): drop the note.
    if (res.status === 404 && exact) {
      finder.forget(w);
      await nodes.forgetSandbox(w.note).catch(() => undefined);
    }
    return res;
  }

  /** Whether this node holds sandbox `id` (whoever owns it); pinned for the ownership check. */
  async function heldSandbox(c: Context, id: string): Promise<boolean> {
    try {
      c.set('heldSandbox', await engine.getSandbox(id));
      return true;
    } catch (e) {
      if (e instanceof RealmError && e.code === 'SANDBOX_NOT_FOUND') return false;
      throw e;
    }
  }

  /** Whether this node holds workspace `name` (whoever owns it); a name that is not one is the route's to refuse. */
  async function heldWorkspace(c: Context, name: string): Promise<boolean> {
    try {
      c.set('heldWorkspace', await engine.workspaces.get(name));
      return true;
    } catch (e) {
      if (e instanceof RealmError && e.code === 'WORKSPACE_NOT_FOUND') return false;
      if (e instanceof RealmError && e.code === 'INVALID_REQUEST') return true;
      throw e;
    }
  }

  function send(c: Context, target: NodeView, who: Principal, body: Buffer | ReturnType<typeof bodyStream>): Promise<Response> {
    const url = new URL(c.req.url);
    return forward({
      ...toPeer(nodes, target, url.pathname + url.search, who.id),
      method: c.req.method,
      headers: headersForPeer(c),
      body,
      signal: requestSignal(c),
    });
  }
}

function decode(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

/** The driver a language runs on when it has one of its own; none for an unknown language (the route answers it). */
function languageDriverOf(engine: Engine, language: string): string | undefined {
  try {
    return engine.language(language).driver;
  } catch {
    return undefined;
  }
}
