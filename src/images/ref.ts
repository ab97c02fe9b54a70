/**
 * Image references: `NAME`, `NAME:TAG`, `REGISTRY/NAME:TAG`, `NAME@sha256:HEX`, or a bare
 * `sha256:HEX`. A name without a tag means `:latest`.
 */
import { RealmError } from '../util/errors.js';

export const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export interface ImageRef {
  /** `REGISTRY/NAME:TAG` as given (tag defaulted), the key in the image index; null for a digest-only ref. */
  ref: string | null;
  /** Registry host[:port] when the first path component names one (has `.` or `:`, or is `localhost`). */
  registry: string | null;
  /** Repository path without the registry. */
  repository: string | null;
  tag: string | null;
  digest: string | null;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/;

function bad(text: string): RealmError {
  return new RealmError(
    'IMAGE_INVALID',
    `"${text}" is not an image reference: write NAME, NAME:TAG, REGISTRY/NAME:TAG, NAME@sha256:… or sha256:… (lowercase names)`,
  );
}

/** Parse a reference; throws IMAGE_INVALID with the accepted shapes. */
export function parseRef(text: string): ImageRef {
  if (DIGEST_RE.test(text)) return { ref: null, registry: null, repository: null, tag: null, digest: text };
  if (text.length > 255) throw bad(text.slice(0, 40) + '…');
  let rest = text;
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw bad(text);
  }
  let tag: string | null = null;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(text);
  }
  const parts = rest.split('/');
  let registry: string | null = null;
  if (parts.length > 1 && (parts[0].includes('.') || parts[0].includes(':') || parts[0] === 'localhost')) {
    registry = parts.shift()!;
    if (!HOST.test(registry)) throw bad(text);
  }
  if (parts.length === 0 || !parts.every((p) => COMPONENT.test(p))) throw bad(text);
  const repository = parts.join('/');
  if (!digest) tag ??= 'latest';
  const name = registry ? `${registry}/${repository}` : repository;
  return { ref: tag ? `${name}:${tag}` : null, registry, repository, tag, digest };
}

/** Is this host a loopback address (plain http is allowed to these without --insecure)? */
export function isLoopbackHost(hostPort: string): boolean {
  const host = hostPort.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
