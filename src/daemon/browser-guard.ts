/**
 * The browser door, closed. A web page in any browser that can reach the daemon must not make it
 * act: it may send "simple" cross-site requests (text/plain, form or untyped bodies, which need
 * no CORS preflight), open WebSockets, and rebind its own name to this machine's address (DNS
 * rebinding: then it is same-origin with the daemon for its browser and reads the answers).
 *
 * One middleware, mounted before auth and every route, so every route — /mcp and those yet to
 * come — is covered by default; exceptions are listed here, never protected routes:
 * 1. `Host` names this daemon: the address the connection came to with its port (`localhost`
 *    too on loopback) or a configured name (`--host-name`). A rebinding page's requests say
 *    `Host: evil.example`. → 421 HOST_NOT_ALLOWED
 * 2. `Origin`, when sent, is the daemon's own (an allowed host's) or in `--cors-origin`. Browsers
 *    send it on every cross-origin request, every request but GET/HEAD, every WebSocket; the
 *    CLI, the SDK and curl send none. → 403 ORIGIN_NOT_ALLOWED
 * 3. CORS, preflights included, for the `--cors-origin` list only.
 * 4. A request body carries its route's type: application/json unless RAW_BODIES says
 *    otherwise. No route takes a type a page can send without a preflight, nor an untyped body,
 *    but Piston's execute (its clients send none). → 415 UNSUPPORTED_MEDIA_TYPE
 *
 * One exception to 2–4, served to peers alone (their credential, which no page has, is checked
 * by the route): the gateway relay (`/v1/cluster/gateway/…`, gateway/relay.ts). What it carries
 * is a page's request to another node's gateway — a form post, say — whose Origin and body are
 * the app's to judge, as they are on the gateway the page reached.
 *
 * A unix socket has no Host to check (no browser connects to one); the other checks still hold.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { Context, MiddlewareHandler } from 'hono';
import { isLoopback } from '../config.js';
import { RealmError } from '../util/errors.js';
import { type Authority, authority } from '../util/host.js';
import { RELAY_PATH } from '../gateway/relay.js';
import { requestHeader } from './request-header.js';
import { answerHeader, nodeResponse } from './answer-header.js';

export interface BrowserGuardOptions {
  /** Names (or addresses) `Host` may carry besides the listen address: `name` (any port) or `name:port`. */
  hostNames?: readonly string[];
  /** Origins (`scheme://host[:port]`) whose pages may call the API; they get CORS answers. */
  corsOrigins?: readonly string[];
}

