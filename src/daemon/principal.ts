/**
 * Who a request acts for, resolved in one place for every request:
 * - on the daemon's unix socket, the connecting process's uid (SO_PEERCRED), `uid:N`;
 * - on TCP, loopback included, the owner of its bearer token (a token made by uid N acts as N;
 *   the admin token in <data-dir>/admin-token acts as root);
 * - otherwise `anonymous`, which reaches only /v1/health and the route groups the operator
 *   opened with --anonymous (see access.ts).
 * uid 0 is the node's admin. Routes ask `principal(c)`; nothing else decides who a caller is.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Context, MiddlewareHandler } from 'hono';
import { ROOT_OWNER, uidOwner } from '../engine/owner.js';
import { primaryGid } from '../engine/git-caller.js';
import type { Tokens } from './auth.js';
import type { UiSessions } from './ui-session.js';
import type { PeerCred } from './peercred.js';
import type { Nodes } from '../cluster/types.js';
import { PRINCIPAL_HEADER } from '../cluster/forward.js';
import { RealmError } from '../util/errors.js';
import { requestHeader } from './request-header.js';

export interface Principal {
  /** `uid:N`, or `anonymous`. Stored as the owner of what it makes. */
  id: string;
  /** The local user it acts as (null when anonymous). */
  uid: number | null;
  gid: number | null;
  /** Root: administers the node and sees everything. */
  admin: boolean;
  /** `peer`: another node of the cluster forwarded the request, naming who it acts for (cluster-routing.ts); `session`: the dashboard's cookie with its header (ui-session.ts). */
  via: 'socket' | 'token' | 'anonymous' | 'peer' | 'session';
}

declare module 'hono' {
  interface ContextVariableMap {
    principal: Principal;
    /** The sandbox a /v1/sandboxes/:id/… request was checked against (access.ts). */
    sandboxId: string;
    /** Why a WebSocket upgrade is refused, told in an error frame (access.ts guardUpgrade). */
    refused: import('../util/errors.js').RealmError;
  }
}

export const ANONYMOUS: Principal = { id: 'anonymous', uid: null, gid: null, admin: false, via: 'anonymous' };

export function userPrincipal(uid: number, gid: number, via: Principal['via']): Principal {
  return { id: uidOwner(uid), uid, gid, admin: uidOwner(uid) === ROOT_OWNER, via };
}

/** Connections accepted on the unix socket, with their peer's credentials (read once, at accept). */
export const socketPeers = new WeakMap<Socket, PeerCred>();

/** The principal the identify middleware set; a request without one is refused (default deny). */
export function principal(c: Context): Principal {
  const p = c.get('principal') as Principal | undefined;
  if (!p) throw new Error('no principal on this request: the identify middleware must run first');
  return p;
}

/** Middleware: resolve the request's principal and set it on the context. */
export function identify(tokens: Tokens, nodes?: Nodes, sessions?: UiSessions): MiddlewareHandler {
  return async (c, next) => {
    const socket = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket;
    const peer = socket ? socketPeers.get(socket) : undefined;
    if (peer) {
      // On the socket the caller is its uid; a token it may also send changes nothing.
      c.set('principal', userPrincipal(peer.uid, peer.gid, 'socket'));
      return next();
    }
    const m = /^Bearer\s+(\S+)$/i.exec(requestHeader(c, 'authorization') ?? '');
    // A peer node acts for the caller it authenticated; only members hold the peer credential.
    const forwardedFor = requestHeader(c, PRINCIPAL_HEADER);
    if (m?.[1] && forwardedFor && nodes?.isPeer(m[1])) {
      const fuid = Number(/^uid:(\d+)$/.exec(forwardedFor)?.[1]);
      if (!Number.isInteger(fuid))
        throw new RealmError('UNAUTHORIZED', `a peer forwarded for "${forwardedFor}", which is no user`);
      c.set('principal', userPrincipal(fuid, primaryGid(fuid), 'peer'));
      return next();
    }
    // The dashboard's cookie counts only with its header (ui-session.ts); a bearer token wins over it.
    const session = !m && sessions ? await sessions.of(c) : undefined;
    if (session) {
      const suid = Number(/^uid:(\d+)$/.exec(session.owner)?.[1]);
      if (Number.isInteger(suid)) {
        c.set('principal', userPrincipal(suid, primaryGid(suid), 'session'));
        return next();
      }
    }
    const owner = m?.[1] ? await tokens.ownerOf(m[1]) : undefined;
    const uid = owner ? Number(/^uid:(\d+)$/.exec(owner)?.[1]) : NaN;
    if (owner && Number.isInteger(uid)) c.set('principal', userPrincipal(uid, primaryGid(uid), 'token'));
    else if (m)
      c.set('principal', { ...ANONYMOUS, via: 'token' } satisfies Principal); // a bad token is no token
    else c.set('principal', ANONYMOUS);
    return next();
  };
}
