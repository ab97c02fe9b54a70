/**
 * SOCKS5 (RFC 1928) on the same socket as the HTTP proxy, for tools that speak it (curl
 * --socks5-hostname, git's core.sshCommand with nc -X 5, language clients): no authentication,
 * CONNECT only (UDP ASSOCIATE and BIND are refused, so UDP never leaves the sandbox), and the
 * destination is checked by the same rules as HTTP, by the name the program asked for.
 */
import { type Socket, connect } from 'node:net';

export type Resolve = (host: string, port: number) => Promise<{ address: string } | { denied: string }>;

/** Reply codes. */
const OK = 0x00;
const NOT_ALLOWED = 0x02;
const UNREACHABLE = 0x04;
const NOT_SUPPORTED = 0x07;
const BAD_ADDRESS = 0x08;

/** Read exactly `n` bytes (or null when the client went away). */
function readExact(sock: Socket, n: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const tryRead = (): void => {
      const b = sock.read(n) as Buffer | null;
      if (b) {
        cleanup();
        resolve(b);
      }
    };
    const gone = (): void => {
      cleanup();
      resolve(null);
    };
    const cleanup = (): void => {
      sock.off('readable', tryRead);
      sock.off('close', gone);
      sock.off('end', gone);
    };
    sock.on('readable', tryRead);
    sock.once('close', gone);
    sock.once('end', gone);
    tryRead();
  });
}

function reply(sock: Socket, code: number): void {
  sock.write(Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]));
}

/** Serve one SOCKS5 client whose first byte (0x05) is still unread. */
export async function serveSocks(
  sock: Socket,
  resolve: Resolve,
  onDenied: (host: string, port: number, reason: string) => void,
): Promise<void> {
  sock.on('error', () => undefined);
  const greet = await readExact(sock, 2);
  const methods = greet ? await readExact(sock, greet[1] ?? 0) : null;
  if (!methods?.includes(0x00)) {
    sock.end(Buffer.from([0x05, 0xff]));
    return;
  }
  sock.write(Buffer.from([0x05, 0x00]));
  const head = await readExact(sock, 4);
  if (!head) return;
  const [ver, cmd, , atyp] = head;
  let host: string;
  if (atyp === 0x01) {
    const a = await readExact(sock, 4);
    if (!a) return;
    host = [...a].join('.');
  } else if (atyp === 0x03) {
    const len = await readExact(sock, 1);
    const name = len ? await readExact(sock, len[0] ?? 0) : null;
    if (!name) return;
    host = name.toString('latin1');
  } else if (atyp === 0x04) {
    const a = await readExact(sock, 16);
    if (!a) return;
    host = `[${(a.toString('hex').match(/.{4}/g) ?? []).join(':')}]`;
  } else {
    reply(sock, BAD_ADDRESS);
    sock.end();
    return;
  }
  const p = await readExact(sock, 2);
  if (!p) return;
  const port = p.readUInt16BE(0);
  if (ver !== 0x05 || cmd !== 0x01) {
    onDenied(host, port, cmd === 0x03 ? 'UDP through SOCKS is not offered' : 'only SOCKS CONNECT is offered');
    reply(sock, NOT_SUPPORTED);
    sock.end();
    return;
  }
  const r = await resolve(host, port);
  if ('denied' in r) {
    onDenied(host, port, r.denied);
    reply(sock, NOT_ALLOWED);
    sock.end();
    return;
  }
  let connected = false;
  const upstream = connect(port, r.address, () => {
    connected = true;
    reply(sock, OK);
    upstream.pipe(sock);
    sock.pipe(upstream);
  });
  upstream.on('error', () => {
    if (connected) sock.destroy();
    else if (!sock.destroyed) {
      reply(sock, UNREACHABLE);
      sock.end();
    }
  });
  sock.on('close', () => upstream.destroy());
}
