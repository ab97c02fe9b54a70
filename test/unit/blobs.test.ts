/**
 * The blob store below the API, on a real SQLite store and data dir with a clock of its own:
 * sessions that outlive a daemon restart (the hash rebuilt from the file, a crash's half chunk cut
 * off), sessions that expire, a crash's leftovers collected, grace counted from the last release,
 * and digests parsed strictly.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { BlobStore } from '../../src/blobs/store.js';
import { contentDigest, digestHeader, parseDigest } from '../../src/blobs/digest.js';
import { SqliteBlobIndex } from '../../src/store/sqlite/blobs.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import type { RealmError } from '../../src/util/errors.js';

const HOUR = 3_600_000;
const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A store on a fresh data dir (or `dataDir`), with a clock the test moves. */
function open(dataDir?: string): { blobs: BlobStore; store: SqliteStore; dir: string; clock: { now: number } } {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'realm-blobs-unit-'));
  if (!dataDir) dirs.push(dir);
  const store = new SqliteStore(join(dir, 'state.db'));
  const clock = { now: 1_000_000 };
  const blobs = new BlobStore({
    dataDir: dir,
    index: new SqliteBlobIndex(store.database),
    graceMs: HOUR,
    uploadTtlMs: HOUR,
    gcIntervalMs: 0,
    now: () => clock.now,
  });
  return { blobs, store, dir, clock };
}

const codeOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as RealmError).code;
  }
  return 'none';
};

void describe('blob store (unit)', () => {
  void it('an upload session outlives a restart: the hash is rebuilt from its file, a half chunk left by a crash cut off', async () => {
    const data = randomBytes(300_000);
    const first = open();
    const up = await first.blobs.createUpload('uid:7');
    await first.blobs.appendChunk(up.id, 'uid:7', 0, Readable.from([data.subarray(0, 100_000)]));
    first.store.close();
    // The daemon died while a chunk was being written: bytes past the recorded offset.
    appendFileSync(join(first.dir, 'blobs', 'uploads', up.id), randomBytes(5000));
    const second = open(first.dir);
    assert.equal(second.blobs.uploadStatus(up.id, 'uid:7').offset, 100_000);
    assert.equal(
      codeOf(() => second.blobs.uploadStatus(up.id, 'uid:8')),
      'BLOB_UPLOAD_NOT_FOUND',
    );
    await second.blobs.appendChunk(up.id, 'uid:7', 100_000, Readable.from([data.subarray(100_000)]));
    const info = await second.blobs.commitUpload(up.id, 'uid:7', sha(data), true);
    assert.equal(info.digest, sha(data));
    assert.equal(info.size, data.length);
    second.store.close();
  });

  void it('an idle session expires and its file goes; GC removes a crash leftovers: stray uploads, files without a record', async () => {
    const { blobs, store, dir, clock } = open();
    const up = await blobs.createUpload('uid:7');
    await blobs.appendChunk(up.id, 'uid:7', 0, Readable.from([randomBytes(1000)]));
    writeFileSync(join(dir, 'blobs', 'uploads', 'stray'), 'x');
    const orphan = randomBytes(10);
    const hex = sha(orphan).slice(7);
    mkdirSync(join(dir, 'blobs', 'sha256', hex.slice(0, 2)), { recursive: true });
    writeFileSync(join(dir, 'blobs', 'sha256', hex.slice(0, 2), hex), orphan);
    const r1 = await blobs.gc();
    assert.equal(r1.uploads, 1, 'the stray upload file; the live session stays');
    assert.equal(r1.blobs, 1, 'the file without a record');
    assert.ok(existsSync(join(dir, 'blobs', 'uploads', up.id)));
    clock.now += HOUR + 1;
    assert.equal(
      codeOf(() => blobs.uploadStatus(up.id, 'uid:7')),
      'BLOB_UPLOAD_NOT_FOUND',
    );
    assert.equal((await blobs.gc()).uploads, 1);
    assert.deepEqual(readdirSync(join(dir, 'blobs', 'uploads')), []);
    store.close();
  });

  void it('grace counts from the last release: a dropped reference keeps the blob for the grace period, then GC takes it', async () => {
    const { blobs, store, clock } = open();
    const data = randomBytes(1000);
    const info = await blobs.put('uid:7', Readable.from([data]), { pin: false });
    assert.equal(info.expiresAt, new Date(clock.now + HOUR).toISOString());
    blobs.addRef(info.digest, 'uid:7', 'job:a#1:input:x');
    clock.now += 2 * HOUR;
    assert.equal((await blobs.gc()).blobs, 0, 'referenced');
    blobs.dropRef(info.digest, 'uid:7', 'job:a#1:input:x');
    assert.equal(blobs.info(info.digest, 'uid:7').expiresAt, new Date(clock.now + HOUR).toISOString());
    clock.now += HOUR - 1;
    assert.equal((await blobs.gc()).blobs, 0, 'within the grace period');
    clock.now += 1;
    assert.equal((await blobs.gc()).blobs, 1);
    assert.equal(
      codeOf(() => blobs.info(info.digest, 'uid:7')),
      'BLOB_NOT_FOUND',
    );
    // A pin outlasts any grace; another owner's hold keeps the bytes for that owner only.
    const kept = await blobs.put('uid:7', Readable.from([data]), { pin: true });
    await blobs.put('uid:8', Readable.from([data]), { pin: false });
    clock.now += 10 * HOUR;
    await blobs.gc();
    assert.equal(blobs.info(kept.digest, 'uid:7').pinned, true);
    assert.equal(
      codeOf(() => blobs.info(kept.digest, 'uid:8')),
      'BLOB_NOT_FOUND',
      "uid:8's unpinned hold lapsed",
    );
    store.close();
  });

  void it('digests are sha256 only, parsed strictly; Content-Digest is RFC 9530', () => {
    const d = sha(Buffer.from('x'));
    assert.equal(parseDigest(d.slice(7).toUpperCase()), d);
    for (const bad of ['sha256:abc', 'md5:' + 'a'.repeat(32), '../../etc/passwd', `sha256:${'g'.repeat(64)}`, `${d}/x`])
      assert.equal(
        codeOf(() => parseDigest(bad)),
        'INVALID_REQUEST',
        bad,
      );
    assert.equal(contentDigest(digestHeader(d)), d);
    assert.equal(contentDigest('sha-512=:AAAA:'), undefined);
    assert.equal(
      codeOf(() => contentDigest('sha-256=:AAAA:')),
      'INVALID_REQUEST',
    );
  });
});
