/**
 * One kept-alive connection from the gateway's fast lane (fast-lane.ts) to a replica's port, held
 * by one client connection while it lasts: its listeners stay on for its whole life, so a request
 * costs a write, a read and the framing of the answer (http-head.ts) — no listener or timer made
 * per request (the lane's once-a-second sweep checks the head's deadline: `overdue`). One exchange at a time: `send` writes the request head and passes the response on
 * to the client until its framing says it ended.
 *
 * Bytes that come while no request is out (a forged response), a response that breaks HTTP's
 * rules, or anything past the end of a response end the connection: it is never reused after a
 * doubt.
 */
import type { Socket } from 'node:net';
import { RealmError, errorMessage } from '../util/errors.js';
import { BadResponse, BodyEnd, type BodyFraming, type ResponseHead, readResponseHead } from './http-head.js';
import type { Repeat } from './lane-relay.js';
import { RESPONSE_HEAD_MS } from './sandbox-agents.js';

const EMPTY = Buffer.alloc(0);

/** The replica failed before its answer began, on a connection used before: worth one fresh try. */
export class StaleConnection extends Error {}

/** How an exchange ended: `error` only when nothing reached the client (the caller may try again). */
export interface Outcome {
  error?: Error;
  /** The body was delimited by the replica closing: the client's connection must close after it. */
  closeAfter?: boolean;
}

interface Job {
  client: Socket;
  method: string;
  done: (o: Outcome) => void;
  got: Buffer;
  heard: boolean;
  /** Waiting for the client to drain (its 'drain' listened to). */
  waiting?: boolean;
  body?: { end: BodyEnd; framing: BodyFraming; keep: boolean };
}

export class Upstream {
  /** Closed, or closing: not to be used again. */
  dead = false;
  /** Exchanges sent on it (one more when it came kept from the shared pool). */
  private uses: number;
  private job: Job | undefined;
  /** The lane clock's second (fast-lane.ts) the request went out. */
  private sentAt = 0;
  private memo: { bytes: Buffer; method: string; head: ResponseHead; out: Buffer } | undefined;

  /** `used`: the connection served requests before (a kept one), so its first may find it stale. */
  constructor(
    readonly socket: Socket,
    readonly sandbox: string,
    readonly port: number,
    used: boolean,
  ) {
    this.uses = used ? 1 : 0;
    socket.on('data', this.onData).on('end', this.onClose).on('close', this.onClose).on('error', this.onClose);
    socket.setNoDelay(true);
    socket.resume();
  }

  get busy(): boolean {
    return this.job !== undefined;
  }

  /** Send `head` (a whole request head); `done` is called once the response was passed on, or failed. */
  send(client: Socket, method: string, head: Buffer, now: number, done: (o: Outcome) => void): void {
    this.begin(client, method, now, done);
    this.socket.write(head);
  }

  /**
   * The request went out through the relay thread (lane-relay.ts), which handed it back: the
   * exchange goes on here, `got` the response's first bytes as they came.
   */
  adopt(client: Socket, method: string, got: Buffer, now: number, done: (o: Outcome) => void): void {
    this.begin(client, method, now, done);
    if (got.length) this.onData(got);
  }

  /** An exchange starts: its request is out (sent at the lane clock's second `now`). */
  private begin(client: Socket, method: string, now: number, done: (o: Outcome) => void): void {
    this.job = { client, method, done, got: EMPTY, heard: false };
    this.uses++;
    this.sentAt = now;
  }

  /**
   * The last exchange as the relay thread may repeat it: its response head as it came and as the
   * client got it, and its body's length — when that exchange was a `method` request whose
   * response left this connection reusable with a body of known length, and nothing is pending.
   */
  repeatable(method: string): Omit<Repeat, 'request' | 'forwarded'> | undefined {
    const m = this.memo;
    if (!m || m.method !== method || !m.head.reusable || this.dead || this.job) return undefined;
    if (this.socket.readableLength || this.socket.writableLength) return undefined;
    const f = m.head.framing;
    const bodyLength = f.kind === 'none' ? 0 : f.kind === 'length' ? f.bytes : -1;
    if (bodyLength < 0) return undefined;
    return { responseHead: m.bytes, clientHead: m.out, bodyLength };
  }

  /** The client went: the exchange ends here, and so does this connection (its response is unread). */
  abort(): void {
    if (this.job) this.finish(false, {});
  }

  /** Take the listeners off (the connection goes back to the shared pool, idle). */
  detach(): Socket {
    this.socket.off('data', this.onData).off('end', this.onClose).off('close', this.onClose).off('error', this.onClose);
    this.dead = true;
    return this.socket;
  }

