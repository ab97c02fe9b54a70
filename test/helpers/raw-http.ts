/**
 * A raw HTTP/1.1 client connection for gateway tests: bytes written as given (pipelined, odd
 * framings), responses read one by one (length, chunked or to the close), latin1 throughout.
 */
import { connect, type Socket } from 'node:net';

export interface Answer {
  status: number;
  head: string;
  body: string;
}

/** One client connection; `send` writes bytes, `answers(n)` reads n responses (lengths, chunked or to the close). */
export class Conn {
  private buf = '';
  private closed = false;
  private wake: (() => void) | undefined;
  readonly socket: Socket;

  constructor(url: string) {
    const u = new URL(url);
    this.socket = connect(Number(u.port), u.hostname);
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => {
      this.buf += d;
      this.wake?.();
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  send(s: string): void {
    this.socket.write(s);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private async more(): Promise<void> {
    if (this.closed) throw new Error(`the connection closed; unread: ${JSON.stringify(this.buf)}`);
    await new Promise<void>((r) => (this.wake = r));
  }

  async answer(method = 'GET'): Promise<Answer> {
    let end: number;
    while ((end = this.buf.indexOf('\r\n\r\n')) < 0) await this.more();
    const head = this.buf.slice(0, end);
    this.buf = this.buf.slice(end + 4);
    const status = Number(head.split(' ')[1]);
    const field = (n: string): string | undefined => new RegExp(`^${n}:\\s*(.*)$`, 'im').exec(head)?.[1]?.trim();
    if (method === 'HEAD' || status === 204 || status === 304) return { status, head, body: '' };
    const length = field('content-length');
    if (length !== undefined) {
      while (this.buf.length < Number(length)) await this.more();
      const body = this.buf.slice(0, Number(length));
      this.buf = this.buf.slice(Number(length));
      return { status, head, body };
    }
    if (/chunked/i.test(field('transfer-encoding') ?? '')) {
      let body = '';
      for (;;) {
        let eol: number;
        while ((eol = this.buf.indexOf('\r\n')) < 0) await this.more();
        const size = parseInt(this.buf.slice(0, eol), 16);
        while (this.buf.length < eol + 2 + size + 2) await this.more();
        body += this.buf.slice(eol + 2, eol + 2 + size);
        this.buf = this.buf.slice(eol + 2 + size + 2);
        if (size === 0) return { status, head, body };
      }
    }
    while (!this.closed) await this.more().catch(() => undefined);
    const body = this.buf;
    this.buf = '';
    return { status, head, body };
  }

  close(): void {
    this.socket.destroy();
  }
}

export const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
