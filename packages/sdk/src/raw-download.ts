/**
 * A blob's download written to a file straight from the socket: one GET over a connection of its
 * own, the answer's body read by the kernel into the file's write buffers (net's `onread` with a
 * buffer that is handed out anew for each read), hashed there, and written a few MiB at a time
 * while the next buffer fills. node:http's answer stream allocates a fresh 64 KiB buffer for each
 * read and runs its parser and stream machinery over it, which costs a download about as much
 * CPU as hashing it; this path costs little more than the hash and the copies the kernel makes.
 *
 * Plain HTTP only (the daemon's unix socket or an http:// URL); `Blobs.download` takes
 * node:http's way over TLS.
 */
import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';

/** Bytes per file write: two buffers of this size in turn, one filled by the socket while the other is written. */
const BATCH = 4 * 1024 * 1024;
/** A buffer with less room than this left is written: reads into it would come in small pieces. */
const MIN_READ = 256 * 1024;
/** Longest answer head accepted. */
const MAX_HEAD = 64 * 1024;

export interface RawTarget {
  /** The daemon's unix socket, or undefined for `url`. */
  socketPath: string | undefined;
  /** `http://HOST:PORT` (the Host header over a socket: localhost). */
  url: string;
}

/** What came back: a 2xx status and the body bytes written and hashed, or an error status and its body. */
export type RawResult = { ok: true; status: number; written: number } | { ok: false; status: number; body: string };

/** Whether this client's daemon can be read this way (plain HTTP). */
export function rawCapable(t: RawTarget): boolean {
  return t.socketPath !== undefined || t.url.startsWith('http://');
}

/**
 * GET `path` and append a 2xx answer's body to `fh` (at its end), each byte hashed into `hash`
 * before it is written. On a failure after some of the body came, what came is written (and was
 * hashed) before it rejects, so a caller can go on from the file's size with a Range.
 */
