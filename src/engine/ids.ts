import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789';

/** A short random id like `sb-k3x9q2mfa7wd` (60 bits). */
export function newId(prefix: string): string {
  const b = randomBytes(12);
  let s = '';
  for (const byte of b) s += ALPHABET[byte % ALPHABET.length];
  return `${prefix}-${s}`;
}
