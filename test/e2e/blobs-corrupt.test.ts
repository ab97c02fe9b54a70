/**
 * A blob corrupted on the daemon's disk is refused on read even though its bytes stream out as
 * they are hashed: the daemon cuts the answer before its Content-Length (the last piece waits for
 * the digest), so an HTTP client sees an error, the SDK's download and `realm blob get` fail and
 * leave no file, and `realm blob get DIGEST -` exits non-zero. The damage is in the blob's first
 * byte, many MiB before its end: what is refused is a stream already well under way.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RealmError } from '@realm/sdk';
import { realm } from '../helpers/cli.js';
import { namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping blob corruption tests: ${skip}`);

const MiB = 1024 * 1024;

void describe('blob store: a blob corrupted on disk, read as a stream', { skip }, () => {
  let t: TestDaemon;
  let dir: string;
  let copies = 0;
  before(async () => {
    if (skip) return;
    t = await startTestDaemon({ warm: 0 });
    dir = mkdtempSync(join(tmpdir(), 'realm-blob-corrupt-'));
  });
  after(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  /** A 12 MiB blob of its own, stored, then damaged in its first byte. */
  async function damaged(): Promise<{ digest: string; size: number }> {
    const data = randomBytes(12 * MiB);
    data.writeUInt32BE(++copies, 0);
    const info = await t.client.blobs.put(data);
    const fd = openSync(join(t.dataDir, 'blobs', 'sha256', info.digest.slice(7, 9), info.digest.slice(7)), 'r+');
    writeSync(fd, Buffer.from([(data[0] ?? 0) ^ 0xff]), 0, 1, 0);
    closeSync(fd);
    return { digest: info.digest, size: data.length };
  }

  void it('an HTTP client gets fewer bytes than the Content-Length, and an error', async () => {
    const { digest, size } = await damaged();
    const res = await fetch(`${t.url}/v1/blobs/${digest}`, { headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(size));
    let got = 0;
    await assert.rejects(async () => {
      for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) got += c.length;
    });
    assert.ok(got < size, `${got} of ${size} bytes`);
  });

  void it("the SDK's download fails and leaves no file", async () => {
    const { digest } = await damaged();
    const out = join(dir, 'sdk');
    // Cut short, the download asks again for the rest: by then the blob is quarantined.
    await assert.rejects(t.client.blobs.download(digest, out), (e) => (e as RealmError).code === 'BLOB_CORRUPT');
    assert.deepEqual(readdirSync(dir), []);
  });

  void it('`realm blob get` fails, to a file (none left) and to stdout', async () => {
    for (const to of ['file', 'stdout'] as const) {
      const { digest } = await damaged();
      const r = await realm(['blob', 'get', digest, to === 'file' ? join(dir, 'cli') : '-'], {
        url: t.url,
        token: t.token,
        maxBuffer: 64 * MiB,
      });
      assert.notEqual(r.code, 0, `blob get to ${to} exited 0: ${r.stderr}`);
      assert.deepEqual(readdirSync(dir), []);
    }
  });
});
