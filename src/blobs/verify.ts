/**
 * Reading a blob back, verified: every byte of the file is hashed on the way out, and the last
 * piece of what is sent is held back until the digest matches. A corrupt blob therefore never
 * reaches a client whole: its stream fails before the end (an HTTP answer ends short of its
 * Content-Length, which every client reports), and `onCorrupt` quarantines it. One pass over
 * the file: each piece is read (the next one already on its way from the disk), hashed and handed
 * on; only the last piece (at most READ bytes) waits for the digest.
 *
 * A range is served the same way: the whole file is read and hashed, only the range is sent.
 */
import { closeSync, read } from 'node:fs';
import { Readable, Transform, type Writable } from 'node:stream';
import { RealmError } from '../util/errors.js';
import { digestOf, newHash } from './digest.js';

/** Bytes [start, end] of a blob (inclusive, as HTTP ranges). */
export interface ByteRange {
  start: number;
  end: number;
}

/** Bytes read, hashed and handed on at a time (larger pieces cost more in page faults than they save in calls). */
const READ = 256 * 1024;

export function corruptError(digest: string): RealmError {
  return new RealmError(
    'BLOB_CORRUPT',
    `blob ${digest} failed its digest check on this node's disk and is quarantined; upload it again (realm blob put) to repair it`,
  );
}

function readAt(fd: number, pos: number, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const buf = Buffer.allocUnsafe(length);
    read(fd, buf, 0, length, pos, (e, n) => (e ? reject(e) : resolve(buf.subarray(0, n))));
  });
}

/**
 * A stream of the file's bytes in `range` that fails (BLOB_CORRUPT) unless all of the file hashes
 * to `digest` at `size` bytes. It owns `fd` (closed at its end, or when it is destroyed).
 */
export function verifiedRead(fd: number, digest: string, size: number, range: ByteRange, onCorrupt: () => void): Readable {
  async function* pieces(): AsyncGenerator<Buffer> {
    const hash = newHash();
    let held: Buffer | null = null;
    let pos = 0;
    // One read ahead: the disk (libuv's pool) works on the next piece while this one is hashed and sent.
    let next: Promise<Buffer> | null = size > 0 ? readAt(fd, 0, Math.min(READ, size)) : null;
    try {
      while (next) {
        const buf: Buffer = await next;
        next = null;
        if (buf.length === 0) break; // shorter than recorded: caught below
        const end = pos + buf.length;
        if (end < size) next = readAt(fd, end, Math.min(READ, size - end));
        hash.update(buf);
        const from = Math.max(range.start - pos, 0);
        const to = Math.min(range.end + 1 - pos, buf.length);
        pos = end;
        // The last piece of the range stays held until the whole file has hashed.
        if (to > from) {
          if (held) yield held;
          held = buf.subarray(from, to);
        }
      }
      if (pos !== size || digestOf(hash) !== digest) {
        onCorrupt();
        throw corruptError(digest);
      }
      if (held) yield held;
    } finally {
      // A read still in flight (the stream was destroyed) lands before its fd can be reused.
      await next?.catch(() => undefined);
      closeSync(fd);
    }
  }
  return Readable.from(pieces(), { objectMode: false, highWaterMark: READ });
}

/** Pieces read, hashed and sent at a time by `sendVerified`, and how many buffers it reuses. */
const SEND_PIECE = 1024 * 1024;
const SEND_BUFFERS = 4;

function readInto(fd: number, buf: Buffer, pos: number, length: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buf, 0, length, pos, (e, n) => (e ? reject(e) : resolve(n))));
}

/**
 * `verifiedRead`'s check, written straight into `out` (an HTTP response or a socket) from a few
 * buffers used over and over: a fresh buffer per piece costs a download more in allocation and
 * garbage collection than its hashing. A buffer goes back to the pool when `out` calls the
 * piece's write callback, so `out` must be done with a chunk by then (a socket or an HTTP
 * response is: the kernel has copied it; a PassThrough is not). The pool is the backpressure:
 * no more than SEND_BUFFERS pieces are read ahead of what the peer takes.
 *
 * Resolves once the last byte is handed to `out` and `out` ended; on a corrupt blob (or a read
 * error) `out` is destroyed before its last piece, `onCorrupt` is called, and it rejects. It owns
 * `fd` (closed when it settles).
 */
export async function sendVerified(
  fd: number,
  digest: string,
  size: number,
  range: ByteRange,
  out: Writable,
  onCorrupt: () => void,
): Promise<void> {
  const piece = Math.max(Math.min(SEND_PIECE, size), 1);
  const free: Buffer[] = Array.from({ length: SEND_BUFFERS }, () => Buffer.allocUnsafe(piece));
  let wake: (() => void) | null = null;
  let gone: Error | null = null;
  // (Set from callbacks: read through a function, which flow analysis does not narrow to null.)
  const goneYet = (): Error | null => gone;
  const settle = (): void => {
    const w = wake;
    wake = null;
    w?.();
  };
  const onClose = (): void => {
    gone ??= new Error('the reader went away');
    settle();
  };
  out.once('close', onClose);
  const take = async (): Promise<Buffer> => {
    for (;;) {
      if (gone) throw gone;
      const b = free.pop();
      if (b) return b;
      await new Promise<void>((r) => (wake = r));
    }
  };
  const send = (buf: Buffer, from: number, to: number): void => {
    out.write(buf.subarray(from, to), (e) => {
      if (e) gone ??= e;
      free.push(buf);
      settle();
    });
  };
  const hash = newHash();
  let next: Promise<number> | null = null;
  try {
    let pos = 0;
    let held: { buf: Buffer; from: number; to: number } | null = null;
    let buf = size > 0 ? await take() : null;
    next = buf ? readInto(fd, buf, 0, Math.min(piece, size)) : null;
    while (next && buf) {
      const n = await next;
      next = null;
      if (n === 0) break; // shorter than recorded: caught below
      const end = pos + n;
      const cur: Buffer = buf;
      // One read ahead: the disk (libuv's pool) fills the next buffer while this one is hashed and sent.
      if (end < size) {
        buf = await take();
        next = readInto(fd, buf, end, Math.min(piece, size - end));
      }
      hash.update(cur.subarray(0, n));
      const from = Math.max(range.start - pos, 0);
      const to = Math.min(range.end + 1 - pos, n);
      pos = end;
      // The last piece of the range stays held until the whole file has hashed.
      if (to > from) {
        if (held) send(held.buf, held.from, held.to);
        held = { buf: cur, from, to };
      } else free.push(cur);
    }
    if (pos !== size || digestOf(hash) !== digest) {
      onCorrupt();
      throw corruptError(digest);
    }
    const g = goneYet();
    if (g) throw g;
    if (held) send(held.buf, held.from, held.to);
    await new Promise<void>((resolve, reject) => {
      out.once('error', reject);
      out.end(resolve);
    });
  } catch (e) {
    out.destroy();
    throw e;
  } finally {
    out.off('close', onClose);
    // A read still in flight (the reader went away) lands before its fd can be reused.
    await next?.catch(() => undefined);
    closeSync(fd);
  }
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
