/**
 * What each principal may reach, decided in one place before any route runs. Every route falls
 * in one group of the table below; a route in none is for the admin (default deny), so a new
 * route is closed until it is listed here.
 * - open: anyone (/v1/health);
 * - runs: one-shot runs and the Piston/REPL compatibility routes — any known caller, and
 *   anonymous callers when the operator opens them (`realm serve --anonymous runs`);
 * - user: any known caller, on its own things: a sandbox, workspace or volume another user owns
 *   answers 404 as if it did not exist (names do not leak), and lists show only one's own;
 * - admin: root (uid 0 on the socket, the admin token or a token root made): tokens of others,
 *   images (build, pull, import, remove, prune) and anything node-wide.
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { UpgradeWebSocket, WSEvents } from 'hono/ws';
import type { Engine } from '../engine/engine.js';
import { mayUse } from '../engine/owner.js';
import { RealmError } from '../util/errors.js';
import type { SandboxRecord } from '../store/store.js';
import type { WorkspaceInfo } from '../engine/workspaces.js';
import { principal } from './principal.js';

declare module 'hono' {
  interface ContextVariableMap {
    /** The sandbox or workspace a request names, as read once (by cluster routing or `owned`). */
    heldSandbox: SandboxRecord;
    heldWorkspace: WorkspaceInfo;
  }
}

export type RouteGroup = 'open' | 'runs' | 'user' | 'admin';
/** Groups an operator may open to callers without a token. */
export const ANONYMOUS_GROUPS = ['runs'] as const;
export type AnonymousGroup = (typeof ANONYMOUS_GROUPS)[number];

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | '*';

const TABLE: [Method, RegExp, RouteGroup][] = [
  ['GET', /^\/v1\/health$/, 'open'],
  // The dashboard's login and logout take no session (ui-session.ts checks the token); who it is, is a user's.
  ['POST', /^\/v1\/ui\/session$/, 'open'],
  ['DELETE', /^\/v1\/ui\/session$/, 'open'],
  ['GET', /^\/v1\/ui\/session$/, 'user'],
  ['POST', /^\/v1\/runs(\/stream)?$/, 'runs'],
  ['GET', /^\/v1\/languages$/, 'runs'],
  ['GET', /^\/api\/v2\/runtimes$/, 'runs'],
  ['POST', /^\/api\/v2\/execute$/, 'runs'],
  ['GET', /^\/api\/repl\/languages$/, 'runs'],
  ['POST', /^\/api\/repl\/execute(\/stream)?$/, 'runs'],
  ['*', /^\/v1\/sandboxes(\/.*)?$/, 'user'],
  // Events: each caller sees its own things' (and every node's); root sees all (routes/events.ts).
  ['GET', /^\/v1\/events$/, 'user'],
  ['*', /^\/v1\/workspaces(\/.*)?$/, 'user'],
  ['GET', /^\/v1\/volumes(\/[^/]+)?$/, 'user'],
  // Jobs: a user submits, follows and removes its own (jobs/jobs.ts scopes them).
  ['*', /^\/v1\/jobs(\/.*)?$/, 'user'],
  // Apps: a user pushes, lists and removes its own (apps.ts scopes them).
  ['*', /^\/v1\/apps(\/[^/]+)?$/, 'user'],
  // Services: the same (services/desired.ts scopes them).
  ['*', /^\/v1\/services(\/[^/]+(\/(scale|restart|logs))?)?$/, 'user'],
  ['DELETE', /^\/v1\/volumes\/[^/]+$/, 'user'],
  // Blobs: a user uploads, reads, pins and removes its own (blobs/store.ts scopes them); GC is the admin's.
  ['POST', /^\/v1\/blobs\/gc$/, 'admin'],
  ['*', /^\/v1\/blobs(\/.*)?$/, 'user'],
  // Tokens: a user makes, lists and revokes its own (tokens.ts scopes them).
  ['*', /^\/v1\/tokens(\/[^/]+)?$/, 'user'],
  // Images are the node's: anyone may list and read them (sandboxes run from them); changing them is the admin's.
  ['GET', /^\/v1\/images(\/.*)?$/, 'user'],
  ['GET', /^\/v1\/(node|openapi\.json)$/, 'user'],
  // Nodes: anyone may see them (placement names them); draining and tagging are the admin's.
  ['GET', /^\/v1\/nodes(\/[^/]+)?$/, 'user'],
  // The node's charts (counts and rates, no names); /metrics (per-sandbox series) is the admin's.
  ['GET', /^\/v1\/metrics\/history$/, 'user'],
  // MCP tools act through this daemon's API as the caller (app.ts).
  ['*', /^\/mcp$/, 'user'],
];

export function routeGroup(method: string, path: string): RouteGroup {
  const m = method === 'HEAD' ? 'GET' : method;
  for (const [want, re, group] of TABLE) if ((want === '*' || want === m) && re.test(path)) return group;
  return 'admin';
}

const UNAUTHORIZED =
  'this daemon wants a token on TCP: send "Authorization: Bearer <token>" (set REALM_TOKEN; `realm token create` makes one), or use its unix socket (REALM_SOCKET, default /run/realm/api.sock)';

