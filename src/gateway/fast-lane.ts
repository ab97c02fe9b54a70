/**
 * The gateway's fast lane: the listener that takes every gateway connection first. A plain GET or
 * HEAD for a process service with a healthy replica on this node (by path or by Host, allowed by
 * the service's visibility, tracing off) is relayed here byte for byte over a kept-alive
 * connection to the replica (raw-upstreams.ts), its response framed by http-head.ts — the cost of
 * Node's HTTP server and client objects, most of a kept-alive request's time through a Node
 * proxy, is not paid. Everything else (bodies, upgrades, preview URLs, apps, errors to explain,
 * a head split across reads, a cluster's relays) goes to Node's HTTP server with its bytes
 * untouched: the connection is handed over (`emit('connection')`) and stays there.
 *
 * What a replica sees and what a client gets is what the Node path gives (services.ts,
 * replica-proxy.ts): the prefix taken off and passed in X-Forwarded-Prefix, hop-by-hop headers
 * dropped both ways, a bodiless request tried on another replica (at most three) when one fails
 * before its answer began, 504 APP_TIMEOUT when no whole head came within RESPONSE_HEAD_MS.
 * A replica's connection is reused only after a response that ended exactly where its framing
 * said; a byte past it (a forged second response) drops it.
 *
 * Once an exchange ended cleanly on a kept-alive connection to a service with one replica in
 * service, the connection may go to the addon's relay thread (lane-relay.ts), which repeats that
 * exact exchange without the event loop and hands the connection back at the first difference.
 */
import { STATUS_CODES, type Server as HttpServer } from 'node:http';
import { type Server, type Socket, createServer } from 'node:net';
import type { Services } from '../services/services.js';
import type { Replica } from '../services/reconciler.js';
import { tracingState } from '../telemetry/trace.js';
import { ERROR_STATUS, type ErrorCode, RealmError, errorMessage } from '../util/errors.js';
import { refusal } from './access.js';
import type { RequestHead } from './http-head.js';
import { type Plan, readPlan } from './lane-plan.js';
import { RELAY_CUT, RELAY_DROP_UPSTREAM, RELAY_SENT, offload, resumeReading, revoke } from './lane-relay.js';
import { type Outcome, StaleConnection, Upstream } from './lane-upstream.js';
import { VirtualSocket, watchVirtual } from './lane-virtual.js';
import type { Preview } from './preview.js';

/**
 * How long, in the lane clock's seconds, a client's idle kept-alive connection stays open: 5–6 s
 * (Node's server: 5 s; clients such as undici reuse a connection idle for up to 4 s).
 */
const IDLE_S = 6;
/** Bytes a client may send ahead while its request is served before its connection's reading pauses. */
const MAX_AHEAD = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/** The replica end, from the services' proxy: kept connections and a fresh dial. */
export interface RawAccess {
  take(sandbox: string, port: number): Socket | undefined;
  give(sandbox: string, port: number, socket: Socket): void;
  /** A new connection to the port, or SERVICE_UNAVAILABLE. */
  dial(sandbox: string, port: number): Promise<Socket>;
}

export interface FastLaneOptions {
  services: Services;
  raw: RawAccess;
  preview?: Preview | undefined;
  /** Node's HTTP server: takes every connection the lane does not serve. */
  http: HttpServer;
}

/** A request the relay thread sent on `up` and handed back: its response's first bytes. */
interface Adopted {
  up: Upstream;
  got: Buffer;
}

/** Upstream connections one client connection holds at most (the oldest idle one goes back to the pool). */
const MAX_HELD = 8;

/** One client connection while the lane has it. */
class Lane {
  private buf: Buffer = EMPTY;
  private busy = false;
  private ended = false;
  /** The response was delimited by the replica closing: so is this connection. */
  private closeAfter = false;
  /** Connections to replicas' ports this client's requests went to, by `sandbox:port`. */
  private readonly ups = new Map<string, Upstream>();
  /** The one a request is out on. */
  private current: Upstream | undefined;
  private last: Plan | undefined;
  /** The connection Node's server answers the request in hand on. */
  private virtual: VirtualSocket | undefined;
  /** The relay thread has the connection (lane-relay.ts): what it repeats, until its hand-back. */
  private relay: { id: number; plan: Plan; replica: Replica; up: Upstream } | undefined;

