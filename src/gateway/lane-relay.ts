/**
 * The fast lane's relay thread (native/peercred/lane-relay.c): once the lane (fast-lane.ts) has
 * served an exchange on a kept-alive client connection, the same exchange again — the same request
 * bytes, the same response head, a body of the same length — is passed between the client and the
 * replica by a thread of the addon, without a turn of Node's event loop (two of them a request
 * through a Node proxy, most of what it adds to a kept-alive request). The thread decides nothing:
 * whatever differs hands the connection back with the bytes it read and did not pass on, and the
 * lane goes on from there as if it had read them itself; so does the lease's end (LEASE_MS: what
 * the lane checks at each request — the service's replicas, its visibility, tracing — is checked
 * again at least that often).
 *
 * While the thread has them, Node does not read either socket (their handles' reading is stopped
 * and started again on the hand-back); the thread works on duplicates of their descriptors, so a
 * socket the lane closes meanwhile is never confused with another.
 */
import type { Socket } from 'node:net';
import { type StreamHandle, loadAddon, streamHandle } from '../util/addon.js';

/** A request was out when the connection came back: its response is the lane's to read (`upstream` its start). */
export const RELAY_SENT = 1;
/** The replica's connection is not to be used again (closed, or it sent a byte nobody asked for). */
export const RELAY_DROP_UPSTREAM = 2;
/** The client's connection must close (a response was cut, or the client's side broke). */
export const RELAY_CUT = 4;
/** How long the thread serves a connection before the lane looks at it again. */
export const LEASE_MS = 200;

/** The hand-back: `client` bytes read and not passed on, `upstream` a response's start (RELAY_SENT), `out` to write to the client first. */
export type HandBack = (flags: number, client: Buffer, upstream: Buffer, out: Buffer) => void;

/** The exchange the thread repeats. */
export interface Repeat {
  /** The request head as the client sends it. */
  request: Buffer;
  /** What the replica gets instead. */
  forwarded: Buffer;
  /** The response head as the replica sends it. */
  responseHead: Buffer;
  /** What the client gets instead. */
  clientHead: Buffer;
  bodyLength: number;
}

type Addon = {
  relayInit(cb: (id: number, flags: number, client: Buffer, upstream: Buffer, out: Buffer) => void): boolean;
  relayOffload(
    clientFd: number,
    upstreamFd: number,
    request: Buffer,
    forwarded: Buffer,
    responseHead: Buffer,
    clientHead: Buffer,
    bodyLength: number,
    leaseMs: number,
  ): number;
  relayRevoke(id: number): void;
  relayStats(): RelayStats;
};

/** Connections the relay thread holds now, exchanges it passed on, hand-backs (since the process started). */
export interface RelayStats {
  lanes: number;
  relayed: number;
  handBacks: number;
}

const backs = new Map<number, HandBack>();
/** null: no relay in this process (the addon is missing, or its thread is another thread's). */
let relay: Addon | null | undefined;

function onBack(id: number, flags: number, client: Buffer, upstream: Buffer, out: Buffer): void {
  const back = backs.get(id);
  backs.delete(id);
  back?.(flags, client, upstream, out);
}

function addon(): Addon | undefined {
  // REALM_GATEWAY_RELAY=off: the lane serves every request itself (a way to rule the thread out).
  if (relay === undefined && process.env.REALM_GATEWAY_RELAY === 'off') relay = null;
  if (relay === undefined) {
    try {
      const a = loadAddon<Addon>("runs the gateway fast lane's relay");
      relay = typeof a.relayInit === 'function' && a.relayInit(onBack) ? a : null;
    } catch {
      relay = null;
    }
  }
  return relay ?? undefined;
}

/** Handles whose reading the relay stopped. */
const stopped = new WeakSet<StreamHandle>();

/**
 * Stop libuv reading the socket. The handle's `reading` flag stays set: Node's stream reads ahead
 * on its own whenever its buffer runs low, and starts the handle again when that flag is clear.
 */
function stop(h: StreamHandle): void {
  h.readStop();
  stopped.add(h);
}

/** Node reads the socket again (after a hand-back). */
export function resumeReading(socket: Socket): void {
  const h = streamHandle(socket);
  if (!h || socket.destroyed || !stopped.delete(h)) return;
  h.readStart();
}

/**
 * Give the two connections to the relay thread: its id, or undefined when it cannot take them
 * (nothing changed then). Both must have nothing buffered either way.
 */
export function offload(client: Socket, upstream: Socket, x: Repeat, back: HandBack): number | undefined {
  const a = addon();
  const ch = streamHandle(client);
  const uh = streamHandle(upstream);
  if (!a || !ch || !uh || (ch.fd ?? -1) < 0 || (uh.fd ?? -1) < 0) return undefined;
  stop(ch);
  stop(uh);
  const id = a.relayOffload(
    ch.fd ?? -1,
    uh.fd ?? -1,
    x.request,
    x.forwarded,
    x.responseHead,
    x.clientHead,
    x.bodyLength,
    LEASE_MS,
  );
  if (!id) {
    resumeReading(client);
    resumeReading(upstream);
    return undefined;
  }
  backs.set(id, back);
  return id;
}

/** Hand the connection back now (its hand-back still comes through the callback, once). */
export function revoke(id: number): void {
  relay?.relayRevoke(id);
}

/** What the relay thread has done in this process (zeros before its first connection: asking never starts it). */
export function relayStats(): RelayStats {
  return relay?.relayStats() ?? { lanes: 0, relayed: 0, handBacks: 0 };
}
