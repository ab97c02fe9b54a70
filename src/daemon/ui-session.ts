/**
 * Dashboard sessions: a token, posted once to POST /v1/ui/session, is exchanged for a cookie
 * (HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it; Path=/; Secure
 * over TLS). The cookie alone authenticates nothing: a request is taken as the session's only
 * when it also carries `X-Realm-UI: 1`, a header no page of another site can add without a CORS
 * preflight, which the browser guard refuses. So forms, links, <img>, navigations and
 * text/plain POSTs from elsewhere, which browsers send without preflight, never act with it.
 *
 * WebSockets cannot carry headers from a browser: an upgrade is taken with the cookie when its
 * Origin (which browsers always send on a WebSocket and pages cannot forge) is exactly this
 * daemon's own origin, the one the page was loaded from.
 *
 * The daemon keeps sessions in the node's state store (SQLite), by the sha256 of the cookie's
 * secret (never the secret): a restart signs no one out. A session acts as its token's principal,
 * ends after SESSION_TTL_MS, at logout, or as soon as its token is revoked (checked on each use;
 * revoking also deletes the token's sessions from the store).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Context, Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { z } from 'zod';
import { ROOT_OWNER } from '../engine/owner.js';
import { RealmError } from '../util/errors.js';
import type { Store, UiSessionRecord } from '../store/store.js';
import type { Tokens } from './auth.js';
import { principal } from './principal.js';
import { jsonBody } from './body.js';

export const SESSION_COOKIE = 'realm_session';
/** The header every cookie-authenticated request carries (the dashboard's api.ts sends it). */
export const UI_HEADER = 'x-realm-ui';
export const SESSION_TTL_MS = 12 * 3600_000;
/** Sessions kept at most; past it the oldest goes (a flood of logins costs bounded space). */
const MAX_SESSIONS = 10_000;

type Session = UiSessionRecord;

const digest = (secret: string): string => createHash('sha256').update(secret).digest('hex');

export const loginSchema = z.object({ token: z.string().min(1).max(1024) }).strict();

export class UiSessions {
  constructor(
    private readonly tokens: Tokens,
    private readonly store: Store,
    private readonly ttlMs = SESSION_TTL_MS,
  ) {}

  /** A new session for `token` (undefined when it is not a valid token): the cookie's secret and the session. */
  async create(token: string): Promise<{ secret: string; session: Session } | undefined> {
    const owner = await this.tokens.ownerOf(token);
    if (!owner) return undefined;
    // Only stored tokens and the admin token: the daemon's in-memory tokens (MCP's) are not for people.
    const tokenId = this.tokens.isAdmin(token) ? null : (/^rlm_([0-9a-f]{12})_/.exec(token)?.[1] ?? '');
    if (tokenId !== null && !(await this.tokens.known(tokenId))) return undefined;
    const secret = randomBytes(32).toString('base64url');
    const now = Date.now();
    const session: Session = { digest: digest(secret), owner, tokenId, createdAt: now, expiresAt: now + this.ttlMs };
    await this.store.putUiSession(session);
    await this.store.pruneUiSessions(now, MAX_SESSIONS);
    return { secret, session };
  }

  /** The live session of a cookie's secret, if any (an expired or revoked one is dropped). */
  async get(secret: string): Promise<Session | undefined> {
    const key = digest(secret);
    const s = await this.store.getUiSession(key);
    if (!s) return undefined;
    if (s.expiresAt <= Date.now() || (s.tokenId !== null && !(await this.tokens.known(s.tokenId)))) {
      await this.store.deleteUiSession(key);
      return undefined;
    }
    return s;
  }

  delete(secret: string): Promise<void> {
    return this.store.deleteUiSession(digest(secret));
  }

  /**
   * The session a request may act as: its cookie, with `X-Realm-UI: 1` — or, on a WebSocket
   * upgrade, with an Origin that is this very origin. Undefined otherwise (the cookie is ignored).
   */
  async of(c: Context): Promise<Session | undefined> {
    const secret = getCookie(c, SESSION_COOKIE);
    if (!secret) return undefined;
    const upgrade = c.req.method === 'GET' && c.req.header('upgrade')?.toLowerCase() === 'websocket';
    if (!(upgrade ? sameOrigin(c) : c.req.header(UI_HEADER) === '1')) return undefined;
    return this.get(secret);
  }
}

/** Whether the request's Origin is the origin its Host names (the page came from this daemon). */
function sameOrigin(c: Context): boolean {
  const origin = c.req.header('origin');
  const host = c.req.header('host');
  if (!origin || !host) return false;
  try {
    const u = new URL(origin);
    return u.origin === origin && u.host === host.toLowerCase() && u.protocol === (secure(c) ? 'https:' : 'http:');
  } catch {
    return false;
  }
}

function secure(c: Context): boolean {
  const socket = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket as TLSSocket | undefined;
  return socket?.encrypted === true;
}

function requireHeader(c: Context): void {
  if (c.req.header(UI_HEADER) !== '1')
    throw new RealmError(
      'INVALID_REQUEST',
      `${c.req.method} /v1/ui/session wants the header "X-Realm-UI: 1" (the dashboard sends it)`,
    );
}

export function uiSessionRoutes(app: Hono, sessions: UiSessions): void {
  app.post('/v1/ui/session', async (c) => {
    requireHeader(c);
    const { token } = loginSchema.parse(await jsonBody(c));
    const made = await sessions.create(token);
    if (!made)
      throw new RealmError(
        'UNAUTHORIZED',
        'that token is not valid: `realm token create NAME` makes one (or use the admin token)',
      );
    // A session cookie in name only: it also ends on the daemon's side after SESSION_TTL_MS.
    setCookie(c, SESSION_COOKIE, made.secret, {
      httpOnly: true,
      sameSite: 'Strict',
      path: '/',
      secure: secure(c),
      maxAge: Math.floor(SESSION_TTL_MS / 1000),
    });
    c.header('Cache-Control', 'no-store');
    return c.json({
      principal: made.session.owner,
      admin: made.session.owner === ROOT_OWNER,
      expiresAt: new Date(made.session.expiresAt).toISOString(),
    });
  });
  app.get('/v1/ui/session', async (c) => {
    const secret = getCookie(c, SESSION_COOKIE);
    const s = secret && c.req.header(UI_HEADER) === '1' ? await sessions.get(secret) : undefined;
    c.header('Cache-Control', 'no-store');
    const who = principal(c);
    return c.json({ principal: who.id, admin: who.admin, expiresAt: s ? new Date(s.expiresAt).toISOString() : null });
  });
  app.delete('/v1/ui/session', async (c) => {
    requireHeader(c);
    const secret = getCookie(c, SESSION_COOKIE);
    if (secret) await sessions.delete(secret);
    deleteCookie(c, SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'Strict', secure: secure(c) });
    return c.body(null, 204);
  });
}
