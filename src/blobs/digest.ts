/** Blob digests: `sha256:` and 64 lower-case hex digits, the only algorithm the store speaks. */
import { createHash, type Hash } from 'node:crypto';
import { RealmError } from '../util/errors.js';

const DIGEST = /^(?:sha256:)?([0-9a-f]{64})$/;

/** `sha256:<hex>` from a digest written with or without its `sha256:` prefix (upper case is lowered). */
export function parseDigest(text: string, what = 'digest'): string {
  const m = DIGEST.exec(text.trim().toLowerCase());
  if (!m?.[1])
    throw new RealmError(
      'INVALID_REQUEST',
      `${what} "${text.slice(0, 80)}" is not a sha256 digest: write sha256:<64 hex digits>`,
    );
  return `sha256:${m[1]}`;
}

/** The hex part of a digest (the file name under the store). */
export const hexOf = (digest: string): string => digest.slice('sha256:'.length);

export const newHash = (): Hash => createHash('sha256');

/** `sha256:<hex>` of what a hash has seen so far (the hash itself stays usable). */
export const digestOf = (hash: Hash): string => `sha256:${hash.copy().digest('hex')}`;

/**
 * The sha-256 of an RFC 9530 `Content-Digest` (or `Repr-Digest`) header, as `sha256:<hex>`:
 * `sha-256=:<base64>:`; undefined when the header names no sha-256 (other algorithms are ignored).
 */
export function contentDigest(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /(?:^|,)\s*sha-256\s*=\s*:([A-Za-z0-9+/=]+):/i.exec(header);
  if (!m?.[1]) {
    if (/sha-256/i.test(header))
      throw new RealmError('INVALID_REQUEST', `Content-Digest "${header.slice(0, 120)}" is malformed: write sha-256=:<base64>:`);
    return undefined;
  }
  const bytes = Buffer.from(m[1], 'base64');
  if (bytes.length !== 32)
    throw new RealmError('INVALID_REQUEST', 'Content-Digest sha-256 must be 32 bytes, base64 between colons');
  return `sha256:${bytes.toString('hex')}`;
}

/** The RFC 9530 header value of a digest: `sha-256=:<base64>:`. */
export const digestHeader = (digest: string): string => `sha-256=:${Buffer.from(hexOf(digest), 'hex').toString('base64')}:`;