  /** The lane clock's second the last request ended (or the connection came). */
  private idleSince: number;

  /** `clock`: seconds, moved by the lane's sweep (cheaper than a timer per request or socket). */
  constructor(
    private readonly socket: Socket,
    private readonly o: FastLaneOptions,
    private readonly clock: { s: number },
    private readonly gone: () => void,
  ) {
    this.idleSince = clock.s;
    socket.on('data', this.onData).on('end', this.onEnd).on('error', this.onError);
    socket.on('close', this.onClientClose);
  }

  /** Called each second: an idle connection past IDLE_S closes, a request past its head's deadline ends. */
  sweep(now: number): void {
    if (this.busy) this.current?.overdue(now);
    else if (now - this.idleSince >= IDLE_S) this.socket.destroy();
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    // What a client sends ahead while its request is served (pipelined requests) waits, up to a point.
    if (this.busy && this.buf.length > MAX_AHEAD) this.socket.pause();
    this.next();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.next();
  };

  private readonly onError = (): void => {
    this.socket.destroy();
  };

  /** The client went: an exchange under way ends; idle upstream connections go to the shared pool. */
  private readonly onClientClose = (): void => {
    this.gone();
    this.current?.abort();
    this.virtual?.destroy();
    // The relay thread's copy of the connection closes with its hand-back (which releases the replica).
    if (this.relay) revoke(this.relay.id);
    this.release();
  };

  private release(): void {
    for (const up of this.ups.values())
      if (up === this.relay?.up) up.detach().destroy();
      else if (!up.dead && !up.busy) this.o.raw.give(up.sandbox, up.port, up.detach());
    this.ups.clear();
  }

  /** Serve the next request in the buffer, or hand the connection over, or wait. */
  private next(): void {
    if (this.socket.destroyed || this.busy) return;
    if (this.closeAfter || (this.ended && !this.buf.length)) return void this.socket.end();
    if (!this.buf.length) return;
    const plan = this.plan();
    if (!plan) {
      // A client that pipelined a request the lane does not know the end of and then ended its
      // side: Node's server cannot take a connection whose end has passed; it goes unanswered.
      if (this.ended) return void this.socket.end();
      return this.handOver();
    }
    const replica = 'bytes' in plan ? this.o.services.reconciler.pick(plan.target.name) : undefined;
    const length = 'bytes' in plan ? plan.bytes.length : plan.length;
    const bytes = this.buf;
    this.buf = length === bytes.length ? EMPTY : bytes.subarray(length);
    this.busy = true;
    if ('bytes' in plan && replica) return this.serve(plan, replica, 0);
    // Parsed, bodiless, not the lane's: Node's server answers it, then the lane goes on.
    this.virtual = new VirtualSocket(this.socket, bytes.subarray(0, length), (closes) => {
      this.virtual = undefined;
      if (closes) this.closeAfter = true;
      this.idle();
    });
    this.o.http.emit('connection', this.virtual);
  }

  /**
   * The plan for the head at the start of the buffer if the lane serves it; the head alone when
   * it is a whole bodiless request the lane leaves to Node's server; undefined when the lane
   * cannot tell where the request ends, or it is a preview URL's (the connection is handed over).
   */
  private plan(): Plan | RequestHead | undefined {
    let p = this.last;
    const n = p?.bytes.length ?? 0;
    if (!p || this.buf.length < n || this.buf.compare(p.bytes, 0, n, 0, n) !== 0) {
      const read = readPlan(this.o.preview, this.buf);
      if (!read || !('bytes' in read)) return read;
      p = this.last = read;
    }
    if (tracingState().enabled) return p.head;
    const rec = this.o.services.route(p.target.name);
    if (!rec) return p.head;
    if (rec !== p.rec) {
      const headers = { host: p.head.headers.get('host'), origin: p.head.headers.get('origin') };
      p.rec = rec;
      p.allowed = !refusal(p.target.name, { visibility: rec.spec.visibility }, headers, this.socket.remoteAddress);
    }
    return p.allowed ? p : p.head;
  }

