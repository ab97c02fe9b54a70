/**
 * CGI (RFC 3875) for WASI preview 1 modules: the request as environment variables and stdin, the
 * response as header lines on stdout, a blank line, then the body.
 */
import type { IncomingHttpHeaders } from 'node:http';

export interface CgiRequest {
  method: string;
  /** The path after /NAME (`/` at least), undecoded. */
  pathInfo: string;
  query: string;
  headers: IncomingHttpHeaders;
  bodyLength: number;
  httpVersion: string;
  remoteAddress: string;
  serverName: string;
  serverPort: number;
  /** The app's name: SCRIPT_NAME is /NAME. */
  app: string;
}

/** The meta-variables of RFC 3875 section 4.1, and HTTP_* for the other headers. */
export function cgiEnv(req: CgiRequest): Record<string, string> {
  const env: Record<string, string> = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: req.method,
    SCRIPT_NAME: `/${req.app}`,
    PATH_INFO: req.pathInfo,
    QUERY_STRING: req.query,
    SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
    SERVER_SOFTWARE: 'realm-gateway',
    SERVER_NAME: req.serverName,
    SERVER_PORT: String(req.serverPort),
    REMOTE_ADDR: req.remoteAddress,
  };
  const type = req.headers['content-type'];
  if (type) env.CONTENT_TYPE = type;
  if (req.bodyLength > 0 || req.headers['content-length'] !== undefined) env.CONTENT_LENGTH = String(req.bodyLength);
  for (const [name, value] of Object.entries(req.headers)) {
    // Content-Type and -Length have their own variables; Authorization and proxy credentials are
    // not passed (RFC 3875 4.1.18 leaves them out so that a script does not see credentials).
    if (value === undefined || ['content-type', 'content-length', 'authorization', 'proxy-authorization'].includes(name))
      continue;
    env[`HTTP_${name.toUpperCase().replace(/-/g, '_')}`] = Array.isArray(value) ? value.join(', ') : value;
  }
  return env;
}

export interface CgiHead {
  status: number;
  statusText?: string;
  headers: [string, string][];
}

/** Headers a CGI response may not set: the gateway frames the response itself. */
const HOP_BY_HOP = new Set(['connection', 'transfer-encoding', 'keep-alive', 'upgrade', 'content-length']);

const MAX_HEAD = 64 * 1024;

/**
 * Reads a CGI response's head from the program's stdout as it comes: `push` returns the head and
 * the body bytes that followed it once the blank line is seen, null before; it throws on a head
 * that is not CGI.
 */
export class CgiHeadParser {
  private buf = Buffer.alloc(0);

  push(chunk: Buffer): { head: CgiHead; rest: Buffer } | null {
    this.buf = Buffer.concat([this.buf, chunk]);
    const crlf = this.buf.indexOf('\r\n\r\n');
    const lf = this.buf.indexOf('\n\n');
    const end = crlf >= 0 && (lf < 0 || crlf < lf) ? { at: crlf, len: 4 } : lf >= 0 ? { at: lf, len: 2 } : null;
    if (!end) {
      if (this.buf.length > MAX_HEAD) throw new Error(`the response's header lines are longer than ${MAX_HEAD} bytes`);
      return null;
    }
    const head = parseHead(this.buf.subarray(0, end.at).toString('latin1'));
    return { head, rest: this.buf.subarray(end.at + end.len) };
  }
}

export function parseHead(text: string): CgiHead {
  const out: CgiHead = { status: 200, headers: [] };
  let location = false;
  let status = false;
  for (const line of text.split(/\r?\n/)) {
    if (!line) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`"${line.slice(0, 80)}" is not a header line (Name: value)`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new Error(`"${name.slice(0, 80)}" is not a header name`);
    if (/[\0\r\n]/.test(value)) throw new Error(`header ${name} has a control character`);
    const lower = name.toLowerCase();
    if (lower === 'status') {
      const m = /^(\d{3})(?:\s+(.*))?$/.exec(value);
      const code = m ? Number(m[1]) : NaN;
      if (!m || code < 200 || code > 599)
        throw new Error(`"Status: ${value.slice(0, 80)}" is not a status (200-599, e.g. 404 Not Found)`);
      out.status = code;
      if (m[2]) out.statusText = m[2];
      status = true;
    } else if (!HOP_BY_HOP.has(lower)) {
      if (lower === 'location') location = true;
      out.headers.push([name, value]);
    }
  }
  // RFC 3875 6.2.3: a client redirect without a Status is a 302.
  if (location && !status) out.status = 302;
  return out;
}
