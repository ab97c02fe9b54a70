/**
 * How this node dials its peers' APIs (forward.ts for HTTP, ws-relay.ts for WebSockets). A peer
 * whose address is https:// (it listens with --tls-cert) is verified against the CA the operator
 * gives with `realm serve --peer-ca`, and that CA alone; without one, Node's default store (the
 * system's CAs and NODE_EXTRA_CA_CERTS). Plain http:// peers are dialled as before.
 *
 * The choice is the daemon's, made once at start: one daemon per process (cluster-routing.ts
 * builds each request without it, so it is kept here rather than passed along).
 */
import { Agent, fetch as undiciFetch } from 'undici';
import { errorMessage } from '../util/errors.js';

let current: { ca: Buffer; agent: Agent } | undefined;

/** Trust `ca` (PEM) alone for peers from now on; the function returned undoes it (the daemon's close). */
export function usePeerCa(ca: Buffer): () => void {
  const mine = { ca, agent: new Agent({ connect: { ca } }) };
  const old = current;
  current = mine;
  void old?.agent.destroy();
  return () => {
    if (current !== mine) return;
    current = undefined;
    void mine.agent.destroy();
  };
}

/** fetch() to a peer, with the peer CA when one is set. */
export function peerFetch(url: URL, init: RequestInit): Promise<Response> {
  if (!current || url.protocol !== 'https:') return fetch(url, init);
  return undiciFetch(url, { ...init, dispatcher: current.agent });
}

/** The TLS options of a WebSocket to a peer (ws's own options). */
export function peerWsOptions(): { ca?: Buffer } {
  return current ? { ca: current.ca } : {};
}

/** TLS failures the peer's certificate causes (OpenSSL's verify codes, Node's name check). */
const CERT_CODES =
  /^(ERR_TLS_CERT_ALTNAME_INVALID|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_[A-Z_]+|ERR_SSL_[A-Z_]+|EPROTO)$/;

/**
 * Why dialling a peer failed, in words: the innermost cause (fetch says only "fetch failed"),
 * and when it is the peer's certificate, what to check.
 */
export function dialFailure(e: unknown): string {
  let inner: unknown = e;
  while (inner instanceof Error && inner.cause instanceof Error) inner = inner.cause;
  const code = (inner as NodeJS.ErrnoException | undefined)?.code;
  const msg = errorMessage(inner);
  if (code && CERT_CODES.test(code))
    return `TLS: the peer's certificate did not verify: ${msg} [${code}]; --peer-ca must be the CA that signed the peers' --tls-cert, and each certificate must name the host of its node's --advertise URL`;
  const outer = inner === e ? '' : `${errorMessage(e)}: `;
  return `${outer}${msg}${code && !msg.includes(code) ? ` [${code}]` : ''}`;
}
