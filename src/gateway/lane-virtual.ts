/**
 * One request the gateway's fast lane (fast-lane.ts) parsed but does not serve itself — a plain
 * GET or HEAD for an app, a preview URL, a service with no healthy replica here, a refusal to
 * explain — answered by Node's HTTP server on a connection made for it alone: a Duplex that holds
 * exactly that request's head (such a request has no body, so where it ends is known) and writes
 * the answer to the client's socket. Once the response is finished the lane has the client again,
 * so one answer from Node's path (a 503 while a service starts) does not keep a kept-alive client
 * off the lane for good. A request whose end the lane cannot know (a body, an upgrade) hands the
 * whole connection over instead.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Duplex } from 'node:stream';

export class VirtualSocket extends Duplex {
  /** Node's server ended this connection (a `Connection: close` answer, an error): so ends the client's. */
  closes = false;
  private over = false;

  constructor(
    private readonly real: Socket,
    head: Buffer,
    private readonly onOver: (closes: boolean) => void,
  ) {
    super({ allowHalfOpen: true });
    this.push(head);
  }

  get remoteAddress(): string | undefined {
    return this.real.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.real.remotePort;
  }
  get remoteFamily(): string | undefined {
    return this.real.remoteFamily;
  }
  get localAddress(): string | undefined {
    return this.real.localAddress;
  }
  get localPort(): number | undefined {
    return this.real.localPort;
  }
  address(): AddressInfo | object {
    return this.real.address();
  }
  // The lane's own deadlines apply to the client's socket; Node's server sets these on every connection.
  setTimeout(): this {
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.real.destroyed) return cb(new Error('the client went'));
    if (this.real.write(chunk)) cb();
    else this.real.once('drain', () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.closes = true;
    cb();
    this.finish();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    // Destroyed before its answer was finished (a request Node's parser refused): the client's goes too.
    if (!this.over) this.closes = true;
    this.finish();
    cb(err);
  }

  /** The answer is finished (or the connection is over): the lane has the client again. */
  finish(): void {
    if (this.over) return;
    this.over = true;
    this.onOver(this.closes);
    if (!this.destroyed) this.destroy();
  }
}

/** Make `server` give each virtual connection's client back to the lane once its response is finished. */
export function watchVirtual(server: Server): void {
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const s = req.socket as unknown;
    if (!(s instanceof VirtualSocket)) return;
    res.once('finish', () => setImmediate(() => s.finish()));
    res.once('close', () => setImmediate(() => s.finish()));
  });
}
