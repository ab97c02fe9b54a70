/**
 * Strict, small HTTP/1.1 framing for the gateway's fast lane (fast-lane.ts): a request head the
 * lane may serve itself, a response head from a replica, and where that response's body ends.
 *
 * The request side is deliberately narrow: a GET or HEAD whose head is whole in the bytes at
 * hand, CRLF line ends, token header names, visible ASCII values, each name once, and nothing
 * that frames a body or changes the connection (Content-Length, Transfer-Encoding, Upgrade,
 * Expect, Connection other than keep-alive). Anything else is `other`: the caller hands the
 * connection, bytes untouched, to Node's HTTP server, which parses it as it always did — so no
 * request is ever framed two ways.
 *
 * The response side reads what an untrusted replica sends: any doubt (a bare CR or LF, a folded
 * line, two lengths, a coding other than chunked, a head past MAX_RESPONSE_HEAD) is an error,
 * never a guess; the caller then drops the connection rather than reuse it.
 */

/** The longest request head the fast lane takes (Node's server takes up to 16 KiB itself). */
export const MAX_REQUEST_HEAD = 8 * 1024;
/** The longest response head read from a replica (Node's client: 16 KiB). */
export const MAX_RESPONSE_HEAD = 16 * 1024;

export interface RequestHead {
  method: 'GET' | 'HEAD';
  /** The request target as sent (origin form: starts with /). */
  target: string;
  /** Header names in lower case, each once, with their values (surrounding blanks taken off). */
  headers: Map<string, string>;
  /** Bytes of the head, its blank line included. */
  length: number;
}

const REQUEST_LINE = /^(GET|HEAD) (\/[\x21-\x7e]*) HTTP\/1\.1$/;
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\x20-\x7e\t]*?)[ \t]*$/;
/** Request headers that send a request to Node's server: a body, an upgrade, an expectation, a close. */
const NOT_FAST = new Set(['content-length', 'transfer-encoding', 'upgrade', 'expect']);
const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * The request head at the start of `buf`: `more` when its end is not in `buf` yet (and it is
 * short enough to be worth waiting for), `other` when the fast lane does not serve it.
 */
export function parseRequestHead(buf: Buffer): RequestHead | 'more' | 'other' {
  const end = buf.indexOf(CRLF2);
  if (end < 0) return buf.length > MAX_REQUEST_HEAD ? 'other' : 'more';
  if (end + 4 > MAX_REQUEST_HEAD) return 'other';
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const first = REQUEST_LINE.exec(lines[0] ?? '');
  if (!first) return 'other';
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const m = HEADER_LINE.exec(lines[i] ?? '');
    if (!m) return 'other';
    const name = (m[1] ?? '').toLowerCase();
    const value = m[2] ?? '';
    if (headers.has(name) || NOT_FAST.has(name)) return 'other';
    if (name === 'connection' && value.toLowerCase() !== 'keep-alive') return 'other';
    headers.set(name, value);
  }
  if (!headers.has('host')) return 'other';
  return { method: first[1] as 'GET' | 'HEAD', target: first[2] ?? '/', headers, length: end + 4 };
}

/** How a response's body is framed (RFC 9112 6.3). */
export type BodyFraming = { kind: 'none' } | { kind: 'length'; bytes: number } | { kind: 'chunked' } | { kind: 'close' };

export interface ResponseHead {
  status: number;
  /** Bytes of the head, its blank line included. */
  length: number;
  framing: BodyFraming;
  /** The connection may carry another request: HTTP/1.1 and no `Connection: close`. */
  reusable: boolean;
  /** The head for the client: HTTP/1.1, hop-by-hop fields out, the framing the body is passed on with. */
  out: string;
}

/** A whole head: a status line, then header lines of a token, a colon and visible ASCII (CR and LF only as line ends). */
const RESPONSE_HEAD = /^HTTP\/1\.([01]) (\d{3})(?: [\x20-\x7e\t]*)?(?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\x20-\x7e\t]*)*$/;
/** The lines that frame the body or belong to one connection. */
const FRAMING_LINE =
  /\r\n(connection|keep-alive|proxy-connection|transfer-encoding|te|trailer|upgrade|content-length):[ \t]*([\x20-\x7e\t]*?)[ \t]*(?=\r\n|$)/giy;
const HOP_LINE = /\r\n(?:connection|keep-alive|proxy-connection|transfer-encoding|te|trailer|upgrade):[^\r]*/gi;
const CLOSE_TOKEN = /(?:^|,)[ \t]*close[ \t]*(?:,|$)/i;

/** A replica's answer broke HTTP's rules: the connection is dropped, never reused. */
export class BadResponse extends Error {}

/**
 * The response head at the start of `buf` (to a request of `method`), or `more`; throws
 * BadResponse when it cannot be one. Names once, lengths that agree, chunked as the only coding.
 */
