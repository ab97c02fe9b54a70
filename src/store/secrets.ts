/**
 * Secrets at rest (the header values a sandbox's proxy injects): sealed with AES-256-GCM under a
 * key of 32 random bytes kept in a file only root reads (`<data-dir>/secret.key`, mode 0600, made
 * on first use). A copy of the database alone then yields no secret. The key is bound to where a
 * value belongs (`aad`), so a sealed value moved to another record does not open.
 *
 * @example
 * const box = SecretBox.load('/var/lib/realm/secret.key');
 * const sealed = box.seal('Bearer abc', 'sb-1\0api.example.com\0Authorization'); // 'v1:…'
 * box.open(sealed, 'sb-1\0api.example.com\0Authorization'); // 'Bearer abc'
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';

const VERSION = 'v1:';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /** The key in `file`, made first when there is none (two daemons racing end up with one key). */
  static load(file: string): SecretBox {
    const tmp = `${file}.tmp-${process.pid}`;
    try {
      const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
      try {
        writeSync(fd, randomBytes(KEY_BYTES));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      // link() never replaces: a key already there (another daemon's, or an older one) wins.
      linkSync(tmp, file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    } finally {
      rmSync(tmp, { force: true });
    }
    const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      if (fstatSync(fd).mode & 0o077) fchmodSync(fd, 0o600);
      const key = readFileSync(fd);
      if (key.length !== KEY_BYTES)
        throw new Error(
          `${file} is not a realm secret key (${KEY_BYTES} bytes): restore it from a backup, or remove it (sandboxes' injected headers sealed with it are then lost)`,
        );
      return new SecretBox(key);
    } finally {
      closeSync(fd);
    }
  }

  /** True for a value `seal` made (as opposed to a plain value an older realm stored). */
  static isSealed(text: string): boolean {
    return text.startsWith(VERSION);
  }

  seal(plain: string, aad: string): string {
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(aad));
    const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return VERSION + Buffer.concat([iv, c.getAuthTag(), body]).toString('base64');
  }

  /** The plain value; throws when the key or `aad` is not the one it was sealed with. */
  open(sealed: string, aad: string): string {
    const raw = Buffer.from(sealed.slice(VERSION.length), 'base64');
    if (!SecretBox.isSealed(sealed) || raw.length < IV_BYTES + TAG_BYTES) throw new Error('not a sealed value');
    const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES));
    d.setAAD(Buffer.from(aad));
    d.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([d.update(raw.subarray(IV_BYTES + TAG_BYTES)), d.final()]).toString('utf8');
  }
}
