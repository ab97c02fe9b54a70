/**
 * The gateway's part for process services. Two ways in:
 * - by path: `/NAME/REST` goes to one healthy replica of service NAME (in turn) as `/REST` — the
 *   prefix is stripped, as for components, and passed on in X-Forwarded-Prefix so an app can
 *   build its own links;
 * - by Host: `NAME.<preview domain>` (realm.localhost by default) goes to service NAME with the
 *   path as it is. A preview URL's form (`<port>-<sandbox>.<domain>`) is the preview's, never a
 *   service's.
 * Either way the service's visibility decides who is served (access.ts), bodies stream both ways
 * (no buffering) and WebSocket upgrades pass through. No healthy replica: 503 SERVICE_UNAVAILABLE.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Services } from '../services/services.js';
import { ERROR_STATUS, type ErrorCode, RealmError, errorMessage } from '../util/errors.js';
import { refusal } from './access.js';
import { APP_NAME } from './apps.js';
import { sendError } from './http.js';

/** Which service a request is for, and what the replica sees of its URL. */
export interface ServiceTarget {
  name: string;
  /** The path and query the replica gets. */
  path: string;
  /** The path prefix taken off (X-Forwarded-Prefix), or none for a Host route. */
  prefix?: string | undefined;
}

/** The target of `/NAME/REST`: the replica sees /REST and the query. */
export function pathTarget(url: string, name: string): ServiceTarget {
  const rest = url.slice(name.length + 1);
  return { name, path: rest.startsWith('/') ? rest : `/${rest}`, prefix: `/${name}` };
}

/** The service a Host header names, `NAME.<domain>` (with any port), if it has that form. */
export function hostTarget(host: string | undefined, domain: string, url: string): ServiceTarget | undefined {
  if (!host) return undefined;
  const h = host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  if (!h.endsWith(`.${domain}`)) return undefined;
  const name = h.slice(0, -domain.length - 1);
  // `<port>-<sandbox>` is a preview URL's (preview.ts), whatever services there are.
  if (!APP_NAME.test(name) || /^\d{1,5}-/.test(name)) return undefined;
  return { name, path: url.startsWith('/') ? url : `/${url}` };
}

/** Why this request may not reach the service, or undefined when it may. */
function refused(services: Services, t: ServiceTarget, req: IncomingMessage): [ErrorCode, string] | undefined {
  const rec = services.route(t.name);
  if (!rec) return undefined;
  return refusal(t.name, { visibility: rec.spec.visibility }, req.headers, req.socket.remoteAddress);
}

/** How a service request is served besides by this node's replicas. */
export interface ServeOptions {
  /** No healthy replica here: send it to another node that has one (a cluster's); false when none has. */
  elsewhere?: (() => Promise<boolean>) | undefined;
  /** Its visibility was checked by the node that received it (a request relayed by a peer). */
  checked?: boolean;
}

/** Whether the request was for a service (and is now answered). */
export async function serveService(
  services: Services,
  t: ServiceTarget,
  req: IncomingMessage,
  res: ServerResponse,
  o: ServeOptions = {},
): Promise<boolean> {
  const rec = services.route(t.name);
  if (!rec) return false;
  const no = o.checked ? undefined : refused(services, t, req);
  if (no) {
    req.resume();
    sendError(res, ...no);
    return true;
  }
  // A request without a body may go to another replica when one fails before answering (it
  // crashed and the reconciler has not seen it yet); one with a body has been read by the first.
  const retry = req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS';
  if (t.prefix) req.headers['x-forwarded-prefix'] = t.prefix;
  for (let attempt = 0; ; attempt++) {
    const replica = services.reconciler.pick(t.name);
    if (!replica) {
      if (attempt === 0 && o.elsewhere && (await o.elsewhere())) return true;
      req.resume();
      sendError(res, 'SERVICE_UNAVAILABLE', `service ${t.name} has no healthy replica now; see \`realm svc inspect ${t.name}\``);
      return true;
    }
    try {
      await services.proxy.proxy(req, res, replica.sandboxId, rec.spec.port, t.path);
      return true;
    } catch (e) {
      // A replica too slow to answer is not sick, and another would keep the client waiting again.
      if (e instanceof RealmError && e.code === 'APP_TIMEOUT') {
        sendError(res, e.code, `service ${t.name}: ${e.message}`);
        return true;
      }
      services.reconciler.suspect(t.name, replica);
      if (!retry || attempt >= 2) {
        sendError(res, 'SERVICE_UNAVAILABLE', `service ${t.name}: ${errorMessage(e)}`);
        return true;
      }
    } finally {
      services.reconciler.release(replica);
    }
  }
}

/** Answer a refused upgrade on its raw socket, with a JSON error. */
function refuse(socket: Duplex, code: ErrorCode, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${ERROR_STATUS[code]} ${code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** A WebSocket (or other) upgrade for a service; false when there is no such service. */
export async function upgradeService(
  services: Services,
  t: ServiceTarget,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  o: ServeOptions = {},
): Promise<boolean> {
  const rec = services.route(t.name);
  if (!rec) return false;
  const no = o.checked ? undefined : refused(services, t, req);
  if (no) {
    refuse(socket, ...no);
    return true;
  }
  const replica = services.reconciler.pick(t.name);
  if (!replica) {
    if (o.elsewhere && (await o.elsewhere())) return true;
    refuse(socket, 'SERVICE_UNAVAILABLE', `service ${t.name} has no healthy replica now`);
    return true;
  }
  if (t.prefix) req.headers['x-forwarded-prefix'] = t.prefix;
  // An upgraded connection lives on its own: a retired replica does not wait for it.
  try {
    await services.proxy.upgrade(req, socket, head, replica.sandboxId, rec.spec.port, t.path);
  } finally {
    services.reconciler.release(replica);
  }
  return true;
}
