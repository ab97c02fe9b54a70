/**
 * The host side of an allow-list microVM's forwarder (native/vmagent-net.c): over the unix socket
 * QEMU serves for the guest's port "realm-net", each connection the forwarder accepted on the
 * guest's 127.0.0.1:PORT becomes a connection to the sandbox's proxy socket — the only place it
 * can lead. Frames are type u8 | id u32be | len u32be | payload, with 'C' (new), 'D' (bytes),
 * 'A' (bytes taken) and 'Z' (closed); each direction keeps at most WINDOW bytes unacknowledged.
 * A session starts with our 'H' and counts from the forwarder's answering 'H' "realm-net-1":
 * anything before it is an earlier session's. The 'H' is repeated until answered: a guest that
 * reads it before it learns the host is connected again cannot write its answer yet.
 */
import { connect, type Socket } from 'node:net';

/** Bytes in flight per connection and direction (native/vmagent.h's WINDOW). */
export const WINDOW = 256 * 1024;
const CHUNK = 65536;
const MAGIC = Buffer.from('realm-net-1');
const HELLO = Buffer.concat([Buffer.from([0x48, 0, 0, 0, 0, 0, 0, 0, MAGIC.length]), MAGIC]);

interface Conn {
  sock: Socket;
  /** Bytes sent to the guest it has not acknowledged. */
  inflight: number;
  /** The guest closed it: nothing more goes there. */
  ended: boolean;
}

export class ProxyRelay {
  private buf: Buffer = Buffer.alloc(0);
  private started = false;
  private readonly conns = new Map<number, Conn>();
  private readonly hello: NodeJS.Timeout;

  private constructor(
    private readonly sock: Socket,
    private readonly proxySocket: string,
  ) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('close', () => this.closeAll());
    sock.on('error', () => undefined);
    this.send('H', 0);
    this.hello = setInterval(() => this.send('H', 0), 500);
    this.hello.unref();
  }

  /** Connect to QEMU's end of the port (`path`), relaying to `proxySocket`. */
  static async open(path: string, proxySocket: string, timeoutMs: number): Promise<ProxyRelay> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const sock = await new Promise<Socket | undefined>((resolve) => {
        const s = connect(path);
        s.once('connect', () => resolve(s));
        s.once('error', () => resolve(undefined));
      });
      if (sock) return new ProxyRelay(sock, proxySocket);
      if (Date.now() > deadline)
        throw new Error(`the VM's proxy port (${path}) did not open within ${Math.round(timeoutMs / 1000)} s`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.sock.destroy();
    this.closeAll();
  }

  private send(type: string, id: number, payload: Buffer = Buffer.alloc(0)): void {
    if (this.sock.destroyed) return;
    const h = Buffer.alloc(9);
    h.write(type, 0, 'latin1');
    h.writeUInt32BE(id, 1);
    h.writeUInt32BE(payload.length, 5);
    this.sock.write(payload.length ? Buffer.concat([h, payload]) : h);
  }

  private ack(id: number, n: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    this.send('A', id, b);
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (!this.started) {
      const at = this.buf.indexOf(HELLO);
      if (at < 0) {
        // Keep only what could be the start of the answer.
        this.buf = this.buf.subarray(Math.max(0, this.buf.length - HELLO.length + 1));
        return;
      }
      this.started = true;
      clearInterval(this.hello);
      this.buf = this.buf.subarray(at + HELLO.length);
    }
    while (this.buf.length >= 9) {
      const len = this.buf.readUInt32BE(5);
      if (len > CHUNK) {
        // Not a frame the forwarder sends: the session cannot be trusted any more.
        this.close();
        return;
      }
      if (this.buf.length < 9 + len) break;
      const type = String.fromCharCode(this.buf[0] ?? 0);
      const id = this.buf.readUInt32BE(1);
      const payload = Buffer.from(this.buf.subarray(9, 9 + len));
      this.buf = this.buf.subarray(9 + len);
      this.onFrame(type, id, payload);
    }
  }

  private onFrame(type: string, id: number, payload: Buffer): void {
    const c = this.conns.get(id);
    switch (type) {
      case 'C':
        if (!c) this.open(id);
        break;
      case 'D':
        if (!c || c.ended) {
          this.send('Z', id);
          break;
        }
        c.sock.write(payload, () => this.ack(id, payload.length));
        break;
      case 'A':
        if (c && payload.length === 4) {
          c.inflight = Math.max(0, c.inflight - payload.readUInt32BE(0));
          if (c.inflight < WINDOW && c.sock.isPaused()) c.sock.resume();
        }
        break;
      case 'Z':
        if (c) {
          // The guest's side is closed: what it sent goes out, then the connection ends.
          c.ended = true;
          this.conns.delete(id);
          c.sock.end(() => c.sock.destroy());
        }
        break;
      default:
        break;
    }
  }

  private open(id: number): void {
    const sock = connect(this.proxySocket);
    const c: Conn = { sock, inflight: 0, ended: false };
    this.conns.set(id, c);
    sock.on('data', (d: Buffer) => {
      if (c.ended) return;
      for (let off = 0; off < d.length; off += CHUNK) this.send('D', id, d.subarray(off, off + CHUNK));
      c.inflight += d.length;
      if (c.inflight >= WINDOW) sock.pause();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (this.conns.get(id) !== c) return;
      this.conns.delete(id);
      this.send('Z', id);
    });
  }

  private closeAll(): void {
    clearInterval(this.hello);
    for (const c of this.conns.values()) {
      c.ended = true;
      c.sock.destroy();
    }
    this.conns.clear();
  }
}