  /** Node's HTTP server takes the connection from here, the bytes read so far first. */
  private handOver(): void {
    const s = this.socket;
    s.off('data', this.onData).off('end', this.onEnd).off('error', this.onError);
    s.off('close', this.onClientClose);
    this.gone();
    this.release();
    if (this.buf.length) s.unshift(this.buf);
    this.buf = EMPTY;
    s.resume();
    this.o.http.emit('connection', s);
  }

  /** The request is over: the next one, if any. */
  private idle(): void {
    this.busy = false;
    this.idleSince = this.clock.s;
    if (this.socket.isPaused()) this.socket.resume();
    this.next();
  }

  /**
   * One request to the service's replicas, as serveService does it: at most three, each released.
   * `adopt`: the request is out already (the relay thread sent it on `up`, the lane's connection to
   * `replica`), and `got` are its response's first bytes.
   */
  private serve(p: Plan, replica: Replica, attempt: number, adopt?: Adopted): void {
    const name = p.target.name;
    const port = p.rec?.spec.port ?? 0;
    this.exchange(p.head.method, p.text, replica.sandboxId, port, adopt, (o) => {
      const { reconciler } = this.o.services;
      reconciler.release(replica);
      const e = o.error;
      if (!e) {
        if (o.closeAfter) this.closeAfter = true;
        if (!this.offload(p, replica, port)) this.idle();
        return;
      }
      // A replica too slow to answer is not sick, and another would keep the client waiting again.
      if (e instanceof RealmError && e.code === 'APP_TIMEOUT') {
        this.error(e.code, `service ${name}: ${e.message}`);
        return this.idle();
      }
      reconciler.suspect(name, replica);
      const other = attempt < 2 ? reconciler.pick(name) : undefined;
      if (other) return this.serve(p, other, attempt + 1);
      if (attempt < 2)
        this.error('SERVICE_UNAVAILABLE', `service ${name} has no healthy replica now; see \`realm svc inspect ${name}\``);
      else this.error('SERVICE_UNAVAILABLE', `service ${name}: ${errorMessage(e)}`);
      this.idle();
    });
  }

  /** The request on a held or kept connection (once more on a fresh one if that was stale), or a fresh one. */
  private exchange(
    method: string,
    text: Buffer,
    sandbox: string,
    port: number,
    adopt: Adopted | undefined,
    done: (o: Outcome) => void,
  ): void {
    const key = `${sandbox}:${port}`;
    let up = this.ups.get(key);
    if (!up || up.dead) {
      const kept = this.o.raw.take(sandbox, port);
      up = kept ? this.hold(key, new Upstream(kept, sandbox, port, true)) : undefined;
    }
    if (!up) return this.fresh(key, method, text, sandbox, port, done);
    // A response's start is only ever read on the connection its request went out on.
    this.send(up, method, text, adopt?.up === up ? adopt.got : undefined, (o) =>
      o.error instanceof StaleConnection ? this.fresh(key, method, text, sandbox, port, done) : done(o),
    );
  }

  /** The request on a connection dialled for it. */
  private fresh(key: string, method: string, text: Buffer, sandbox: string, port: number, done: (o: Outcome) => void): void {
    this.o.raw.dial(sandbox, port).then(
      (s) => {
        if (this.socket.destroyed) {
          s.destroy();
          return done({});
        }
        this.send(this.hold(key, new Upstream(s, sandbox, port, false)), method, text, undefined, done);
      },
      (e: unknown) => done({ error: e instanceof Error ? e : new Error(String(e)) }),
    );
  }