/** Middleware: refuse what the request's principal may not reach. */
export function authorize(anonymous: ReadonlySet<AnonymousGroup>): MiddlewareHandler {
  return async (c, next) => {
    const who = principal(c);
    const group = routeGroup(c.req.method, c.req.path);
    if (group === 'open') return next();
    if (who.uid === null) {
      // A token that is not valid is refused even where anonymous callers are let in: it is a mistake to report.
      if (group === 'runs' && who.via === 'anonymous' && anonymous.has('runs')) return next();
      throw new RealmError('UNAUTHORIZED', UNAUTHORIZED);
    }
    if (group === 'admin' && !who.admin)
      throw new RealmError('FORBIDDEN', `${c.req.method} ${c.req.path} is for the node's admin (root); you are ${who.id}`);
    return next();
  };
}

const segment = (s: string | undefined): string | undefined => {
  try {
    return s === undefined ? undefined : decodeURIComponent(s);
  } catch {
    return undefined;
  }
};

/**
 * Middleware: a request about one sandbox, workspace or volume reaches it only if the caller
 * owns it (or is admin); for anyone else it does not exist. The sandbox checked is pinned on
 * the context (`sandboxId`) so that the route acts on that very one, even if its name changes hands.
 */
export function owned(engine: Engine): MiddlewareHandler {
  return async (c, next) => {
    const who = principal(c);
    if (who.uid === null) return next(); // anonymous callers reach no such route (authorize)
    // A WebSocket relayed to the node that holds the sandbox is checked there, as this caller.
    if (c.get('wsPeer')) return next();
    try {
      await check(engine, c, who.id);
    } catch (e) {
      // A refused WebSocket upgrade answers with an error frame, as the WebSocket routes always
      // have (an HTTP error on an upgrade carries no body); guardUpgrade sends it, and no route runs.
      if (!(e instanceof RealmError) || !isUpgrade(c)) throw e;
      c.set('refused', e);
    }
    return next();
  };
}

/** The WebSocket routes (GET with Upgrade: websocket); only these may answer a refusal with a frame. */
const WS_ROUTES = [
  /^\/v1\/sandboxes\/[^/]+\/exec\/ws$/,
  /^\/v1\/sandboxes\/[^/]+\/processes\/[^/]+\/attach$/,
  /^\/v1\/workspaces\/[^/]+\/ssh-agent$/,
];

export function isUpgrade(c: Context): boolean {
  return (
    c.req.method === 'GET' &&
    c.req.header('upgrade')?.toLowerCase() === 'websocket' &&
    WS_ROUTES.some((re) => re.test(c.req.path))
  );
}

/**
 * The app's WebSocket upgrade, refusing what `owned` refused: the socket opens, says why in an
 * error frame and closes; the route's own handlers never run.
 */
export function guardUpgrade(upgrade: UpgradeWebSocket): UpgradeWebSocket {
  const guarded = (createEvents: (c: Context) => WSEvents | Promise<WSEvents>, options?: unknown) =>
    upgrade((c: Context) => {
      const refused = c.get('refused') as RealmError | undefined;
      if (!refused) return createEvents(c);
      return {
        onOpen(_e, ws) {
          ws.send(JSON.stringify({ type: 'error', error: { code: refused.code, message: refused.message } }));
          ws.close(1008, 'refused');
        },
      } satisfies WSEvents;
    }, options);
  return guarded as UpgradeWebSocket;
}

/** Throw the not-found error of the sandbox, workspace or volume the request names, unless `who` may use it. */
async function check(engine: Engine, c: Context, who: string): Promise<void> {
  const path = c.req.path;
  const sb = /^\/v1\/sandboxes\/([^/]+)(\/|$)/.exec(path);
  if (sb) {
    const id = segment(sb[1]) ?? '';
    // Read once: cluster routing pins the record it found here (cluster-routing.ts).
    const rec = (c.get('heldSandbox') as SandboxRecord | undefined) ?? (await engine.getSandbox(id));
    if (!mayUse(who, rec.owner)) throw new RealmError('SANDBOX_NOT_FOUND', `no sandbox "${id}"; \`realm sandbox ls\` lists them`);
    c.set('sandboxId', rec.id);
  }
  const ws = /^\/v1\/workspaces\/([^/]+)(\/|$)/.exec(path);
  if (ws) {
    const name = segment(ws[1]) ?? '';
    const w = (c.get('heldWorkspace') as WorkspaceInfo | undefined) ?? (await engine.workspaces.get(name));
    if (!mayUse(who, w.sandbox.owner))
      throw new RealmError(
        'WORKSPACE_NOT_FOUND',
        `no workspace "${name}"; \`realm ws\` lists them, \`realm ws ${name}\` in a git repository makes it`,
      );
    c.set('heldWorkspace', w);
  }
  const vol = /^\/v1\/volumes\/([^/]+)$/.exec(path);
  if (vol) {
    const name = segment(vol[1]) ?? '';
    const v = await engine.volumes.get(name);
    if (!mayUse(who, v.owner)) throw new RealmError('VOLUME_NOT_FOUND', `no volume "${name}"; \`realm volume ls\` lists them`);
  }
}

/** The sandbox this /v1/sandboxes/:id/… request was checked against (see `owned`). */
export function sandboxParam(c: Context): string {
  const id = c.get('sandboxId') as string | undefined;
  if (!id) throw new Error('no sandbox pinned on this request: the owned middleware must run first');
  return id;
}

/** The workspace this /v1/workspaces/:name… request was checked against (see `owned`). */
export function workspaceParam(c: Context): WorkspaceInfo {
  const w = c.get('heldWorkspace') as WorkspaceInfo | undefined;
  if (!w) throw new Error('no workspace pinned on this request: the owned middleware must run first');
  return w;
}

/** Whether the request's principal may see a thing owned by `owner`. */
export function visible(c: Context, owner: string | undefined): boolean {
  return mayUse(principal(c).id, owner);
}
