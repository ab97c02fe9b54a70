/**
 * Verified reads below the API (src/blobs/verify.ts): a blob streams in pieces as it is hashed,
 * ranges across the pieces' edges come back exact, and a blob corrupted on disk fails its stream
 * before the end wherever the damage is (the last piece is held back for the digest), a range of
 * it included; a read destroyed half-way lets its file go.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { type BlobRead, BlobStore } from '../../src/blobs/store.js';
import { SqliteBlobIndex } from '../../src/store/sqlite/blobs.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import type { RealmError } from '../../src/util/errors.js';

const MiB = 1024 * 1024;
const OWNER = 'uid:1000';

/**
 * What a stream hands out before it ends or fails, and how it ended. Read as it flows ('data'):
 * an async iterator would drop what was still buffered at the error and hide what went out.
 */
function drain(s: Readable): Promise<{ bytes: Buffer; error: RealmError | undefined }> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.once('end', () => resolve({ bytes: Buffer.concat(parts), error: undefined }));
    s.once('error', (e) => resolve({ bytes: Buffer.concat(parts), error: e as RealmError }));
  });
}

/**
 * The same through `sendTo`, into a consumer that copies each chunk and calls back a turn later
 * (as a socket does once the kernel has it): the buffers the read reuses must come back intact.
 */
async function sent(read: BlobRead): Promise<{ bytes: Buffer; error: RealmError | undefined }> {
  const parts: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(Buffer.from(chunk));
      setImmediate(cb);
    },
  });
  try {
    await read.sendTo(out);
    return { bytes: Buffer.concat(parts), error: undefined };
  } catch (e) {
    assert.ok(out.destroyed, 'a failed read destroys what it wrote into');
    return { bytes: Buffer.concat(parts), error: e as RealmError };
  }
}

/** A read taken whole, as a stream (drain) or written into a socket-like consumer (sent). */
const WAYS = { stream: (r: BlobRead) => drain(r.stream), sendTo: sent } as const;

/** Flip one byte of the blob's file, in place. */
function damage(blobs: BlobStore, digest: string, at: number): void {
  const fd = openSync(blobs.layout.blob(digest), 'r+');
  try {
    const b = Buffer.alloc(1);
    b[0] = 0x5a;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

async function listedCorrupt(blobs: BlobStore, digest: string): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (blobs.list(OWNER).find((b) => b.digest === digest)?.corrupt) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

void describe('blob store: verified reads (unit)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'realm-blob-read-'));
  const store = new SqliteStore(join(dir, 'state.db'));
  const blobs = new BlobStore({ dataDir: dir, index: new SqliteBlobIndex(store.database), gcIntervalMs: 0 });
  after(async () => {
    await blobs.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  // 7 MiB and a bit: several pieces, the last one short.
  const data = randomBytes(7 * MiB + 123);
  // Each test damages its own copy: a blob with one byte of its own changed.
  let copies = 0;
  const fresh = async (): Promise<{ digest: string; bytes: Buffer }> => {
    const bytes = Buffer.from(data);
    bytes.writeUInt32BE(++copies, 100);
    const info = await blobs.put(OWNER, Readable.from([bytes]));
    return { digest: info.digest, bytes };
  };

  for (const [way, take] of Object.entries(WAYS)) {
    void it(`${way}: a sound blob whole, and ranges across the pieces exact`, async () => {
      const { digest, bytes } = await fresh();
      const whole = await take(blobs.open(digest, OWNER));
      assert.equal(whole.error, undefined);
      assert.ok(whole.bytes.equals(bytes));
      for (const [start, end] of [
        [0, 0],
        [MiB - 1, MiB],
        [2 * MiB - 1, 2 * MiB],
        [3 * MiB + 5, 7 * MiB + 122],
        [7 * MiB + 122, undefined],
        [10, 6 * MiB],
      ] as const) {
        const got = await take(blobs.open(digest, OWNER, end === undefined ? { start } : { start, end }));
        assert.equal(got.error, undefined);
        assert.ok(got.bytes.equals(bytes.subarray(start, (end ?? bytes.length - 1) + 1)), `range ${start}-${end}`);
      }
    });

    for (const [where, at] of [
      ['first', 0],
      ['middle', 3 * MiB + 7],
      ['last', 7 * MiB + 122],
    ] as const)
      void it(`${way}: a blob damaged at its ${where} byte fails before the end and is quarantined`, async () => {
        const { digest, bytes } = await fresh();
        damage(blobs, digest, at);
        const got = await take(blobs.open(digest, OWNER));
        assert.equal(got.error?.code, 'BLOB_CORRUPT');
        // What went out is the file's bytes up to the piece held back: never all of them.
        assert.ok(got.bytes.length < bytes.length, `${got.bytes.length} of ${bytes.length} bytes went out`);
        assert.ok(await listedCorrupt(blobs, digest));
        assert.throws(
          () => blobs.open(digest, OWNER),
          (e) => (e as RealmError).code === 'BLOB_CORRUPT',
        );
      });

    void it(`${way}: a range of a damaged blob fails too, even when the damage is outside the range`, async () => {
      const { digest } = await fresh();
      damage(blobs, digest, 7 * MiB);
      const got = await take(blobs.open(digest, OWNER, { start: 0, end: 99 }));
      assert.equal(got.error?.code, 'BLOB_CORRUPT');
      assert.equal(got.bytes.length, 0, 'the range is one piece, held back until the whole file hashed');
    });
  }

  void it('a read destroyed half-way closes its file', async () => {
    const { digest } = await fresh();
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const before = fds();
    const s = blobs.open(digest, OWNER).stream;
    await new Promise<void>((r) => s.once('data', () => r()));
    s.destroy();
    await new Promise<void>((r) => s.once('close', () => r()));
    for (let i = 0; i < 100 && fds() > before; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(fds(), before);
  });

  void it('a reader that goes away half-way through sendTo: the read stops and closes its file', async () => {
    const { digest } = await fresh();
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const before = fds();
    let pieces = 0;
    // A consumer that takes one piece, then never calls back and goes away.
    const out = new Writable({
      write(_chunk, _enc, cb) {
        if (++pieces === 1) setImmediate(cb);
        else setImmediate(() => out.destroy());
      },
    });
    await assert.rejects(blobs.open(digest, OWNER).sendTo(out));
    assert.equal(fds(), before);
    assert.equal(blobs.list(OWNER).find((b) => b.digest === digest)?.corrupt, false, 'a reader going away is no corruption');
  });
});
