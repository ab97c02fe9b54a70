/**
 * WebSocket routes for a sandbox on another node: cluster-routing.ts finds the node and pins it
 * on the request (`wsPeer`); the upgrade is then accepted here and relayed to that node
 * (cluster/ws-relay.ts), where the route runs and authorises the caller as a direct upgrade
 * would. The route's own handlers never run here.
 */
import type { Context } from 'hono';
import type { UpgradeWebSocket, WSEvents } from 'hono/ws';
import type { WebSocket } from 'ws';
import { type PeerSocket, Relay } from '../cluster/ws-relay.js';

declare module 'hono' {
  interface ContextVariableMap {
    /** The node a WebSocket upgrade is relayed to (cluster-routing.ts). */
    wsPeer: PeerSocket;
  }
}

/** The relays open now, ended together when the daemon closes. */
export class Relays {
  private readonly open = new Set<Relay>();

  start(client: WebSocket, to: PeerSocket): Relay {
    const relay: Relay = new Relay(client, to, () => this.open.delete(relay));
    this.open.add(relay);
    return relay;
  }

  closeAll(): void {
    for (const r of [...this.open]) r.end();
  }
}

/** The app's WebSocket upgrade, relaying what lives on another node and running the route for the rest. */
export function relayUpgrade(upgrade: UpgradeWebSocket, relays: Relays): UpgradeWebSocket {
  const relaying = (createEvents: (c: Context) => WSEvents | Promise<WSEvents>, options?: unknown) =>
    upgrade((c: Context) => {
      const to = c.get('wsPeer') as PeerSocket | undefined;
      if (!to) return createEvents(c);
      let relay: Relay | undefined;
      return {
        onOpen(_e, ws) {
          relay = relays.start(ws.raw as WebSocket, to);
        },
        onMessage(e: { data: unknown }) {
          relay?.fromClient(e.data as string | ArrayBuffer);
        },
        onClose(e: { code: number; reason: string }) {
          relay?.clientClosed(e.code, e.reason);
        },
      } satisfies WSEvents;
    }, options);
  return relaying as UpgradeWebSocket;
}