  private hold(key: string, up: Upstream): Upstream {
    this.ups.delete(key);
    this.ups.set(key, up);
    if (this.ups.size > MAX_HELD)
      for (const [k, u] of this.ups)
        if (!u.busy) {
          this.ups.delete(k);
          if (!u.dead) this.o.raw.give(u.sandbox, u.port, u.detach());
          break;
        }
    return up;
  }

  private send(up: Upstream, method: string, text: Buffer, adopt: Buffer | undefined, done: (o: Outcome) => void): void {
    this.current = up;
    const ended = (o: Outcome): void => {
      this.current = undefined;
      done(o);
    };
    if (adopt) up.adopt(this.socket, method, adopt, this.clock.s, ended);
    else up.send(this.socket, method, text, this.clock.s, ended);
  }

  /**
   * After an exchange that ended cleanly: the relay thread takes the connection to repeat it, when
   * nothing is pending either way and `replica` is the service's only one in service (the thread
   * keeps to one connection; with more replicas the lane spreads requests over them). The replica
   * counts one request in flight until the hand-back (so a retirement waits for it).
   */
  private offload(p: Plan, replica: Replica, port: number): boolean {
    const s = this.socket;
    if (this.closeAfter || this.ended || this.buf.length || s.destroyed || s.readableLength || s.writableLength) return false;
    const { reconciler } = this.o.services;
    if (!reconciler.sole(p.target.name, replica)) return false;
    const up = this.ups.get(`${replica.sandboxId}:${port}`);
    const x = up?.repeatable(p.head.method);
    if (!up || !x) return false;
    const id = offload(s, up.socket, { request: p.bytes, forwarded: p.text, ...x }, this.back);
    if (id === undefined) return false;
    reconciler.occupy(replica);
    this.relay = { id, plan: p, replica, up };
    return true;
  }

  /** The relay thread gave the connection back (lane-relay.ts says what the flags mean). */
  private readonly back = (flags: number, client: Buffer, upstream: Buffer, out: Buffer): void => {
    const r = this.relay;
    this.relay = undefined;
    if (!r) return;
    const { reconciler } = this.o.services;
    const s = this.socket;
    const key = `${r.up.sandbox}:${r.up.port}`;
    if (s.destroyed || flags & (RELAY_CUT | RELAY_DROP_UPSTREAM)) {
      if (this.ups.get(key) === r.up) this.ups.delete(key);
      r.up.detach().destroy();
    } else resumeReading(r.up.socket);
    if (s.destroyed || flags & RELAY_CUT) {
      reconciler.release(r.replica);
      return void s.destroy();
    }
    resumeReading(s);
    if (out.length) s.write(out);
    if (client.length) this.buf = client;
    // The request the thread sent is answered here; the replica's count goes with it.
    if (flags & RELAY_SENT) return this.serve(r.plan, r.replica, 0, { up: r.up, got: upstream });
    reconciler.release(r.replica);
    this.idle();
  };

  /** An error answer (no response began), as sendError writes it. */
  private error(code: ErrorCode, message: string): void {
    const body = JSON.stringify({ error: { code, message } });
    const status = ERROR_STATUS[code];
    this.socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
}

export interface FastLane {
  server: Server;
  /** Destroy the connections the lane holds (the ones handed over are the HTTP server's) and stop its clock. */
  close(): void;
}

/** A listener for the gateway's address: the lane first, Node's `http` server for the rest. */
export function fastLane(o: FastLaneOptions): FastLane {
  const held = new Map<Socket, Lane>();
  const clock = { s: 0 };
  watchVirtual(o.http);
  const tick = setInterval(() => {
    clock.s++;
    for (const lane of held.values()) lane.sweep(clock.s);
  }, 1000);
  tick.unref();
  // allowHalfOpen as Node's HTTP server has it: a connection handed over behaves as its own would.
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    held.set(socket, new Lane(socket, o, clock, () => held.delete(socket)));
  });
  return {
    server,
    close: () => {
      clearInterval(tick);
      for (const s of held.keys()) s.destroy();
      held.clear();
    },
  };
}
