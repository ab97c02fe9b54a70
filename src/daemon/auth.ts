/**
 * Bearer tokens, wanted on every TCP request (loopback included) but /v1/health and the groups
 * an operator opened to anonymous callers. A token is `rlm_<id>_<secret>`; the store keeps the
 * id, a name, its owner and the sha256 of the secret, never the secret. A token acts as the
 * principal that made it (`uid:N`). The daemon also writes an admin token to
 * `<data-dir>/admin-token` (mode 0600), which acts as root: root's CLI and the tests use it.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { Store, TokenRecord } from '../store/store.js';
import { RealmError } from '../util/errors.js';
import { ROOT_OWNER, mayUse } from '../engine/owner.js';

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
  /** Tokens minted in memory for the daemon's own calls on a principal's behalf (MCP): token → owner; never stored. */
  private readonly internal = new Map<string, string>();
  private readonly internalOf = new Map<string, string>();

  constructor(
    private readonly store: Store,
    adminTokenPath: string,
  ) {
    if (!existsSync(adminTokenPath)) writeFileSync(adminTokenPath, `${mint().token}\n`, { mode: 0o600 });
    this.adminToken = readFileSync(adminTokenPath, 'utf8').trim();
    this.admin = sha256(this.adminToken);
  }

  /** Create a token for `owner` (it acts as that principal); the only time its secret is seen. */
  async create(name: string, owner: string): Promise<{ id: string; name: string; token: string; createdAt: string }> {
    const t = mint();
    const rec: TokenRecord = { id: t.id, name, hash: sha256(t.secret).toString('hex'), createdAt: Date.now(), owner };
    await this.store.putToken(rec);
    return { id: t.id, name, token: t.token, createdAt: new Date(rec.createdAt).toISOString() };
  }

  /** The tokens `principal` may see: its own, or all for root. */
  async list(principal: string): Promise<{ id: string; name: string; createdAt: string; owner: string | null }[]> {
    // owner null: a token from before owners, which no longer works (see ownerOf).
    return (await this.store.listTokens())
      .filter((t) => mayUse(principal, t.owner))
      .map((t) => ({ id: t.id, name: t.name, createdAt: new Date(t.createdAt).toISOString(), owner: t.owner ?? null }));
  }

  /** Revoke a token of `principal`'s (root: any); another's does not exist for it. */
  async revoke(id: string, principal: string): Promise<void> {
    const rec = await this.store.getToken(id);
    if (!rec || !mayUse(principal, rec.owner))
      throw new RealmError('TOKEN_NOT_FOUND', `no token ${id}; \`realm token ls\` lists them`);
    await this.store.deleteToken(id);
  }

  /** The principal (`uid:N`) a token acts as, or undefined when it is not a valid token. */
  async ownerOf(token: string): Promise<string | undefined> {
    if (timingSafeEqual(sha256(token), this.admin)) return ROOT_OWNER;
    const own = this.internal.get(token);
    if (own) return own;
    const m = /^rlm_([0-9a-f]{12})_([A-Za-z0-9_-]+)$/.exec(token);
    if (!m) return undefined;
    const rec = await this.store.getToken(m[1] ?? '');
    // A token from before tokens had owners may have been made by any local user (no token was
    // needed then): it no longer works; the admin lists and revokes it, its users make new ones.
    return rec?.owner && timingSafeEqual(sha256(m[2] ?? ''), Buffer.from(rec.hash, 'hex')) ? rec.owner : undefined;
  }

  /** Whether `token` is the admin token (from the data dir; it has no stored record). */
  isAdmin(token: string): boolean {
    return timingSafeEqual(sha256(token), this.admin);
  }

  /** Whether the stored token `id` still exists (not revoked): dashboard sessions end with their token. */
  async known(id: string): Promise<boolean> {
    return (await this.store.getToken(id))?.owner != null;
  }

  /** A token that acts as `principal`, kept in memory only: the daemon's own calls on its behalf (MCP tools). */
  internalFor(principal: string): string {
    let token = this.internalOf.get(principal);
    if (!token) {
      token = mint().token;
      this.internal.set(token, principal);
      this.internalOf.set(principal, token);
    }
    return token;
  }
}
