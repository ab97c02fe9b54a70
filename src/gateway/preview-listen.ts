/**
 * Where preview URLs are served: on the gateway (beside its apps, by Host) and, with
 * `--public-listen HOST:PORT`, on a listener of their own that serves preview URLs and public
 * services by Host (`NAME.<domain>`) only — never the API, never apps, never a local service —
 * so it may face a network the API must not.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../util/errors.js';
import { sendError } from './http.js';
import type { Preview } from './preview.js';
import { refuseUpgrade } from './sandbox-proxy.js';
import type { Services } from '../services/services.js';
import { type ServiceTarget, hostTarget, serveService, upgradeService } from './services.js';
import { log } from '../logs/log.js';

/**
 * Serve preview upgrades (WebSockets) on `server`, refusing other upgrades; returns what ends the
 * upgraded connections on close (server.close does not see them).
 */
export function servePreviewUpgrades(
  server: Server,
  preview: Preview,
  /** Upgrades that are not a preview URL's (the gateway's process services); refused without. */
  otherwise?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
): () => void {
  const open = new Set<Duplex>();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    socket.on('error', () => socket.destroy());
    const t = preview.match(req.headers.host);
    if (!t && otherwise) return otherwise(req, socket, head);
    if (!t)
      return refuseUpgrade(
        socket,
        'NOT_FOUND',
        `no WebSocket here: only preview URLs (<port>-<sandbox>.${preview.domain}) take upgrades`,
      );
    preview.upgrade(req, socket, head, t).catch((e: unknown) => {
      log.error(`preview: ${errorMessage(e)}`, { err: e });
      refuseUpgrade(socket, 'INTERNAL', 'the gateway failed on this upgrade');
    });
  });
  return () => {
    for (const s of open) s.destroy();
    open.clear();
  };
}

/** Serve a preview request, or answer its failure as JSON. */
export function servePreview(preview: Preview, req: IncomingMessage, res: ServerResponse): boolean {
  const t = preview.match(req.headers.host);
  if (!t) return false;
  preview.handle(req, res, t).catch((e: unknown) => {
    log.error(`preview: ${errorMessage(e)}`, { err: e });
    sendError(res, 'INTERNAL', 'the gateway failed on this request');
  });
  return true;
}

export interface PublicListener {
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * The service a Host names (`NAME.<domain>`) and whether it is served here: only a public one is.
 * A local one is this machine's own, and answers as a missing one does.
 */
function serviceHost(
  services: Services | undefined,
  preview: Preview,
  req: IncomingMessage,
): { t: ServiceTarget; served: boolean } | undefined {
  const t = services && hostTarget(req.headers.host, preview.domain, req.url ?? '/');
  return t && { t, served: services?.route(t.name)?.spec.visibility === 'public' };
}

/** The `--public-listen` listener: preview URLs and public services by Host only. */
export async function startPublicListener(
  preview: Preview,
  host: string,
  port: number,
  services?: Services,
): Promise<PublicListener> {
  const notHere = `this address serves preview URLs (http://<port>-<sandbox>.${preview.domain}/) and public services (http://<service>.${preview.domain}/) only; the API is elsewhere`;
  const missing = (name: string): string => `no public service "${name}" here`;
  const server = createServer((req, res) => {
    if (servePreview(preview, req, res)) return;
    const s = serviceHost(services, preview, req);
    if (s?.served && services)
      return void serveService(services, s.t, req, res).then(
        (served) => {
          if (served) return;
          req.resume();
          sendError(res, 'APP_NOT_FOUND', missing(s.t.name));
        },
        (e: unknown) => {
          log.error(`gateway: ${errorMessage(e)}`, { err: e });
          sendError(res, 'INTERNAL', 'the gateway failed on this request');
        },
      );
    req.resume();
    if (s) sendError(res, 'APP_NOT_FOUND', missing(s.t.name));
    else sendError(res, 'NOT_FOUND', notHere);
  });
  const endUpgrades = servePreviewUpgrades(server, preview, (req, socket, head) => {
    const s = serviceHost(services, preview, req);
    const served = s?.served && services ? upgradeService(services, s.t, req, socket, head) : Promise.resolve(false);
    served.then(
      (ok) =>
        void (
          ok || (s ? refuseUpgrade(socket, 'APP_NOT_FOUND', missing(s.t.name)) : refuseUpgrade(socket, 'NOT_FOUND', notHere))
        ),
      () => socket.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`,
    port: addr.port,
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      endUpgrades();
      await closed;
    },
  };
}
