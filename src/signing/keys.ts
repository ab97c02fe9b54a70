/**
 * Owner keys and signatures: what signed manifests use, and what signed release packages
 * (`realm upgrade`) will. An owner key is an ed25519 key pair (node:crypto); its public half is
 * written `realm-ed25519:BASE64` (the raw 32 bytes), its fingerprint `SHA256:BASE64` of those bytes
 * (as OpenSSH writes them). A signature covers the RFC 8785 canonical JSON of a payload that names
 * its own kind, so a signature made for one kind (a manifest) is never valid as another (a release).
 *
 * @example
 * const { privateKey, publicKey } = generateOwnerKey();
 * const sig = signPayload(privateKey, { kind: 'realm-manifest', version: 1 });
 * verifyPayload(publicKeyText(publicKey), { kind: 'realm-manifest', version: 1 }, sig); // true
 */
import { createHash, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import canonicalize from 'canonicalize';
import { RealmError } from '../util/errors.js';

export const PUBLIC_KEY_PREFIX = 'realm-ed25519:';
/** The DER prefix of an ed25519 SubjectPublicKeyInfo; the raw key follows it. */
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

export function generateOwnerKey(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ed25519');
}

/** The raw 32 bytes of an ed25519 public key. */
function rawOf(key: KeyObject): Buffer {
  const der = key.export({ type: 'spki', format: 'der' });
  if (key.asymmetricKeyType !== 'ed25519' || der.length !== 44) throw new Error('not an ed25519 public key');
  return der.subarray(12);
}

/** `realm-ed25519:BASE64`, the form people copy and `realm node trust` takes. */
export function publicKeyText(key: KeyObject): string {
  return PUBLIC_KEY_PREFIX + rawOf(key.type === 'private' ? createPublicKey(key) : key).toString('base64');
}

/** A public key from its text form, or KEY_INVALID saying what is wrong. */
export function parsePublicKey(text: string): KeyObject {
  const t = text.trim();
  const raw = t.startsWith(PUBLIC_KEY_PREFIX) ? Buffer.from(t.slice(PUBLIC_KEY_PREFIX.length), 'base64') : undefined;
  if (!raw || raw.length !== 32 || raw.toString('base64') !== t.slice(PUBLIC_KEY_PREFIX.length))
    throw new RealmError(
      'KEY_INVALID',
      `"${t.slice(0, 80)}" is not an owner public key: write it as \`realm key show\` prints it (${PUBLIC_KEY_PREFIX} and 44 base64 characters)`,
    );
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
}

/** `SHA256:BASE64` (no padding) of the raw public key, as OpenSSH prints fingerprints. */
export function fingerprint(publicKey: string | KeyObject): string {
  const raw = rawOf(typeof publicKey === 'string' ? parsePublicKey(publicKey) : publicKey);
  return `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`;
}

/** The bytes a signature covers: the payload's RFC 8785 canonical JSON. */
export function canonicalBytes(payload: unknown): Buffer {
  const text = canonicalize(payload);
  if (text === undefined) throw new Error('nothing to canonicalise');
  return Buffer.from(text, 'utf8');
}

/** A detached ed25519 signature (base64) over the payload's canonical bytes. */
export function signPayload(privateKey: KeyObject, payload: { kind: string }): string {
  return sign(null, canonicalBytes(payload), privateKey).toString('base64');
}

/**
 * Whether `signature` (base64) is the key's over the payload's canonical bytes. The caller then
 * checks the payload's `kind` is the one it expects.
 */
export function verifyPayload(publicKey: string, payload: unknown, signature: string): boolean {
  const sig = Buffer.from(signature, 'base64');
  if (sig.length !== 64 || sig.toString('base64') !== signature) return false;
  return verify(null, canonicalBytes(payload), parsePublicKey(publicKey), sig);
}
