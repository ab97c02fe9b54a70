/**
 * A client of the OCI distribution protocol, for pulls: GET /v2/, Bearer token auth (the
 * WWW-Authenticate challenge's realm, service and scope), Basic auth, bounded timeouts on every
 * request and on every stalled body. Plain http only to loopback registries unless `insecure`.
 */
import { Readable } from 'node:stream';
import { RealmError } from '../util/errors.js';
import { isLoopbackHost } from './ref.js';

export interface RegistryOptions {
  /** Allow plain http (and nothing else) to a registry that is not on loopback. */
  insecure?: boolean;
  username?: string;
  password?: string;
  /** Longest wait for a response's headers, and for the next bytes of a body (ms). */
  timeoutMs?: number;
  /** Cancels the pull (the client went away). */
  signal?: AbortSignal;
}

function fail(message: string): RealmError {
  return new RealmError('IMAGE_PULL_FAILED', message);
}

/** `Bearer realm="…",service="…"` → { scheme, params }. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^(\w+)\s*(.*)$/s.exec(header.trim());
  const params: Record<string, string> = {};
  for (const p of (m?.[2] ?? '').matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) params[p[1].toLowerCase()] = p[2] ?? p[3] ?? '';
  return { scheme: (m?.[1] ?? '').toLowerCase(), params };
}

export class Registry {
  private readonly base: string;
  private auth: string | undefined;
  private readonly timeout: number;

  constructor(
    readonly host: string,
    readonly repository: string,
    private readonly opts: RegistryOptions = {},
  ) {
    const plain = isLoopbackHost(host) || opts.insecure === true;
    // Loopback registries (tests, local mirrors) speak plain http; everything else https.
    // docker.io is a name; its registry API lives at registry-1.docker.io.
    this.base = `${plain ? 'http' : 'https'}://${host === 'docker.io' ? 'registry-1.docker.io' : host}`;
    this.timeout = opts.timeoutMs ?? 30_000;
    if (opts.username !== undefined) this.auth = basic(opts.username, opts.password ?? '');
  }

  private async fetchOnce(url: string, headers: Record<string, string>): Promise<Response> {
    const u = new URL(url);
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && (isLoopbackHost(u.host) || this.opts.insecure))) {
      throw fail(`refusing plain ${u.protocol} to ${u.host}: only loopback registries may use http; pass --insecure to allow it`);
    }
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), this.timeout);
    const signal = this.opts.signal ? AbortSignal.any([ac.signal, this.opts.signal]) : ac.signal;
    try {
      return await fetch(url, { headers, signal, redirect: 'follow' });
    } catch (e) {
      if (this.opts.signal?.aborted) throw fail('the pull was cancelled');
      throw fail(
        ac.signal.aborted
          ? `${u.host} did not answer within ${this.timeout} ms`
          : `cannot reach ${u.host}: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** GET with auth: on a 401 follow the challenge once (fetch a token, or use Basic), then retry. */
  async get(path: string, accept?: string): Promise<Response> {
    const url = `${this.base}${path}`;
    const headers = (): Record<string, string> => ({
      ...(accept ? { accept } : {}),
      ...(this.auth ? { authorization: this.auth } : {}),
    });
    let res = await this.fetchOnce(url, headers());
    if (res.status === 401) {
      await res.body?.cancel();
      await this.authenticate(res.headers.get('www-authenticate') ?? '');
      res = await this.fetchOnce(url, headers());
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw fail(
        `${this.host} refused access to ${this.repository} (HTTP ${res.status}); check the credentials (REALM_REGISTRY_USERNAME/REALM_REGISTRY_PASSWORD or username/password)`,
      );
    }
    if (res.status === 404) {
      await res.body?.cancel();
      throw new RealmError(
        'IMAGE_NOT_FOUND',
        `${this.host}/${this.repository}: ${path.split('/').pop() ?? ''} not found in the registry`,
      );
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw fail(`${this.host} answered HTTP ${res.status} for ${path}`);
    }
    return res;
  }

  private async authenticate(header: string): Promise<void> {
    const ch = parseChallenge(header);
    if (ch.scheme === 'basic') {
      if (this.opts.username === undefined)
        throw fail(
          `${this.host} wants a username and password; set REALM_REGISTRY_USERNAME and REALM_REGISTRY_PASSWORD or pass them`,
        );
      this.auth = basic(this.opts.username, this.opts.password ?? '');
      return;
    }
    if (ch.scheme !== 'bearer' || !ch.params.realm)
      throw fail(`${this.host} wants authentication realm cannot do (${header || 'no WWW-Authenticate header'})`);
    const u = new URL(ch.params.realm);
    if (ch.params.service) u.searchParams.set('service', ch.params.service);
    u.searchParams.set('scope', ch.params.scope ?? `repository:${this.repository}:pull`);
    const res = await this.fetchOnce(
      u.toString(),
      this.opts.username !== undefined ? { authorization: basic(this.opts.username, this.opts.password ?? '') } : {},
    );
    if (!res.ok) {
      await res.body?.cancel();
      throw fail(`the token service of ${this.host} (${u.host}) answered HTTP ${res.status}; check the credentials`);
    }
    const body = await boundedText(res, 1024 * 1024, this.timeout);
    let token: unknown;
    try {
      const j = JSON.parse(body) as { token?: unknown; access_token?: unknown };
      token = j.token ?? j.access_token;
    } catch {
      token = undefined;
    }
    if (typeof token !== 'string' || !token) throw fail(`the token service of ${this.host} sent no token`);
    this.auth = `Bearer ${token}`;
  }

  /** A body as a stream that fails when no bytes come for the timeout. */
  body(res: Response): Readable {
    if (!res.body) throw fail(`${this.host} sent an empty body`);
    const src = idleGuard(
      Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>),
      this.timeout,
      this.host,
    );
    const cancel = (): void => void src.destroy(fail('the pull was cancelled'));
    this.opts.signal?.addEventListener('abort', cancel, { once: true });
    src.on('close', () => this.opts.signal?.removeEventListener('abort', cancel));
    return src;
  }
}

function basic(user: string, pass: string): string {
  return `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
}

/** Fail a stream that stalls: a registry that hangs mid-body must not hang the pull. */
function idleGuard(src: Readable, ms: number, host: string): Readable {
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => src.destroy(fail(`${host} stopped sending data for ${ms} ms`)), ms);
  };
  arm();
  src.on('data', arm);
  src.on('close', () => clearTimeout(timer));
  return src;
}

/** Read at most `max` bytes of text, failing on more or on a stall. */
export async function boundedText(res: Response, max: number, ms: number): Promise<string> {
  if (!res.body) return '';
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of idleGuard(
    Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>),
    ms,
    new URL(res.url || 'http://registry').host,
  )) {
    n += (c as Buffer).length;
    if (n > max) throw new RealmError('IMAGE_TOO_LARGE', `a registry response is larger than ${max} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
