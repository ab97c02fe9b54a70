/**
 * Signed preview links: `realm sandbox url ID PORT` makes one, for one sandbox port, until it
 * expires or is revoked. The token in the link is `<id>.<expiry>.<hmac>`: the HMAC (a key of the
 * node's, made on first use, mode 0600) binds the link's id, sandbox, port and expiry, so a token
 * cannot be forged or moved to another port; revoking deletes the link's record, and a token whose
 * record is gone is refused (the cookie a link was exchanged for holds the same token, so it dies
 * with it). A `public` link lets anyone reach the port until it expires or is revoked.
 * The records are a small JSON file: a few per sandbox, written whole and renamed into place.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface PreviewLink {
  id: string;
  sandbox: string;
  port: number;
  owner: string;
  createdAt: number;
  /** Epoch milliseconds. */
  expiresAt: number;
  /** Anyone may reach the port while the link lives, without its token. */
  public: boolean;
}

export type LinkCheck = { ok: true; link: PreviewLink } | { ok: false; why: string };

export class PreviewLinks {
  private readonly key: Buffer;
  private readonly file: string;
  private links: PreviewLink[];

  constructor(dir: string) {
    const keyFile = join(dir, 'preview-key');
    if (!existsSync(keyFile)) writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    this.key = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'hex');
    this.file = join(dir, 'preview-links.json');
    this.links = existsSync(this.file) ? (JSON.parse(readFileSync(this.file, 'utf8')) as PreviewLink[]) : [];
  }

  private sign(id: string, sandbox: string, port: number, expiresAt: number): string {
    return createHmac('sha256', this.key).update(`${id}\n${sandbox}\n${port}\n${expiresAt}`).digest('base64url');
  }

  private save(): void {
    const now = Date.now();
    this.links = this.links.filter((l) => l.expiresAt > now);
    writeFileSync(`${this.file}.tmp`, JSON.stringify(this.links), { mode: 0o600 });
    renameSync(`${this.file}.tmp`, this.file);
  }

  /** A new link and its token (the only time the token is seen). */
  create(sandbox: string, port: number, owner: string, ttlMs: number, isPublic: boolean): { link: PreviewLink; token: string } {
    const now = Date.now();
    const link: PreviewLink = {
      id: randomBytes(8).toString('hex'),
      sandbox,
      port,
      owner,
      createdAt: now,
      expiresAt: now + ttlMs,
      public: isPublic,
    };
    this.links.push(link);
    this.save();
    return { link, token: `${link.id}.${link.expiresAt}.${this.sign(link.id, sandbox, port, link.expiresAt)}` };
  }

  /** The live links of a sandbox (of one port, when given). */
  list(sandbox: string, port?: number): PreviewLink[] {
    const now = Date.now();
    return this.links.filter((l) => l.sandbox === sandbox && (port === undefined || l.port === port) && l.expiresAt > now);
  }

  /** Revoke a sandbox's links (of one port, when given); how many there were. */
  revoke(sandbox: string, port?: number): number {
    const before = this.links.length;
    this.links = this.links.filter((l) => !(l.sandbox === sandbox && (port === undefined || l.port === port)));
    const n = before - this.links.length;
    if (n) this.save();
    return n;
  }

  /** Whether `token` is a live link to this sandbox's port. */
  check(token: string, sandbox: string, port: number): LinkCheck {
    const m = /^([0-9a-f]{16})\.(\d{1,16})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!m) return { ok: false, why: 'the preview token is malformed' };
    const [, id = '', exp = '', sig = ''] = m;
    const want = Buffer.from(this.sign(id, sandbox, port, Number(exp)));
    const got = Buffer.from(sig);
    if (want.length !== got.length || !timingSafeEqual(want, got))
      return { ok: false, why: `the preview token is not one for port ${port} of sandbox ${sandbox}` };
    if (Number(exp) <= Date.now())
      return { ok: false, why: `the preview link expired at ${new Date(Number(exp)).toISOString()}` };
    const link = this.links.find((l) => l.id === id);
    if (!link) return { ok: false, why: 'the preview link was revoked' };
    return { ok: true, link };
  }

  /** A live public link to this port, if any. */
  publicLink(sandbox: string, port: number): PreviewLink | undefined {
    const now = Date.now();
    return this.links.find((l) => l.public && l.sandbox === sandbox && l.port === port && l.expiresAt > now);
  }
}
