/**
 * Who the gateway serves an app to. `local` apps are this machine's own: served only to loopback
 * peers that name the gateway by a loopback name (localhost, *.localhost, 127.0.0.0/8, [::1]),
 * and to no page of another origin. The Host check is what stops DNS rebinding: a page at
 * evil.example whose name an attacker re-points to 127.0.0.1 is same-origin with the gateway for
 * its browser, but its requests say `Host: evil.example`. The Origin check stops a page elsewhere
 * from driving a local app through the user's browser (its answers it could not read anyway).
 * `public` apps answer to any peer and any name: what they serve is meant for anyone.
 * The API listener's browser guard (src/daemon/browser-guard.ts) parses names the same way.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { hostOf, isLoopbackName } from '../util/host.js';
import type { AppRecord } from '../store/store.js';
import type { ErrorCode } from '../util/errors.js';

/** Whether a client address is this machine's own (loopback). */
export function isLoopback(addr: string | undefined): boolean {
  if (!addr) return false;
  const v4 = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return v4.startsWith('127.') || addr === '::1';
}

/** Whether an Origin header's page is served from a loopback name (http or https). */
function loopbackOrigin(origin: string): boolean {
  try {
    const u = new URL(origin);
    return (u.protocol === 'http:' || u.protocol === 'https:') && isLoopbackName(u.hostname);
  } catch {
    return false; // "null" and other opaque origins
  }
}

/**
 * Why app `name` (its record, or null when there is none) is not served for this request, or
 * undefined when it is. A client not allowed a local app cannot tell it from a missing one.
 */
export function refusal(
  name: string,
  rec: Pick<AppRecord, 'visibility'> | null,
  headers: IncomingHttpHeaders,
  peer: string | undefined,
): [ErrorCode, string] | undefined {
  if (rec?.visibility === 'public') return undefined;
  const host = hostOf(headers.host);
  if (host === undefined || !isLoopbackName(host)) {
    return [
      'HOST_NOT_ALLOWED',
      `no public app "${name}" answers to Host "${headers.host ?? ''}": local apps answer only to localhost, *.localhost, 127.0.0.1 or [::1] (push with --visibility public to serve an app under other names)`,
    ];
  }
  if (!rec || !isLoopback(peer)) return ['APP_NOT_FOUND', `no app "${name}" on this gateway`];
  const origin = headers.origin;
  if (origin !== undefined && !loopbackOrigin(origin)) {
    return [
      'ORIGIN_NOT_ALLOWED',
      `app "${name}" is local: pages at ${origin} may not call it (push it with --visibility public to serve it to any page)`,
    ];
  }
  return undefined;
}
