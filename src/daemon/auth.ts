/**
 * Bearer tokens. A token is `rlm_<id>_<secret>`; the store keeps the id, a name and the sha256 of
 * the secret, never the secret. The daemon also writes an admin token to `<data-dir>/admin-token`
 * (mode 0600): whoever can read the data dir administers the node, as with a Docker socket; the
 * CLI on that host uses it when REALM_TOKEN is not set.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { MiddlewareHandler } from 'hono';
import type { Store, TokenRecord } from '../store/store.js';
import { RealmError } from '../util/errors.js';

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

function mint(): { id: string; secret: string; token: string } {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(24).toString('base64url');
  return { id, secret, token: `rlm_${id}_${secret}` };
}

export class Tokens {
  private readonly admin: Buffer;
  /** The admin token itself, for the daemon's own calls to its API (MCP over HTTP). */
  readonly adminToken: string;

  constructor(
    private readonly store: Store,
    adminTokenPath: string,
  ) {
    if (!existsSync(adminTokenPath)) writeFileSync(adminTokenPath, `${mint().token}\n`, { mode: 0o600 });
    this.adminToken = readFileSync(adminTokenPath, 'utf8').trim();
    this.admin = sha256(this.adminToken);
  }

  /** Create a token; the only time its secret is seen. */
  async create(name: string): Promise<{ id: string; name: string; token: string; createdAt: string }> {
    const t = mint();
    const rec: TokenRecord = { id: t.id, name, hash: sha256(t.secret).toString('hex'), createdAt: Date.now() };
    await this.store.putToken(rec);
    return { id: t.id, name, token: t.token, createdAt: new Date(rec.createdAt).toISOString() };
  }

  async list(): Promise<{ id: string; name: string; createdAt: string }[]> {
    return (await this.store.listTokens()).map((t) => ({ id: t.id, name: t.name, createdAt: new Date(t.createdAt).toISOString() }));
  }

  async revoke(id: string): Promise<void> {
    if (!(await this.store.getToken(id))) throw new RealmError('TOKEN_NOT_FOUND', `no token ${id}; \`realm token ls\` lists them`);
    await this.store.deleteToken(id);
  }

  async verify(token: string): Promise<boolean> {
    if (timingSafeEqual(sha256(token), this.admin)) return true;
    const m = /^rlm_([0-9a-f]{12})_([A-Za-z0-9_-]+)$/.exec(token);
    if (!m) return false;
    const rec = await this.store.getToken(m[1] ?? '');
    return !!rec && timingSafeEqual(sha256(m[2] ?? ''), Buffer.from(rec.hash, 'hex'));
  }

  /** Middleware: every route but /v1/health wants a valid bearer token. */
  middleware(): MiddlewareHandler {
    return async (c, next) => {
      if (c.req.path === '/v1/health') return next();
      const m = /^Bearer\s+(\S+)$/i.exec(c.req.header('authorization') ?? '');
      if (!m?.[1] || !(await this.verify(m[1]))) {
        throw new RealmError('UNAUTHORIZED', 'this daemon wants a token: send "Authorization: Bearer <token>" (set REALM_TOKEN); an admin creates one with `realm token create`');
      }
      return next();
    };
  }
}
