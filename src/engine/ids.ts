import { randomFillSync } from 'node:crypto';

const ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789';
const ID_BYTES = 12;

/** Random bytes drawn 4 KiB at a time (one system call per ~340 ids, not one each). */
const pool = Buffer.alloc(4096);
let used = pool.length;

/** A short random id like `sb-k3x9q2mfa7wd` (60 bits). */
export function newId(prefix: string): string {
  if (used + ID_BYTES > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  let s = '';
  for (let i = used; i < used + ID_BYTES; i++) s += ALPHABET[(pool[i] ?? 0) % ALPHABET.length];
  used += ID_BYTES;
  return `${prefix}-${s}`;
}
