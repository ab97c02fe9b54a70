/**
 * Kept-alive HTTP connections to ports inside sandboxes: one http.Agent per (sandbox, port) whose
 * connections are made by the driver's dial (sandbox-proxy.ts's dialSandboxPort), so a request
 * through the gateway (a service's, a preview URL's) reuses an open connection to the server
 * instead of entering the sandbox's network namespace and connecting each time. A server that
 * closes after each answer (HTTP/1.0) is dialled each time, as before.
 *
 * Idle connections close after IDLE_MS (under the 5 s keep-alive timeout of Node's and most
 * servers', so the gateway seldom writes to one the server is closing); an agent goes when its
 * sandbox's replica goes (`forget`) or, for preview URLs, once it holds no connection.
 */
import { Agent, type ClientRequest, type ClientRequestArgs, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { RealmError } from '../util/errors.js';

/**
 * The longest a server in a sandbox may take to send a whole response head once asked (nginx's
 * proxy_read_timeout is 60 s between reads; a head trickled a byte at a time never trips that,
 * so this bounds the head as a whole). Past it the request ends with 504 APP_TIMEOUT.
 */
export const RESPONSE_HEAD_MS = 30_000;

/** Make `out` fail with APP_TIMEOUT if no whole response head came within RESPONSE_HEAD_MS. */
export function headDeadline(out: ClientRequest, what: string): void {
  const t = setTimeout(
    () => out.destroy(new RealmError('APP_TIMEOUT', `${what} sent no whole response head within ${RESPONSE_HEAD_MS / 1000} s`)),
    RESPONSE_HEAD_MS,
  );
  const clear = (): void => clearTimeout(t);
  out.once('response', clear).once('close', clear).once('error', clear);
}

/** How long an idle kept-alive connection stays open. */
const IDLE_MS = 4_000;
/** Idle connections kept per (sandbox, port). */
const MAX_FREE = 16;
/** How often empty agents are dropped. */
const SWEEP_MS = 30_000;

/** An agent whose connections come from `dial`. */
class DialAgent extends Agent {
  constructor(private readonly dial: () => Promise<Socket>) {
    super({ keepAlive: true, maxFreeSockets: MAX_FREE, timeout: IDLE_MS, scheduling: 'lifo' });
  }

  // http.Agent waits for the callback when createConnection returns nothing.
  override createConnection(_opts: ClientRequestArgs, cb?: (err: Error | null, stream: Duplex) => void): undefined {
    this.dial().then(
      (s) => cb?.(null, s),
      (e: unknown) => cb?.(e instanceof Error ? e : new Error(String(e)), undefined as unknown as Duplex),
    );
    return undefined;
  }

  /** Holds no connection and has no request waiting. */
  get empty(): boolean {
    const n = (o: NodeJS.ReadOnlyDict<unknown[]>): number => Object.values(o).reduce((a, l) => a + (l?.length ?? 0), 0);
    return n(this.sockets) + n(this.freeSockets) + n(this.requests) === 0;
  }
}

export class SandboxAgents {
  private readonly agents = new Map<string, DialAgent>();
  private readonly sweep: NodeJS.Timeout;

  constructor() {
    this.sweep = setInterval(() => {
      for (const [k, a] of this.agents)
        if (a.empty) {
          a.destroy();
          this.agents.delete(k);
        }
    }, SWEEP_MS);
    this.sweep.unref();
  }

  /** The agent for `port` of `sandbox`; `dial` makes its connections. */
  agent(sandbox: string, port: number, dial: () => Promise<Socket>): Agent {
    const key = `${sandbox}:${port}`;
    let a = this.agents.get(key);
    if (!a) {
      a = new DialAgent(dial);
      this.agents.set(key, a);
    }
    return a;
  }

  /** Close every connection to the sandbox (its replica went). */
  forget(sandbox: string): void {
    for (const [k, a] of this.agents)
      if (k.slice(0, k.lastIndexOf(':')) === sandbox) {
        a.destroy();
        this.agents.delete(k);
      }
  }

  close(): void {
    clearInterval(this.sweep);
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

/**
 * Whether a request that failed before its answer may be sent again on a fresh connection: it
 * went out on a kept-alive connection the server had just closed (Node's documented race), and it
 * has no body the first attempt consumed.
 */
export function retryable(out: ClientRequest, err: NodeJS.ErrnoException, bodyless: boolean): boolean {
  return bodyless && out.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
}

/** A request that carries no body (so it may be sent twice). */
export function bodyless(req: IncomingMessage): boolean {
  const n = req.headers['content-length'];
  return req.headers['transfer-encoding'] === undefined && (n === undefined || n === '0');
}
