/**
 * The gateway's part for process services: `/NAME/REST` goes to one healthy replica of service
 * NAME (in turn) as `/REST` — the prefix is stripped, as for components, and passed on in
 * X-Forwarded-Prefix so an app can build its own links. Bodies stream both ways (no buffering);
 * WebSocket upgrades pass through. No healthy replica: 503 SERVICE_UNAVAILABLE.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Services } from '../services/services.js';
import { ERROR_STATUS, errorMessage } from '../util/errors.js';
import { refusal } from './access.js';
import { sendError } from './http.js';

/** What the replica sees of the request URL: the path after /NAME, and the query. */
function innerPath(url: string, name: string): string {
  const rest = url.slice(name.length + 1);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/** Whether the request was for a service (and is now answered). */
export async function serveService(
  services: Services,
  name: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<boolean> {
  const route = services.route(name);
  if (!route) return false;
  const refused = refusal(name, { visibility: route.rec.spec.visibility }, req.headers, req.socket.remoteAddress);
  if (refused) {
    sendError(res, ...refused);
    return true;
  }
  // A request without a body may go to another replica when one fails before answering (it
  // crashed and the reconciler has not seen it yet); one with a body has been read by the first.
  const retry = req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS';
  req.headers['x-forwarded-prefix'] = `/${name}`;
  const path = innerPath(req.url ?? '/', name);
  let replica = route.replica;
  for (let attempt = 0; ; attempt++) {
    if (!replica) {
      sendError(res, 'SERVICE_UNAVAILABLE', `service ${name} has no healthy replica now; see \`realm svc inspect ${name}\``);
      return true;
    }
    try {
      await services.proxy.proxy(req, res, replica.sandboxId, route.rec.spec.port, path);
      return true;
    } catch (e) {
      services.reconciler.suspect(name, replica);
      if (!retry || attempt >= 2) {
        sendError(res, 'SERVICE_UNAVAILABLE', `service ${name}: ${errorMessage(e)}`);
        return true;
      }
      replica = services.reconciler.pick(name);
    }
  }
}

/** A WebSocket (or other) upgrade for a service; false when NAME is none. */
export async function upgradeService(services: Services, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<boolean> {
  const m = /^\/([^/?]+)/.exec(req.url ?? '/');
  const route = m?.[1] ? services.route(m[1]) : undefined;
  if (!m?.[1] || !route) return false;
  const name = m[1];
  const refused = refusal(name, { visibility: route.rec.spec.visibility }, req.headers, req.socket.remoteAddress);
  const [code, message] = refused ?? (route.replica ? [] : ['SERVICE_UNAVAILABLE', `service ${name} has no healthy replica now`]);
  if (code && message) {
    const body = JSON.stringify({ error: { code, message } });
    socket.end(
      `HTTP/1.1 ${ERROR_STATUS[code]} ${code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
    return true;
  }
  if (!route.replica) return true;
  req.headers['x-forwarded-prefix'] = `/${name}`;
  await services.proxy.upgrade(req, socket, head, route.replica.sandboxId, route.rec.spec.port, innerPath(req.url ?? '/', name));
  return true;
}
