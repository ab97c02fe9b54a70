/**
 * Reading a blob back, verified: every byte of the file is hashed on the way out, and the last
 * piece of what is sent is held back until the digest matches. A corrupt blob therefore never
 * reaches a client whole: its stream fails before the end (an HTTP answer ends short of its
 * Content-Length, which every client reports), and `onCorrupt` quarantines it.
 *
 * A range is served the same way: the whole file is read and hashed, only the range is sent.
 */
import { createReadStream } from 'node:fs';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream';
import { RealmError } from '../util/errors.js';
import { digestOf, newHash } from './digest.js';

/** Bytes [start, end] of a blob (inclusive, as HTTP ranges). */
export interface ByteRange {
  start: number;
  end: number;
}

export function corruptError(digest: string): RealmError {
  return new RealmError(
    'BLOB_CORRUPT',
    `blob ${digest} failed its digest check on this node's disk and is quarantined; upload it again (realm blob put) to repair it`,
  );
}

/** A stream of the file's bytes in `range` that fails (BLOB_CORRUPT) unless all of the file hashes to `digest` at `size` bytes. */
export function verifiedRead(
  path: string,
  fd: number,
  digest: string,
  size: number,
  range: ByteRange,
  onCorrupt: () => void,
): Readable {
  const hash = newHash();
  let pos = 0;
  let held: Buffer | null = null;
  const check = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      const from = Math.max(range.start - pos, 0);
      const to = Math.min(range.end + 1 - pos, chunk.length);
      pos += chunk.length;
      // The last piece of the range stays held until the whole file has hashed (flush).
      if (to > from) {
        if (held) this.push(held);
        held = chunk.subarray(from, to);
      }
      cb();
    },
    flush(cb) {
      if (pos !== size || digestOf(hash) !== digest) {
        onCorrupt();
        cb(corruptError(digest));
        return;
      }
      if (held) this.push(held);
      cb();
    },
  });
  return pipeline(createReadStream(path, { fd, start: 0, highWaterMark: 1 << 20 }), check, () => undefined);
}

/**
 * Bytes from elsewhere (another node) that must be exactly `size` bytes hashing to `digest`:
 * the stream fails (BLOB_DIGEST_MISMATCH) on the first byte past `size`, and at its end when the
 * count or the digest is wrong, so a consumer that stops at the error keeps nothing of them.
 */
export function expectBytes(digest: string, size: number): Transform {
  const hash = newHash();
  let seen = 0;
  const wrong = (what: string): RealmError =>
    new RealmError('BLOB_DIGEST_MISMATCH', `the bytes sent for blob ${digest} ${what}; nothing of them was kept`, { digest });
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > size) return cb(wrong(`run past the ${size} bytes announced`));
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      if (seen !== size) return cb(wrong(`are ${seen} bytes, not the ${size} announced`));
      const got = digestOf(hash);
      cb(got === digest ? null : wrong(`have digest ${got}`));
    },
  });
}