  /** Called each second: a request whose whole response head has not come within RESPONSE_HEAD_MS ends (504). */
  overdue(now: number): void {
    const j = this.job;
    if (j && !j.body && (now - this.sentAt) * 1000 >= RESPONSE_HEAD_MS)
      this.fail(
        new RealmError(
          'APP_TIMEOUT',
          `the replica in sandbox ${this.sandbox} sent no whole response head within ${RESPONSE_HEAD_MS / 1000} s`,
        ),
      );
  }

  private readonly onClose = (err?: unknown): void => {
    this.dead = true;
    const j = this.job;
    if (!j) return void this.socket.destroy();
    if (j.body?.framing.kind === 'close') return this.finish(false, { closeAfter: true });
    if (!j.body && this.uses > 1 && !j.heard) return this.fail(new StaleConnection('a kept connection closed'));
    const why = err instanceof Error ? err.message : 'socket hang up';
    this.fail(new RealmError('SERVICE_UNAVAILABLE', `the replica did not answer: ${why}`));
  };

  private readonly onDrain = (): void => void this.socket.resume();

  /** Before the head: the caller may try again; after it: the client's connection is cut. */
  private fail(e: Error): void {
    const j = this.job;
    if (!j) return;
    if (j.body) {
      j.client.destroy();
      return this.finish(false, {});
    }
    this.finish(false, { error: e });
  }

  private finish(keep: boolean, o: Outcome): void {
    const j = this.job;
    this.job = undefined;
    if (!keep) {
      this.dead = true;
      this.socket.destroy();
    }
    if (j?.waiting) j.client.off('drain', this.onDrain);
    j?.done(o);
  }

  private readonly onData = (chunk: Buffer): void => {
    const j = this.job;
    // Nothing was asked: a forged answer, or the start of a close. Either way the connection goes.
    if (!j) {
      this.dead = true;
      return void this.socket.destroy();
    }
    j.heard = true;
    if (j.body) return this.toClient(j, chunk);
    j.got = j.got.length ? Buffer.concat([j.got, chunk]) : chunk;
    try {
      for (;;) {
        const h = this.head(j);
        if (h === 'more') return;
        if (h.status === 101) throw new BadResponse('101 Switching Protocols to a request that asked for no upgrade');
        j.got = j.got.subarray(h.length);
        // An interim answer (100, 103) is not passed on, as Node's path does not.
        if (h.status < 200) continue;
        const body = { end: new BodyEnd(h.framing), framing: h.framing, keep: h.reusable };
        j.body = body;
        const rest = j.got;
        j.got = EMPTY;
        const n = body.end.take(rest);
        // The head and what came of the body with it leave in one write.
        const out = this.memo?.head === h ? this.memo.out : Buffer.from(h.out, 'latin1');
        const ok = j.client.write(n ? Buffer.concat([out, rest.subarray(0, n)]) : out);
        if (body.end.done) return this.finish(body.keep && n === rest.length, {});
        if (!ok) this.backOff(j);
        return;
      }
    } catch (e) {
      const why = e instanceof BadResponse ? `Parse Error: ${e.message}` : errorMessage(e);
      this.fail(new RealmError('SERVICE_UNAVAILABLE', `the replica did not answer: ${why}`));
    }
  };

  /**
   * The response head at the start of what came: a server answers mostly with the same head (the
   * Date changes once a second), so the last one is kept, compared byte for byte, and not read again.
   */
  private head(j: Job): ResponseHead | 'more' {
    const m = this.memo;
    const n = m?.bytes.length ?? 0;
    if (m && m.method === j.method && j.got.length >= n && j.got.compare(m.bytes, 0, n, 0, n) === 0) return m.head;
    const h = readResponseHead(j.got, j.method);
    if (h !== 'more' && h.status >= 200)
      this.memo = {
        bytes: Buffer.from(j.got.subarray(0, h.length)),
        method: j.method,
        head: h,
        out: Buffer.from(h.out, 'latin1'),
      };
    return h;
  }

  private toClient(j: Job, chunk: Buffer): void {
    const body = j.body;
    if (!body) return;
    let n: number;
    try {
      n = body.end.take(chunk);
    } catch (e) {
      return this.fail(e as Error);
    }
    if (n > 0 && !j.client.write(n === chunk.length ? chunk : chunk.subarray(0, n))) this.backOff(j);
    // A byte past the end of the response is one nobody asked for: the connection goes.
    if (body.end.done) this.finish(body.keep && n === chunk.length, {});
  }

  /** The client is behind: the replica's bytes wait in the kernel until it drains. */
  private backOff(j: Job): void {
    this.socket.pause();
    if (!j.waiting) j.client.on('drain', this.onDrain);
    j.waiting = true;
  }
}