/** Content types a page may send cross-site without a preflight (the Fetch standard's safelist). */
const SIMPLE_TYPES: ReadonlySet<string> = new Set(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']);

interface BodyRule {
  method: string;
  path: RegExp;
  types: readonly string[];
  /** Also a body with no Content-Type. */
  untyped?: true;
}

/** Routes whose body is not (only) JSON. Every other route takes application/json alone. */
const RAW_BODIES: readonly BodyRule[] = [
  { method: 'PUT', path: /^\/v1\/sandboxes\/[^/]+\/files$/, types: ['application/octet-stream'] },
  { method: 'PUT', path: /^\/v1\/sandboxes\/[^/]+\/files\/tar$/, types: ['application/x-tar', 'application/octet-stream'] },
  { method: 'POST', path: /^\/v1\/images\/import$/, types: ['application/x-tar', 'application/octet-stream'] },
  { method: 'POST', path: /^\/v1\/blobs$/, types: ['application/octet-stream'] },
  { method: 'PATCH', path: /^\/v1\/blobs\/uploads\/[^/]+$/, types: ['application/octet-stream'] },
  { method: 'PUT', path: /^\/v1\/blobs\/uploads\/[^/]+$/, types: ['application/octet-stream'] },
  // piston-client posts its JSON with no Content-Type. An untyped body is as "simple" as
  // text/plain, so on this route Host and Origin alone keep pages out (browsers send Origin on
  // every POST); text/plain and forms are still refused.
  { method: 'POST', path: /^\/api\/v2\/execute$/, types: ['application/json'], untyped: true },
];
const JSON_ONLY: BodyRule = { method: '*', path: /^/, types: ['application/json'] };

for (const rule of RAW_BODIES) {
  const simple = rule.types.find((t) => SIMPLE_TYPES.has(t));
  if (simple) throw new Error(`browser guard: ${rule.path.source} must not take ${simple}: any web page can send it`);
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);
const CORS_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE';
const CORS_HEADERS = 'Authorization, Content-Type, Last-Event-ID, Mcp-Session-Id, Mcp-Protocol-Version';

/** Where the connection came in: a TCP address, a unix socket, or unknown (not on node-server, or already closed). */
type Local = { host: string; port: number; loopback: boolean } | 'unix' | undefined;

function localOf(c: Context): Local {
  const socket = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket;
  if (!socket || socket.destroyed) return undefined;
  const { localAddress, localPort } = socket;
  if (localAddress === undefined || localPort === undefined) return 'unix';
  const address = localAddress.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  const canonical = authority(isIP(address) === 6 ? `[${address}]` : address, localPort);
  return canonical ? { host: canonical.host, port: localPort, loopback: isLoopback(address) } : undefined;
}

function allowedHost(a: Authority, local: Local, names: readonly Authority[]): boolean {
  if (names.some((n) => n.host === a.host && (n.port === undefined || n.port === a.port))) return true;
  if (local === undefined || local === 'unix' || a.port !== local.port) return false;
  return a.host === local.host || (local.loopback && a.host === 'localhost');
}

/** The media type of a Content-Type header, without parameters (charset and such). */
function mediaType(header: string): string {
  return (header.split(';')[0] ?? '').trim().toLowerCase();
}

function hasBody(c: Context): boolean {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (!incoming) return c.req.raw.body !== null;
  return Number(requestHeader(c, 'content-length') ?? 0) > 0 || requestHeader(c, 'transfer-encoding') !== undefined;
}

function checkBody(c: Context): void {
  if (READS.has(c.req.method)) return;
  const rule = RAW_BODIES.find((r) => r.method === c.req.method && r.path.test(c.req.path)) ?? JSON_ONLY;
  const header = requestHeader(c, 'content-type');
  const type = header === undefined ? undefined : mediaType(header);
  if (type === undefined ? !hasBody(c) || rule.untyped : rule.types.includes(type)) return;
  throw new RealmError(
    'UNSUPPORTED_MEDIA_TYPE',
    `${c.req.method} ${c.req.path} takes a body of type ${rule.types.join(' or ')}, not ${type ?? 'one without a Content-Type'}: send the header "Content-Type: ${rule.types[0] ?? ''}" (curl: -H 'content-type: ${rule.types[0] ?? ''}')`,
  );
}

/** Parse `--host-name`: a DNS name or an IP address (IPv6 in brackets), with an optional port. */
export function parseHostName(text: string): Authority {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)(?::(\d{1,5}))?$/.exec(text.trim());
  const a = m ? authority(m[1] ?? '', undefined) : undefined;
  const port = m?.[2] === undefined ? undefined : Number(m[2]);
  if (!a || (port !== undefined && (port < 1 || port > 65535))) {
    throw new RealmError(
      'INVALID_REQUEST',
      `--host-name ${text}: write a name or address this daemon is reached by, with an optional port, e.g. realm.example.com or realm.example.com:7070`,
    );
  }
  return { host: a.host, port };
}