export function readResponseHead(buf: Buffer, method: string): ResponseHead | 'more' {
  const end = buf.indexOf(CRLF2);
  if (end < 0 ? buf.length > MAX_RESPONSE_HEAD : end + 4 > MAX_RESPONSE_HEAD)
    throw new BadResponse(`a response head longer than ${MAX_RESPONSE_HEAD} bytes`);
  if (end < 0) return 'more';
  const s = buf.toString('latin1', 0, end);
  const m = RESPONSE_HEAD.exec(s);
  if (!m) throw new BadResponse('a malformed status line or header line');
  const status = Number(m[2]);
  let length: string | undefined;
  let coding: string | undefined;
  let closes = false;
  let hop = false;
  for (let i = s.indexOf('\r\n'); i >= 0; i = s.indexOf('\r\n', i + 2)) {
    FRAMING_LINE.lastIndex = i;
    const f = FRAMING_LINE.exec(s);
    if (!f) continue;
    const name = (f[1] ?? '').toLowerCase();
    const value = f[2] ?? '';
    if (name === 'content-length') {
      if (length !== undefined && length !== value) throw new BadResponse('two different Content-Length headers');
      length = value;
      continue;
    }
    hop = true;
    if (name === 'transfer-encoding') {
      if (coding !== undefined) throw new BadResponse('two Transfer-Encoding headers');
      coding = value.toLowerCase();
    } else if (name === 'connection' && CLOSE_TOKEN.test(value)) closes = true;
  }
  if (coding !== undefined && coding !== 'chunked') throw new BadResponse(`a Transfer-Encoding other than chunked: ${coding}`);
  if (coding !== undefined && length !== undefined) throw new BadResponse('both Transfer-Encoding and Content-Length');
  if (length !== undefined && !/^\d{1,15}$/.test(length)) throw new BadResponse(`a malformed Content-Length: ${length}`);
  let framing: BodyFraming;
  if (method === 'HEAD' || status === 204 || status === 304 || status < 200) framing = { kind: 'none' };
  else if (coding) framing = { kind: 'chunked' };
  else if (length !== undefined) framing = { kind: 'length', bytes: Number(length) };
  else framing = { kind: 'close' };
  let out = m[1] === '1' ? s : `HTTP/1.1${s.slice(8)}`;
  if (hop) out = out.replace(HOP_LINE, '');
  if (framing.kind === 'chunked') out += '\r\ntransfer-encoding: chunked';
  else if (framing.kind === 'close') out += '\r\nconnection: close';
  return { status, length: end + 4, framing, reusable: m[1] === '1' && !closes, out: `${out}\r\n\r\n` };
}

/** The longest chunk-size line (size and extensions) and trailer section taken. */
const MAX_CHUNK_LINE = 1024;
const MAX_TRAILERS = 16 * 1024;

const enum Chunk {
  Size,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  Trailer,
  TrailerLf,
  Done,
}

/**
 * Where a body ends. `take(buf)` says how many of `buf`'s bytes belong to the body (all of them
 * until the end is reached); `done` once it has. A close-delimited body never ends this way.
 */
export class BodyEnd {
  done: boolean;
  private left: number;
  private state = Chunk.Size;
  private size = 0;
  private line = 0;
  private trailerBytes = 0;
  private sizeDigits = 0;
  private inExt = false;

  constructor(private readonly framing: BodyFraming) {
    this.left = framing.kind === 'length' ? framing.bytes : 0;
    this.done = framing.kind === 'none' || (framing.kind === 'length' && framing.bytes === 0);
  }

  take(buf: Buffer): number {
    if (this.done) return 0;
    switch (this.framing.kind) {
      case 'close':
        return buf.length;
      case 'length': {
        const n = Math.min(this.left, buf.length);
        this.left -= n;
        this.done = this.left === 0;
        return n;
      }
      case 'chunked':
        return this.chunked(buf);
      case 'none':
        return 0;
    }
  }

  private chunked(buf: Buffer): number {
    let i = 0;
    while (i < buf.length && this.state !== Chunk.Done) {
      if (this.state === Chunk.Data) {
        const n = Math.min(this.size, buf.length - i);
        this.size -= n;
        i += n;
        if (this.size === 0) this.state = Chunk.DataCr;
        continue;
      }
      const c = buf[i++] ?? 0;
      switch (this.state) {
        case Chunk.Size:
          if (c === 0x0d) {
            if (this.sizeDigits === 0) throw new BadResponse('a chunk without a size');
            this.state = Chunk.SizeLf;
          } else if (++this.line > MAX_CHUNK_LINE) throw new BadResponse('a chunk-size line too long');
          else if (!this.inExt && hexValue(c) >= 0) {
            if (++this.sizeDigits > 12) throw new BadResponse('a chunk larger than 2^48 bytes');
            this.size = this.size * 16 + hexValue(c);
          } else if (c === 0x3b || c === 0x20 || c === 0x09) this.inExt = this.sizeDigits > 0 || fail('a chunk without a size');
          else if (!this.inExt || c < 0x20 || c > 0x7e) throw new BadResponse('a malformed chunk-size line');
          break;
        case Chunk.SizeLf:
          if (c !== 0x0a) throw new BadResponse('a chunk-size line not ended by CRLF');
          this.state = this.size === 0 ? Chunk.Trailer : Chunk.Data;
          this.line = 0;
          this.sizeDigits = 0;
          this.inExt = false;
          break;
        case Chunk.DataCr:
          if (c !== 0x0d) throw new BadResponse('chunk data longer than its size');
          this.state = Chunk.DataLf;
          break;
        case Chunk.DataLf:
          if (c !== 0x0a) throw new BadResponse('chunk data not ended by CRLF');
          this.state = Chunk.Size;
          break;
        case Chunk.Trailer:
          if (++this.trailerBytes > MAX_TRAILERS) throw new BadResponse('trailers longer than 16 KiB');
          if (c === 0x0d) this.state = Chunk.TrailerLf;
          else if (c === 0x0a || (c < 0x20 && c !== 0x09) || c === 0x7f) throw new BadResponse('a malformed trailer line');
          else this.line++;
          break;
        case Chunk.TrailerLf:
          if (c !== 0x0a) throw new BadResponse('a trailer line not ended by CRLF');
          if (this.line === 0) this.state = Chunk.Done;
          else this.state = Chunk.Trailer;
          this.line = 0;
          break;
      }
    }
    this.done = this.state === Chunk.Done;
    return i;
  }
}

function fail(why: string): never {
  throw new BadResponse(why);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}
