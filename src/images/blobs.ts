/**
 * Blobs by sha256 and the staging area of one import or pull: new blobs and the unpacked root
 * filesystem are written under `<images>/tmp/<id>/` and moved into place only when the whole
 * image checked out, so a failure leaves the store as it was.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RealmError, type ErrorCode } from '../util/errors.js';

/** One import's private directory and the blobs it has written so far. */
export class Staging {
  /** digest → path of a blob written by this import. */
  readonly blobs = new Map<string, string>();
  /** Digests of blobs already in the store that this import relies on (prune leaves them). */
  readonly pins = new Set<string>();
  private n = 0;
  constructor(readonly dir: string) {}

  static async create(tmpRoot: string): Promise<Staging> {
    const dir = join(tmpRoot, `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return new Staging(dir);
  }

  /** A fresh file name inside the staging directory. */
  file(prefix: string): string {
    return join(this.dir, `${prefix}-${this.n++}`);
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

export interface IngestOptions {
  /** The digest the bytes must have (from a manifest or a file name). */
  digest?: string;
  /** The size they must have. */
  size?: number;
  /** Most bytes accepted. */
  max: number;
  /** What the blob is, for messages ("layer 2", "the manifest"). */
  what: string;
  /** Error code for a digest or size mismatch (IMAGE_INVALID on import, IMAGE_PULL_FAILED on pull). */
  code: ErrorCode;
  onBytes?: (n: number) => void;
}

export interface Ingested {
  digest: string;
  size: number;
  path: string;
}

/** Write a stream into the staging area as a blob, hashing it, and check its digest and size. */
export async function ingest(
  staging: Staging,
  source: NodeJS.ReadableStream | AsyncIterable<Uint8Array>,
  o: IngestOptions,
): Promise<Ingested> {
  const path = staging.file('blob');
  const hash = createHash('sha256');
  let size = 0;
  const limit = o.size !== undefined ? Math.min(o.size, o.max) : o.max;
  const check = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > limit) {
        cb(
          size > o.max
            ? new RealmError('IMAGE_TOO_LARGE', `${o.what} is larger than ${o.max} bytes; raise the limit or use a smaller image`)
            : new RealmError(o.code, `${o.what} is larger than the ${o.size ?? 0} bytes its descriptor declares`),
        );
        return;
      }
      hash.update(chunk);
      o.onBytes?.(chunk.length);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(source, check, createWriteStream(path, { mode: 0o644 }));
  } catch (e) {
    await rm(path, { force: true });
    if (e instanceof RealmError) throw e;
    throw new RealmError(o.code, `${o.what} could not be read: ${(e as Error).message}`);
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (o.size !== undefined && size !== o.size) {
    await rm(path, { force: true });
    throw new RealmError(o.code, `${o.what} is ${size} bytes, but its descriptor says ${o.size} (truncated or corrupt)`);
  }
  if (o.digest && digest !== o.digest) {
    await rm(path, { force: true });
    throw new RealmError(
      o.code,
      `${o.what} has digest ${digest}, not the expected ${o.digest}; the data is corrupt or was tampered with`,
    );
  }
  staging.blobs.set(digest, path);
  return { digest, size, path };
}

/**
 * A file on this host as a staged blob: hard-linked into the staging area when it is on the same
 * file system (no copy; the file must never be written in place afterwards, as with realm's
 * build cache, which only ever renames new files in), else copied. Hashed from the staged link,
 * so a later change of the original's name cannot change what was checked.
 */
export async function ingestFile(staging: Staging, file: string, o: IngestOptions): Promise<Ingested> {
  const path = staging.file('blob');
  try {
    await link(file, path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM')
      throw new RealmError(o.code, `${o.what} could not be read: ${(e as Error).message}`);
    return ingest(staging, createReadStream(file), o);
  }
  try {
    const size = (await stat(path)).size;
    if (size > o.max)
      throw new RealmError('IMAGE_TOO_LARGE', `${o.what} is larger than ${o.max} bytes; raise the limit or use a smaller image`);
    const hash = createHash('sha256');
    for await (const c of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
      hash.update(c as Buffer);
      o.onBytes?.((c as Buffer).length);
    }
    const digest = `sha256:${hash.digest('hex')}`;
    if (o.digest && digest !== o.digest)
      throw new RealmError(o.code, `${o.what} has digest ${digest}, not the expected ${o.digest}`);
    staging.blobs.set(digest, path);
    return { digest, size, path };
  } catch (e) {
    await rm(path, { force: true });
    throw e;
  }
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
