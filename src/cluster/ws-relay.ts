/**
 * A WebSocket (terminal, process attach) for a sandbox on another node, relayed there. The
 * receiving node accepts the client's upgrade as usual, opens a WebSocket to the peer with the
 * peer credential and the caller's principal (as forward.ts does for HTTP), and relays frames
 * both ways as they are, text or binary. The peer authorises the upgrade exactly as a direct one.
 *
 * - Back-pressure: a side whose frames are not yet written out on the other past a high-water
 *   mark is paused (its socket is not read), so a client that does not read holds the command
 *   on the peer back, as it would there, and neither side's data queues here without end.
 * - Closing: each side is closed when the other closes, with its code and reason (codes that
 *   cannot travel in a close frame — 1006, a lost connection — become 1011 or 1001).
 * - A peer that refuses the upgrade with an HTTP answer, or does not answer, is told to the
 *   client in an error frame, the WebSocket routes' way of refusing.
 */
import { WebSocket, type RawData } from 'ws';
import { FORWARDED_HEADER, PRINCIPAL_HEADER } from './forward.js';
import { dialFailure, peerWsOptions } from './peer-tls.js';

/** Bytes relayed one way and not yet written out before the sending side is paused (resumed under half). */
export const RELAY_HIGH_WATER = 1024 * 1024;
/** How long the peer has to accept the upgrade. */
const HANDSHAKE_MS = 10_000;
/** How much of a peer's HTTP refusal is read for the error frame. */
const MAX_REFUSAL = 16 * 1024;

/** Where a WebSocket goes: the peer, the request's path, and who it acts for. */
export interface PeerSocket {
  /** The node's id, for messages. */
  node: string;
  /** The peer's API address, e.g. http://10.0.0.2:7070. */
  address: string;
  pathAndQuery: string;
  principal: string;
  peerToken: string;
  from: string;
}

export function dialPeer(p: PeerSocket): WebSocket {
  const url = new URL(p.pathAndQuery, p.address.replace(/^http/, 'ws'));
  return new WebSocket(url, {
    headers: { authorization: `Bearer ${p.peerToken}`, [PRINCIPAL_HEADER]: p.principal, [FORWARDED_HEADER]: p.from },
    perMessageDeflate: false,
    handshakeTimeout: HANDSHAKE_MS,
    followRedirects: false,
    // wss:// for an https:// peer, verified against --peer-ca as forwarded HTTP is.
    ...peerWsOptions(),
  });
}

/** A close code one may send on: the same code when it can travel, else one that says as much. */
function relayable(code: number, lost: number): number | undefined {
  if (code === 1005) return undefined; // none was given: none is sent
  const valid = (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1006) || (code >= 3000 && code <= 4999);
  return valid ? code : lost;
}

/** An API error, as a frame says it. */
interface ApiError {
  code: string;
  message: string;
}

/** Frames one way, with the sending side paused while too much is unwritten on the other. */
class Lane {
  private inFlight = 0;
  private paused = false;

  constructor(
    private readonly from: Pick<WebSocket, 'pause' | 'resume'>,
    private readonly to: () => Pick<WebSocket, 'send' | 'readyState'>,
  ) {}

  send(data: RawData | string, binary: boolean): void {
    const to = this.to();
    if (to.readyState !== WebSocket.OPEN) return; // closing: the close follows
    const n = typeof data === 'string' ? Buffer.byteLength(data) : size(data);
    this.inFlight += n;
    to.send(data, { binary }, () => {
      this.inFlight -= n;
      if (this.paused && this.inFlight <= RELAY_HIGH_WATER / 2) {
        this.paused = false;
        this.from.resume();
      }
    });
    if (!this.paused && this.inFlight > RELAY_HIGH_WATER) {
      this.paused = true;
      this.from.pause();
    }
  }
}

function size(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

export class Relay {
  private readonly peer: WebSocket;
  private readonly up: Lane;
  private readonly down: Lane;
  /** Frames from the client that came before the peer accepted (the client is paused meanwhile). */
  private early: [RawData | string, boolean][] = [];
  private ended = false;

  /** Relay `client` to the peer `to`; `onEnd` once both sides are done. */
  constructor(
    /** The socket the daemon accepted from the client (hono's WSContext.raw). */
    private readonly client: WebSocket,
    to: PeerSocket,
    private readonly onEnd: () => void = () => undefined,
  ) {
    // Nothing is read from the client until the peer is there to take it.
    client.pause();
    this.peer = dialPeer(to);
    this.up = new Lane(client, () => this.peer);
    this.down = new Lane(this.peer, () => client);
    let opened = false;
    this.peer.on('open', () => {
      opened = true;
      for (const [data, binary] of this.early.splice(0)) this.up.send(data, binary);
      client.resume();
    });
    this.peer.on('message', (data, binary) => this.down.send(data, binary));
    this.peer.on('unexpected-response', (_req, res) => {
      // An HTTP answer instead of an upgrade: the peer's error body, told in a frame.
      let body = '';
      res.on('data', (d: Buffer) => {
        if (body.length < MAX_REFUSAL) body += d.toString('utf8');
      });
      res.on('end', () => {
        this.refuse(refusal(to, res.statusCode ?? 502, body));
        this.peer.terminate();
      });
      res.on('error', () => undefined);
    });
    this.peer.on('error', (e) => {
      // Before it opened, the peer did not answer; after, the close that follows tells.
      if (!opened)
        this.refuse({
          code: 'NODE_UNREACHABLE',
          message: `node ${to.node} at ${to.address} did not answer (${dialFailure(e)}); \`realm node ls\` shows its state`,
        });
    });
    this.peer.on('close', (code, reason) => {
      if (client.readyState === WebSocket.OPEN) {
        client.resume(); // a paused socket would not read the client's answer to the close
        client.close(relayable(code, 1011), code === 1006 ? `the connection to node ${to.node} was lost` : reason.toString());
      }
      this.finish();
    });
  }

  /** A frame from the client (text as a string, binary as bytes). */
  fromClient(data: string | ArrayBuffer | Buffer): void {
    const binary = typeof data !== 'string';
    const raw = data instanceof ArrayBuffer ? Buffer.from(data) : data;
    if (this.peer.readyState === WebSocket.CONNECTING) this.early.push([raw, binary]);
    else this.up.send(raw, binary);
  }

  /** The client closed: so does the peer, with the same code and reason. */
  clientClosed(code: number, reason: string): void {
    if (this.peer.readyState === WebSocket.OPEN) {
      this.peer.resume();
      this.peer.close(relayable(code, 1001), code === 1006 ? 'the client went away' : reason);
    } else if (this.peer.readyState === WebSocket.CONNECTING) this.peer.terminate();
    this.early = [];
  }

  /** End both sides at once (the daemon is closing). */
  end(): void {
    this.client.terminate();
    this.peer.terminate();
    this.finish();
  }

  private refuse(error: ApiError): void {
    if (this.client.readyState === WebSocket.OPEN) {
      this.client.resume();
      this.client.send(JSON.stringify({ type: 'error', error }));
      this.client.close(1008, 'refused');
    }
    this.finish();
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
  }
}

/** The error a peer's HTTP refusal of the upgrade carries, or one that names its status. */
function refusal(to: PeerSocket, status: number, body: string): ApiError {
  try {
    const e = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }).error;
    if (typeof e?.code === 'string' && typeof e.message === 'string') return { code: e.code, message: e.message };
  } catch {
    // not the API's JSON: said below
  }
  return { code: 'NODE_UNREACHABLE', message: `node ${to.node} at ${to.address} refused the WebSocket with HTTP ${status}` };
}
