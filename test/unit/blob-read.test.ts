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
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { BlobStore } from '../../src/blobs/store.js';
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

  void it('streams a sound blob whole, and ranges across the pieces exact', async () => {
    const { digest, bytes } = await fresh();
    const whole = await drain(blobs.open(digest, OWNER).stream);
    assert.equal(whole.error, undefined);
    assert.ok(whole.bytes.equals(bytes));
    for (const [start, end] of [
      [0, 0],
      [2 * MiB - 1, 2 * MiB],
      [3 * MiB + 5, 7 * MiB + 122],
      [7 * MiB + 122, undefined],
      [10, 6 * MiB],
    ] as const) {
      const read = blobs.open(digest, OWNER, end === undefined ? { start } : { start, end });
      const got = await drain(read.stream);
      assert.equal(got.error, undefined);
      assert.ok(got.bytes.equals(bytes.subarray(start, (end ?? bytes.length - 1) + 1)), `range ${start}-${end}`);
    }
  });

  for (const [where, at] of [
    ['first', 0],
    ['middle', 3 * MiB + 7],
    ['last', 7 * MiB + 122],
  ] as const)
    void it(`a blob damaged at its ${where} byte fails its stream before the end and is quarantined`, async () => {
      const { digest, bytes } = await fresh();
      damage(blobs, digest, at);
      const got = await drain(blobs.open(digest, OWNER).stream);
      assert.equal(got.error?.code, 'BLOB_CORRUPT');
      // What went out is the file's bytes up to the piece held back: never all of them.
      assert.ok(got.bytes.length < bytes.length, `${got.bytes.length} of ${bytes.length} bytes went out`);
      assert.ok(await listedCorrupt(blobs, digest));
      assert.throws(
        () => blobs.open(digest, OWNER),
        (e) => (e as RealmError).code === 'BLOB_CORRUPT',
      );
    });

  void it('a range of a damaged blob fails too, even when the damage is outside the range', async () => {
    const { digest } = await fresh();
    damage(blobs, digest, 7 * MiB);
    const got = await drain(blobs.open(digest, OWNER, { start: 0, end: 99 }).stream);
    assert.equal(got.error?.code, 'BLOB_CORRUPT');
    assert.equal(got.bytes.length, 0, 'the range is one piece, held back until the whole file hashed');
  });

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
});