/** Parse `--cors-origin`: an exact web origin, `scheme://host[:port]` (no path, no wildcard). */
export function parseCorsOrigin(text: string): string {
  let u: URL | undefined;
  try {
    u = new URL(text.trim());
  } catch {
    u = undefined;
  }
  if (
    !u ||
    (u.protocol !== 'http:' && u.protocol !== 'https:') ||
    u.username ||
    u.password ||
    u.pathname !== '/' ||
    u.search ||
    u.hash ||
    /[*?#]/.test(text)
  ) {
    throw new RealmError(
      'INVALID_REQUEST',
      `--cors-origin ${text}: write the exact origin of the page that may call the API, scheme://host[:port] with no path, e.g. https://app.example.com or http://localhost:5173`,
    );
  }
  return u.origin;
}

/**
 * The middleware. Mount it before auth (a CORS preflight carries no token) and every route.
 * @example app.use('*', browserGuard({ hostNames: ['realm.example.com'], corsOrigins: ['https://app.example.com'] }));
 */
export function browserGuard(opts: BrowserGuardOptions = {}): MiddlewareHandler {
  const names = (opts.hostNames ?? []).map(parseHostName);
  const cors = new Set((opts.corsOrigins ?? []).map(parseCorsOrigin));
  return async (c, next) => {
    const local = localOf(c);
    if (local !== 'unix') {
      const host = requestHeader(c, 'host');
      const a = host === undefined ? undefined : authority(host, 80);
      if (!a || !allowedHost(a, local, names)) {
        const at = local ? `http://${local.host}:${local.port}` : 'its listen address';
        throw new RealmError(
          'HOST_NOT_ALLOWED',
          `this daemon does not answer to Host "${host ?? ''}": use ${at}, or start it with --host-name NAME for a name that reaches it (a proxy's, say)`,
        );
      }
    }
    // The gateway relay: see the exception above.
    if (c.req.path.startsWith(`${RELAY_PATH}/`)) return next();
    const origin = requestHeader(c, 'origin');
    const granted = origin !== undefined && cors.has(origin) ? origin : undefined;
    if (origin !== undefined && granted === undefined && !ownOrigin(origin, local, names)) {
      throw new RealmError(
        'ORIGIN_NOT_ALLOWED',
        `requests from pages at ${origin} are refused: start the daemon with --cors-origin ${origin} to let that origin use the API`,
      );
    }
    if (granted) grant(c, granted);
    if (c.req.method === 'OPTIONS' && origin !== undefined && requestHeader(c, 'access-control-request-method') !== undefined) {
      // A preflight: the daemon's own pages never send one (same-origin), so only listed origins get an answer.
      if (!granted)
        throw new RealmError(
          'ORIGIN_NOT_ALLOWED',
          `cross-origin requests from ${origin} are refused: start the daemon with --cors-origin ${origin} to allow them`,
        );
      return c.body(null, 204, {
        'Access-Control-Allow-Methods': CORS_METHODS,
        'Access-Control-Allow-Headers': CORS_HEADERS,
        'Access-Control-Max-Age': '600',
      });
    }
    checkBody(c);
    await next();
    // Without Node's response (app.request), a route's own Response (MCP's) takes the grant after it.
    if (granted && !nodeResponse(c) && c.res.headers.get('access-control-allow-origin') !== granted) grant(c, granted);
  };
}

/** CORS headers of an answer to a listed origin. */
/** On every answer to this request, those a route writes itself (a blob download) too (see answer-header.ts). */
function grant(c: Context, origin: string): void {
  answerHeader(c, 'Access-Control-Allow-Origin', origin);
  answerHeader(c, 'Access-Control-Expose-Headers', 'Retry-After, X-Realm-Boot');
  answerHeader(c, 'Vary', 'Origin');
}

/** Whether an Origin is the daemon's own: http(s) at a host the Host check allows. */
function ownOrigin(origin: string, local: Local, names: readonly Authority[]): boolean {
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false; // "null" (sandboxed frames, file:, some redirects) and other opaque origins
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.origin !== origin) return false;
  const a = authority(u.host, u.protocol === 'https:' ? 443 : 80);
  return !!a && allowedHost(a, local, names);
}
