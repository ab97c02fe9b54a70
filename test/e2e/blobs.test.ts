/**
 * The blob store end to end: uploads (one request, and sessions of chunks resumed after a break),
 * verified downloads and ranges, dedup, refs and pins against rm and GC, a blob corrupted on disk,
 * two tenants, a 300 MiB upload to a daemon in its own process whose memory must not grow with
 * it, and the CLI.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Client, ConflictError, ForbiddenError, type RealmError } from '@realm/sdk';
import { Tokens } from '../../src/daemon/auth.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { type CliResult, realm } from '../helpers/cli.js';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { type SpawnedDaemon, spawnDaemon } from '../helpers/spawned-daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping blob tests: ${skip}`);

const MiB = 1024 * 1024;
const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Files of a data dir's blob store, by area. */
function files(dataDir: string, area: 'sha256' | 'uploads' | 'quarantine'): string[] {
  const dir = join(dataDir, 'blobs', area);
  if (!existsSync(dir)) return [];
  return area === 'sha256' ? readdirSync(dir).flatMap((d) => readdirSync(join(dir, d))) : readdirSync(dir);
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as RealmError).code;
  }
  return 'resolved';
}

async function bytesOf(body: ReadableStream<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of Readable.fromWeb(body)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/**
 * A TCP proxy to the daemon at `port` that cuts one connection, once, when `limit` bytes went
 * through it in one direction (`up`: the requests, `down`: the answers).
 */
async function cuttingProxy(
  port: number,
  direction: 'up' | 'down',
  limit: number,
): Promise<{ port: number; cuts: () => number; close: () => Promise<void> }> {
  let cut = 0;
  const open = new Set<Socket>();
  const proxy = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    open.add(client).add(upstream);
    let through = 0;
    const pass = (from: Socket, to: Socket, counted: boolean) =>
      from.on('data', (d: Buffer) => {
        if (counted && cut === 0 && (through += d.length) > limit) {
          cut++;
          client.destroy();
          upstream.destroy();
          return;
        }
        to.write(d);
      });
    pass(client, upstream, direction === 'up');
    pass(upstream, client, direction === 'down');
    for (const s of [client, upstream])
      s.on('error', () => undefined).on('close', () => (s === client ? upstream : client).destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  return {
    port: (proxy.address() as { port: number }).port,
    cuts: () => cut,
    // The SDK keeps its connections alive: end them, or the close waits for them to idle out.
    close: async () => {
      for (const sock of open) sock.destroy();
      await new Promise((r) => proxy.close(r));
    },
  };
}

void describe('blob store', { skip }, () => {
  let t: TestDaemon;
  let a: Client;
  let b: Client;
  const dirs: string[] = [];
  const headers = (extra: Record<string, string> = {}): Record<string, string> => ({
    authorization: `Bearer ${t.token}`,
    ...extra,
  });

  before(async () => {
    if (skip) return;
    // 127.0.0.1 on any port: a test's proxy in front of the daemon is let in.
    t = await startTestDaemon({ warm: 0, hostNames: ['127.0.0.1'] });
    // Two users with tokens of their own (made in the daemon's store, as `realm token create` would).
    const store = new SqliteStore(join(t.dataDir, 'state.db'));
    try {
      const tokens = new Tokens(store, join(t.dataDir, 'admin-token'));
      a = new Client({ url: t.url, token: (await tokens.create('a', 'uid:4001')).token });
      b = new Client({ url: t.url, token: (await tokens.create('b', 'uid:4002')).token });
    } finally {
      store.close();
    }
  });
  after(async () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  void it('round trip: put, download, get with a range, HEAD, ls; the same content is stored once', async () => {
    const data = randomBytes(3 * MiB + 17);
    const info = await t.client.blobs.put(data, { chunkSize: MiB });
    assert.equal(info.digest, sha(data));
    assert.equal(info.size, data.length);
    assert.equal(info.pinned, true);
    assert.equal(info.expiresAt, null);
    const dir = mkdtempSync(join(tmpdir(), 'realm-blob-'));
    dirs.push(dir);
    await t.client.blobs.download(info.digest, join(dir, 'out'));
    assert.ok(readFileSync(join(dir, 'out')).equals(data));
    assert.ok((await bytesOf(await t.client.blobs.get(info.digest))).equals(data));
    // A range (bytes=A-B, inclusive) answers 206 with just those bytes.
    const part = await t.client.blobs.get(info.digest, { range: { start: 1000, end: 1999 } });
    assert.ok((await bytesOf(part)).equals(data.subarray(1000, 2000)));
    const head = await fetch(`${t.url}/v1/blobs/${info.digest}`, { method: 'HEAD', headers: headers() });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(data.length));
    assert.equal(head.headers.get('etag'), `"${info.digest}"`);
    const outside = await fetch(`${t.url}/v1/blobs/${info.digest}`, { headers: headers({ range: `bytes=${data.length}-` }) });
    assert.equal(outside.status, 416);
    assert.equal(((await outside.json()) as { error: { code: string } }).error.code, 'BLOB_RANGE_INVALID');
    // One request, streamed (POST /v1/blobs), of the same bytes: stored once.
    const again = await t.client.sendRaw('POST', `/v1/blobs?digest=${info.digest}`, data, 'application/octet-stream');
    assert.equal(again.status, 201);
    assert.equal(((await again.json()) as { digest: string }).digest, info.digest);
    assert.deepEqual(
      files(t.dataDir, 'sha256').filter((f) => info.digest.endsWith(f)),
      [info.digest.slice(7)],
    );
    assert.ok((await t.client.blobs.ls()).some((x) => x.digest === info.digest && x.size === data.length));
    assert.equal(statSync(join(t.dataDir, 'blobs', 'sha256', info.digest.slice(7, 9), info.digest.slice(7))).mode & 0o777, 0o600);
    // An empty blob is a blob too.
    const empty = await t.client.blobs.put(new Uint8Array(0));
    assert.equal(empty.digest, sha(new Uint8Array(0)));
    assert.equal((await bytesOf(await t.client.blobs.get(empty.digest))).length, 0);
    await t.client.blobs.rm(empty.digest);
    await t.client.blobs.rm(info.digest);
    assert.equal(await code(t.client.blobs.get(info.digest)), 'BLOB_NOT_FOUND');
    assert.deepEqual(files(t.dataDir, 'uploads'), []);
  });

  void it('an interrupted upload is resumed where the daemon stands, and its digest verified', async () => {
    const data = randomBytes(6 * MiB);
    const id = (await t.client.request<{ id: string; offset: number }>('POST', '/v1/blobs/uploads')).id;
    const patch = (
      offset: number,
      body: Uint8Array | ReadableStream<Uint8Array>,
      extra: Record<string, string> = {},
      signal?: AbortSignal,
    ) =>
      fetch(`${t.url}/v1/blobs/uploads/${id}`, {
        method: 'PATCH',
        headers: headers({ 'content-type': 'application/octet-stream', 'upload-offset': String(offset), ...extra }),
        body,
        ...(signal ? { signal } : {}),
        duplex: 'half',
      });
    assert.equal((await patch(0, data.subarray(0, 2 * MiB))).status, 200);
    // The second chunk breaks half-way: what came of it is not kept.
    const ac = new AbortController();
    const half = new ReadableStream<Uint8Array>({
      start(ctl) {
        ctl.enqueue(data.subarray(2 * MiB, 3 * MiB));
      },
      pull() {
        ac.abort();
        return new Promise(() => undefined);
      },
    });
    await assert.rejects(patch(2 * MiB, half, {}, ac.signal));
    let status = { offset: -1 };
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`${t.url}/v1/blobs/uploads/${id}`, { headers: headers() });
      status = (await r.json()) as { offset: number };
      // The daemon notices the broken connection and cuts the half chunk off (its file back to 2 MiB).
      if (statSync(join(t.dataDir, 'blobs', 'uploads', id)).size === 2 * MiB) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(status.offset, 2 * MiB);
    assert.equal(statSync(join(t.dataDir, 'blobs', 'uploads', id)).size, 2 * MiB);
    // A chunk at the wrong offset is refused with where to go on.
    const wrong = await patch(3 * MiB, data.subarray(3 * MiB, 4 * MiB));
    assert.equal(wrong.status, 409);
    const w = (await wrong.json()) as { error: { code: string; details: { offset: number } } };
    assert.equal(w.error.code, 'BLOB_UPLOAD_OFFSET');
    assert.equal(w.error.details.offset, 2 * MiB);
    // A damaged chunk (its Content-Digest says otherwise) is refused and not kept.
    const chunk = Buffer.from(data.subarray(2 * MiB, 3 * MiB));
    const digest = createHash('sha256').update(chunk).digest('base64');
    chunk[100] = (chunk[100] ?? 0) ^ 0xff;
    const bad = await patch(2 * MiB, chunk, { 'content-digest': `sha-256=:${digest}:` });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'BLOB_DIGEST_MISMATCH');
    assert.equal((await t.client.blobs.upload(id)).offset, 2 * MiB);
    // The SDK resumes: what the daemon holds is hashed here, the rest sent; the commit's digest checks all.
    const info = await t.client.blobs.put(data, { resume: id, chunkSize: MiB, chunkDigests: true });
    assert.equal(info.digest, sha(data));
    assert.ok((await bytesOf(await t.client.blobs.get(info.digest))).equals(data));
    assert.equal(await code(t.client.blobs.upload(id)), 'BLOB_UPLOAD_NOT_FOUND');
    await t.client.blobs.rm(info.digest);
    assert.deepEqual(files(t.dataDir, 'uploads'), []);
  });

  void it('the SDK sends a chunk again when its connection breaks half-way', async () => {
    const proxy = await cuttingProxy(Number(new URL(t.url).port), 'up', 1.5 * MiB);
    try {
      const via = new Client({ url: `http://127.0.0.1:${proxy.port}`, token: t.token });
      const data = randomBytes(4 * MiB);
      const info = await via.blobs.put(data, { chunkSize: MiB });
      assert.equal(proxy.cuts(), 1, 'a connection was cut');
      assert.equal(info.digest, sha(data));
      assert.ok((await bytesOf(await t.client.blobs.get(info.digest))).equals(data));
      await t.client.blobs.rm(info.digest);
      assert.deepEqual(files(t.dataDir, 'uploads'), []);
    } finally {
      await proxy.close();
    }
  });

  void it('the SDK resumes a download whose connection breaks half-way with a Range, and checks it whole', async () => {
    const data = randomBytes(6 * MiB);
    const info = await t.client.blobs.put(data);
    const proxy = await cuttingProxy(Number(new URL(t.url).port), 'down', 2.5 * MiB);
    try {
      const via = new Client({ url: `http://127.0.0.1:${proxy.port}`, token: t.token });
      const dir = mkdtempSync(join(tmpdir(), 'realm-blob-resume-'));
      dirs.push(dir);
      assert.deepEqual(await via.blobs.download(info.digest, join(dir, 'out')), { size: data.length });
      assert.equal(proxy.cuts(), 1, 'a connection was cut');
      assert.ok(readFileSync(join(dir, 'out')).equals(data));
      assert.deepEqual(readdirSync(dir), ['out'], 'no partial file left beside it');
      // A digest nobody stored: the daemon's error, typed, and no file.
      assert.equal(await code(via.blobs.download(sha(Buffer.from('none')), join(dir, 'none'))), 'BLOB_NOT_FOUND');
      assert.deepEqual(readdirSync(dir), ['out']);
    } finally {
      await proxy.close();
      await t.client.blobs.rm(info.digest);
    }
  });

  void it('a commit whose digest does not match stores nothing; a cancelled upload leaves nothing', async () => {
    const data = randomBytes(MiB);
    const before = files(t.dataDir, 'sha256').length;
    const up = await t.client.request<{ id: string }>('POST', '/v1/blobs/uploads');
    const res = await fetch(`${t.url}/v1/blobs/uploads/${up.id}?digest=${sha(randomBytes(8))}`, {
      method: 'PUT',
      headers: headers({ 'content-type': 'application/octet-stream', 'upload-offset': '0' }),
      body: data,
    });
    assert.equal(res.status, 400);
    const e = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(e.error.code, 'BLOB_DIGEST_MISMATCH');
    assert.match(e.error.message, /nothing was stored/);
    assert.equal(files(t.dataDir, 'sha256').length, before);
    assert.equal(await code(t.client.blobs.get(sha(data))), 'BLOB_NOT_FOUND');
    assert.equal(await code(t.client.blobs.upload(up.id)), 'BLOB_UPLOAD_NOT_FOUND');
    // The one-request upload checks a digest given too.
    const one = await fetch(`${t.url}/v1/blobs?digest=${sha(randomBytes(8))}`, {
      method: 'POST',
      headers: headers({ 'content-type': 'application/octet-stream' }),
      body: data,
    });
    assert.equal(one.status, 400);
    assert.equal(files(t.dataDir, 'sha256').length, before);
    const c = await t.client.request<{ id: string }>('POST', '/v1/blobs/uploads');
    await t.client.blobs.cancel(c.id);
    assert.deepEqual(files(t.dataDir, 'uploads'), []);
  });

  void it('a blob corrupted on disk is caught on read, quarantined, and repaired by uploading it again', async () => {
    const data = randomBytes(3 * MiB);
    const info = await t.client.blobs.put(data);
    const file = join(t.dataDir, 'blobs', 'sha256', info.digest.slice(7, 9), info.digest.slice(7));
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] = (bytes[bytes.length - 10] ?? 0) ^ 1;
    writeFileSync(file, bytes);
    // The stream ends short of its Content-Length: no client takes the corrupt bytes as the blob.
    const res = await fetch(`${t.url}/v1/blobs/${info.digest}`, { headers: headers() });
    assert.equal(res.status, 200);
    await assert.rejects(res.arrayBuffer());
    let listed = (await t.client.blobs.ls()).find((x) => x.digest === info.digest);
    for (let i = 0; i < 100 && !listed?.corrupt; i++) {
      await new Promise((r) => setTimeout(r, 20));
      listed = (await t.client.blobs.ls()).find((x) => x.digest === info.digest);
    }
    assert.equal(listed?.corrupt, true);
    assert.equal(await code(t.client.blobs.get(info.digest)), 'BLOB_CORRUPT');
    const dir = mkdtempSync(join(tmpdir(), 'realm-blob-'));
    dirs.push(dir);
    assert.equal(await code(t.client.blobs.download(info.digest, join(dir, 'x'))), 'BLOB_CORRUPT');
    assert.deepEqual(readdirSync(dir), [], 'a failed download leaves no file');
    assert.equal(files(t.dataDir, 'quarantine').length, 1);
    assert.ok(!existsSync(file));
    const repaired = await t.client.blobs.put(data);
    assert.equal(repaired.corrupt, false);
    assert.ok((await bytesOf(await t.client.blobs.get(info.digest))).equals(data));
    await t.client.blobs.rm(info.digest);
    // The quarantined copy goes with GC once past the grace period.
    assert.equal((await t.client.blobs.gc({ grace: 0 })).quarantined, 1);
    assert.deepEqual(files(t.dataDir, 'quarantine'), []);
  });

  void it('references block rm and GC; unpinned, unreferenced blobs go at GC after the grace period', async () => {
    const data = randomBytes(64 * 1024);
    const info = await t.client.blobs.put(data);
    // Jobs reference their inputs and artifacts through the store's internal API.
    t.daemon.blobs.addRef(info.digest, 'uid:0', 'job:build#1:input:src.tar');
    assert.equal((await t.client.blobs.ls()).find((x) => x.digest === info.digest)?.refs, 1);
    await assert.rejects(t.client.blobs.rm(info.digest), (e) => e instanceof ConflictError && e.code === 'BLOB_IN_USE');
    const unpinned = await t.client.blobs.unpin(info.digest);
    assert.equal(unpinned.pinned, false);
    assert.equal(unpinned.expiresAt, null, 'a referenced blob does not expire');
    await t.client.blobs.gc({ grace: 0 });
    assert.ok((await bytesOf(await t.client.blobs.get(info.digest))).equals(data), 'GC leaves a referenced blob');
    // Its last reference dropped, the blob is kept for the grace period, then collected.
    t.daemon.blobs.dropRef(info.digest, 'uid:0', 'job:build#1:input:src.tar');
    const released = (await t.client.blobs.ls()).find((x) => x.digest === info.digest);
    assert.equal(released?.refs, 0);
    assert.ok(released?.expiresAt);
    assert.equal((await t.client.blobs.gc({ grace: '1h' })).blobs, 0);
    assert.ok((await t.client.blobs.get(info.digest)) instanceof ReadableStream);
    const gc = await t.client.blobs.gc({ grace: 0 });
    assert.equal(gc.blobs, 1);
    assert.equal(gc.bytes, data.length);
    assert.equal(await code(t.client.blobs.get(info.digest)), 'BLOB_NOT_FOUND');
    assert.ok(!files(t.dataDir, 'sha256').includes(info.digest.slice(7)));
    // put --no-pin: collected like any released blob; pinned again, kept.
    const loose = await t.client.blobs.put(randomBytes(1000), { pin: false });
    assert.equal(loose.pinned, false);
    assert.ok(loose.expiresAt);
    const pinned = await t.client.blobs.pin(loose.digest);
    assert.equal(pinned.pinned, true);
    await t.client.blobs.gc({ grace: 0 });
    await t.client.blobs.unpin(loose.digest);
    assert.equal((await t.client.blobs.gc({ grace: 0 })).blobs, 1);
  });

  void it('tenants: a digest is not a key — another user can neither read, pin, reference nor see a blob', async () => {
    const data = randomBytes(256 * 1024);
    const mine = await a.blobs.put(data);
    for (const p of [b.blobs.get(mine.digest), b.blobs.pin(mine.digest), b.blobs.unpin(mine.digest), b.blobs.rm(mine.digest)])
      assert.equal(await code(p), 'BLOB_NOT_FOUND');
    const head = await fetch(`${t.url}/v1/blobs/${mine.digest}`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${b.token}` },
    });
    assert.equal(head.status, 404);
    assert.deepEqual(await b.blobs.ls(), []);
    assert.throws(
      () => t.daemon.blobs.addRef(mine.digest, 'uid:4002', 'job:steal#1:input:x'),
      (e) => (e as RealmError).code === 'BLOB_NOT_FOUND',
    );
    // Dedup does not leak: claiming the digest without the bytes fails as for any digest...
    const claim = await fetch(`${t.url}/v1/blobs?digest=${mine.digest}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${b.token}`, 'content-type': 'application/octet-stream' },
      body: randomBytes(10),
    });
    assert.equal(claim.status, 400);
    assert.equal(await code(b.blobs.get(mine.digest)), 'BLOB_NOT_FOUND');
    // ...and B's upload sessions are B's alone.
    const session = await a.request<{ id: string }>('POST', '/v1/blobs/uploads');
    assert.equal(await code(b.blobs.upload(session.id)), 'BLOB_UPLOAD_NOT_FOUND');
    assert.equal(await code(b.blobs.cancel(session.id)), 'BLOB_UPLOAD_NOT_FOUND');
    await a.blobs.cancel(session.id);
    // Sending the same bytes gives B its own hold on the one stored copy; A's rm leaves B's.
    const theirs = await b.blobs.put(data);
    assert.equal(theirs.digest, mine.digest);
    assert.equal(files(t.dataDir, 'sha256').filter((f) => f === mine.digest.slice(7)).length, 1);
    await a.blobs.rm(mine.digest);
    assert.equal(await code(a.blobs.get(mine.digest)), 'BLOB_NOT_FOUND');
    assert.ok((await bytesOf(await b.blobs.get(mine.digest))).equals(data));
    // GC is the admin's; the admin sees every blob.
    await assert.rejects(b.blobs.gc(), ForbiddenError);
    assert.ok((await t.client.blobs.ls()).some((x) => x.digest === mine.digest));
    await b.blobs.rm(mine.digest);
    assert.ok(!files(t.dataDir, 'sha256').includes(mine.digest.slice(7)));
  });

  void it('the CLI: blob put prints the digest, get, ls (table and JSON), pin, unpin, rm, gc', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'realm-blob-cli-'));
    dirs.push(dir);
    const data = randomBytes(100_000);
    writeFileSync(join(dir, 'in'), data);
    const put = await realmAt(t, ['blob', 'put', join(dir, 'in')]);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(put.stdout, `${sha(data)}\n`);
    const get = await realmAt(t, ['blob', 'get', sha(data), join(dir, 'out')]);
    assert.equal(get.code, 0, get.stderr);
    assert.ok(readFileSync(join(dir, 'out')).equals(data));
    const ls = await realmAt(t, ['blob', 'ls']);
    assert.match(ls.stdout, /DIGEST\s+SIZE\s+PINNED\s+REFS/);
    assert.match(ls.stdout, new RegExp(`${sha(data)}\\s+97\\.7 KiB\\s+yes\\s+0`));
    const json = JSON.parse((await realmAt(t, ['blob', 'ls', '--json'])).stdout) as { digest: string }[];
    assert.ok(json.some((x) => x.digest === sha(data)));
    assert.equal((await realmAt(t, ['blob', 'unpin', sha(data)])).code, 0);
    assert.equal((await realmAt(t, ['blob', 'pin', sha(data)])).code, 0);
    const missing = await realmAt(t, ['blob', 'get', sha(Buffer.from('nope')), join(dir, 'x')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /\[BLOB_NOT_FOUND\]/);
    assert.equal((await realmAt(t, ['blob', 'rm', sha(data)])).code, 0);
    const gc = await realmAt(t, ['blob', 'gc', '--grace', '0s']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /^removed \d+ blobs/);
    assert.deepEqual(files(t.dataDir, 'uploads'), []);
    assert.deepEqual(await leftovers(t), []);
  });
});

void describe('blob store: a 300 MiB upload to a daemon in its own process', { skip }, () => {
  let daemon: SpawnedDaemon | undefined;
  let dataDir = '';
  const cgroupRoot = `realm-test-blobs-${process.pid}`;
  after(async () => {
    await daemon?.stop();
    if (dataDir) removeTestDirs({ dataDir, cgroupRoot });
  });

  void it('streams to disk (the daemon does not grow with it) past the 80 MiB body limit, and back; 2 GiB interrupted and resumed', async (t) => {
    dataDir = mkdtempSync(join(tmpdir(), 'realm-test-blobs-'));
    daemon = await spawnDaemon({ dataDir, cgroupRoot });
    const proc = daemon.child;
    const c = daemon.client;
    const hwm = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))?.[1]) * 1024;
    // Warm the daemon's paths with a small blob first, so the high-water mark after counts the big one only.
    await c.blobs.rm((await c.blobs.put(randomBytes(MiB))).digest);
    const base = hwm();
    const size = 300 * MiB;
    const block = randomBytes(MiB);
    // A source of 300 MiB that never exists in memory here either (one block, yielded again and again).
    const source = function* (): Generator<Uint8Array> {
      for (let i = 0; i < size / MiB; i++) yield block;
    };
    const want = createHash('sha256');
    for (let i = 0; i < size / MiB; i++) want.update(block);
    const digest = `sha256:${want.digest('hex')}`;
    const info = await c.blobs.put(Readable.from(source()), { chunkSize: 32 * MiB });
    assert.equal(info.digest, digest);
    assert.equal(info.size, size);
    // One request of 100 MiB, past the API's 80 MiB body limit, streamed too.
    const one = await c.sendRaw(
      'POST',
      '/v1/blobs',
      Readable.toWeb(Readable.from(source())) as ReadableStream,
      'application/octet-stream',
    );
    assert.equal(((await one.json()) as { digest: string }).digest, digest);
    const grown = hwm() - base;
    t.diagnostic(`the daemon's peak RSS: ${Math.round(base / MiB)} MiB before, +${Math.round(grown / MiB)} MiB after 400 MiB in`);
    assert.ok(grown < 100 * MiB, `the daemon's peak RSS grew by ${Math.round(grown / MiB)} MiB over a ${size / MiB} MiB upload`);
    const got = createHash('sha256');
    let n = 0;
    for await (const chunk of Readable.fromWeb(await c.blobs.get(digest))) {
      got.update(chunk as Buffer);
      n += (chunk as Buffer).length;
    }
    assert.equal(n, size);
    assert.equal(`sha256:${got.digest('hex')}`, digest);
    assert.ok(hwm() - base < 100 * MiB, 'the download streams too');
    assert.deepEqual(files(dataDir, 'uploads'), []);
    await c.blobs.rm(digest);

    // 2 GiB, interrupted half-way (the client gives up past 1 GiB), then resumed where the daemon
    // stands: what it holds is only hashed here, the rest sent, and the commit's digest checks all.
    const twoGiB = 2048 * MiB;
    const other = randomBytes(MiB);
    const big = function* (): Generator<Uint8Array> {
      for (let i = 0; i < twoGiB / MiB; i++) yield i % 2 ? block : other;
    };
    const whole = createHash('sha256');
    for (const b of big()) whole.update(b);
    const bigDigest = `sha256:${whole.digest('hex')}`;
    const session = await c.request<{ id: string }>('POST', '/v1/blobs/uploads');
    const ac = new AbortController();
    await assert.rejects(
      c.blobs.put(Readable.from(big()), {
        resume: session.id,
        chunkSize: 32 * MiB,
        signal: ac.signal,
        onProgress: (sent) => {
          if (sent >= 1024 * MiB) ac.abort();
        },
      }),
    );
    const held = (await c.blobs.upload(session.id)).offset;
    t.diagnostic(`interrupted at ${held / MiB} MiB of ${twoGiB / MiB}`);
    assert.ok(held >= 1024 * MiB && held < twoGiB, `the daemon holds ${held} bytes after the break`);
    const resumed = await c.blobs.put(Readable.from(big()), { resume: session.id, chunkSize: 32 * MiB });
    assert.equal(resumed.digest, bigDigest);
    assert.equal(resumed.size, twoGiB);
    const back = createHash('sha256');
    for await (const chunk of Readable.fromWeb(await c.blobs.get(bigDigest))) back.update(chunk as Buffer);
    assert.equal(`sha256:${back.digest('hex')}`, bigDigest, 'what comes back is the 2 GiB that went in');
    await c.blobs.rm(bigDigest);
    assert.deepEqual(files(dataDir, 'uploads'), []);
  });
});

/** bin/realm against the test daemon (REALM_URL, the admin token). */
const realmAt = (t: TestDaemon, args: string[]): Promise<CliResult> => realm(args, { url: t.url, token: t.token });
