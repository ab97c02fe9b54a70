/**
 * Back-pressure for WebSocket output. `ws.send` never says no: a client that does not read would
 * have the daemon queue for it without end. The sender counts what is handed to the socket and
 * not yet written out, and past a high-water mark tells its source to wait.
 */
import type { WSContext } from 'hono/ws';

/** Bytes a client may have unsent before its source waits (it resumes under half of this). */
export const WS_HIGH_WATER = 1024 * 1024;

/** The `ws` library's socket under hono's context: `send` calls back once the data is written. */
interface RawSocket {
  send(data: string, cb: (err?: Error) => void): void;
}

export class SocketSender {
  private inFlight = 0;
  private waiters: (() => void)[] = [];

  constructor(private readonly ws: WSContext) {}

  /** Send a text frame; a returned promise settles once the client took enough to send more. */
  send(text: string): void | Promise<void> {
    const raw = this.ws.raw as Partial<RawSocket> | undefined;
    if (typeof raw?.send !== 'function') {
      this.ws.send(text);
      return;
    }
    const n = Buffer.byteLength(text);
    this.inFlight += n;
    raw.send(text, () => {
      this.inFlight -= n;
      if (this.inFlight <= WS_HIGH_WATER / 2) this.release();
    });
    if (this.inFlight > WS_HIGH_WATER) return new Promise((r) => this.waiters.push(r));
  }

  /** The socket closed: nothing waits on it any more. */
  close(): void {
    this.release();
  }

  private release(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