export function rawDownload(
  t: RawTarget,
  path: string,
  headers: Record<string, string>,
  fh: FileHandle,
  hash: Hash,
  signal?: AbortSignal,
): Promise<RawResult> {
  const host = t.socketPath ? 'localhost' : new URL(t.url).host;
  const lines = [`GET ${path} HTTP/1.1`, `host: ${host}`, 'connection: close'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  const request = `${lines.join('\r\n')}\r\n\r\n`;

  return new Promise<RawResult>((resolve, reject) => {
    const bufs = [Buffer.allocUnsafe(BATCH), Buffer.allocUnsafe(BATCH)];
    let cur = 0; // the buffer the socket reads into
    let fill = 0; // bytes of it holding body (or, before the body, the answer's head)
    let writing: Promise<unknown> | null = null;
    let writeError: unknown = null;
    let head = true;
    let status = 0;
    let length = -1; // the body's Content-Length; -1: read to the end (errors only)
    let received = 0;
    let written = 0;
    let errorBody: Buffer[] | null = null;
    let chunked = false;
    let settled = false;
    /** The socket waits for the disk: the next read goes to the buffer being written, once it is written. */
    let switching = false;

    /** Hand a full (or the last) buffer to the disk; the socket reads into the other meanwhile. */
    const flush = (): void => {
      const [buf, n] = [bufs[cur] as Buffer, fill];
      cur ^= 1;
      fill = 0;
      if (n === 0) return;
      writing = (async () => {
        let off = 0;
        while (off < n) off += (await fh.write(buf, off, n - off)).bytesWritten;
        written += n;
      })().then(
        () => {
          writing = null;
        },
        (e: unknown) => {
          writing = null;
          writeError = e;
          finish(e);
        },
      );
    };
    const finish = (e?: unknown): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      signal?.removeEventListener('abort', onAbort);
      void (async () => {
        // What was hashed is written before this settles, error or not.
        if (!head && !errorBody && writeError === null) {
          await writing;
          if (fill > 0) flush();
          await writing;
        }
        if (writeError !== null) return reject(asError(writeError));
        if (e !== undefined) return reject(asError(e));
        if (errorBody) {
          const text = Buffer.concat(errorBody);
          return resolve({ ok: false, status, body: (chunked ? dechunk(text) : text).toString('utf8') });
        }
        resolve({ ok: true, status, written });
      })();
    };
    const onAbort = (): void => finish(signal?.reason ?? new DOMException('This operation was aborted', 'AbortError'));

    /** The answer's head has come: its status and length; the body bytes read with it stay in the buffer. */
    const parseHead = (end: number): void => {
      const buf = bufs[cur] as Buffer;
      const text = buf.toString('latin1', 0, end);
      const [statusLine = '', ...fields] = text.split('\r\n');
      status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
      for (const f of fields) {
        const i = f.indexOf(':');
        const k = f.slice(0, i).trim().toLowerCase();
        const v = f.slice(i + 1).trim();
        if (k === 'content-length') length = Number(v);
        if (k === 'transfer-encoding' && /chunked/i.test(v)) chunked = true;
      }
      head = false;
      const rest = buf.subarray(end + 4, fill);
      if (status < 200 || status >= 300) {
        errorBody = [Buffer.from(rest)];
        fill = 0;
      } else {
        if (chunked || !(length >= 0)) return finish(new Error('the daemon sent a blob without a Content-Length'));
        // The body's first bytes move to the buffer's start, where the file's bytes begin.
        rest.copy(buf, 0);
        fill = rest.length;
        hash.update(buf.subarray(0, fill));
      }
      received = rest.length;
    };

    const socket: Socket = connect({
      ...(t.socketPath
        ? { path: t.socketPath }
        : { host: new URL(t.url).hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(new URL(t.url).port || 80) }),
      onread: {
        // Each read lands where the current buffer's body ends: the kernel copies straight into it.
        // (Asked right after each callback: while the socket waits for the disk, the buffer it will switch to.)
        buffer: () => (switching ? bufs[cur ^ 1] : (bufs[cur] as Buffer).subarray(fill)),
        callback: (n: number, buf: Uint8Array): boolean => {
          if (settled) return false;
          if (errorBody) {
            errorBody.push(Buffer.from(buf.subarray(0, n)));
            received += n;
            if (length >= 0 && received >= length) finish();
            return true;
          }
          fill += n;
          if (head) {
            const end = (bufs[cur] as Buffer).subarray(0, fill).indexOf('\r\n\r\n');
            if (end < 0) {
              if (fill > MAX_HEAD) finish(new Error('the answer has no end of its head'));
              return true;
            }
            parseHead(end);
            if (errorBody) {
              if (length >= 0 && received >= length) finish();
              return true;
            }
          } else {
            received += n;
            hash.update(buf.subarray(0, n));
          }
          if (received > length) {
            finish(new Error(`the daemon sent more than the ${length} bytes it announced`));
            return false;
          }
          if (received === length) {
            finish();
            return false;
          }
          if (BATCH - fill < MIN_READ) {
            // Both buffers busy: wait for the disk (the daemon waits on its socket meanwhile).
            if (writing) {
              switching = true;
              void writing.then(() => {
                if (settled) return;
                flush();
                switching = false;
                socket.resume();
              });
              return false;
            }
            flush();
          }
          return true;
        },
      },
    });
    socket.once('connect', () => socket.write(request));
    socket.once('error', (e) => finish(e));
    socket.once('end', () => {
      if (errorBody && length < 0) return finish();
      finish(new Error(`the answer ended after ${received} of its ${length} bytes`));
    });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

/** A chunked body's data (an error answer's; blobs always come with their length). */
function dechunk(b: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = b.indexOf('\r\n', at);
    if (eol < 0) break;
    const n = parseInt(b.toString('latin1', at, eol), 16);
    if (!(n > 0)) break;
    parts.push(b.subarray(eol + 2, eol + 2 + n));
    at = eol + 2 + n + 2;
  }
  return Buffer.concat(parts);
}
