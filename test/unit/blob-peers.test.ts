/**
 * Blobs fetched from other nodes (cluster/blob-peers.ts) into a real blob store, from peers
 * played by HTTP servers on loopback: one that has the blob, one that answers 404, one that
 * serves wrong bytes, one that does not answer. Wrong bytes are never kept; the owner is the
 * principal each peer is asked as; jobs' reads, sizes and references go through the peers.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { BlobStore } from '../../src/blobs/store.js';
import { expectBytes } from '../../src/blobs/verify.js';
import { BlobPeers } from '../../src/cluster/blob-peers.js';
import type { NodeView, Nodes } from '../../src/cluster/types.js';
import { jobBlobs } from '../../src/jobs/blobs.js';
import { SqliteBlobIndex } from '../../src/store/sqlite/blobs.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import type { RealmError } from '../../src/util/errors.js';

const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const code = (e: unknown): string | undefined => (e as RealmError).code;
const OWNER = 'uid:4301';
const TOKEN = 'rlmpeer_unit';

const dirs: string[] = [];
const servers: Server[] = [];
const stores: SqliteStore[] = [];
after(() => {
  for (const s of servers) s.close();
  for (const s of stores) s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function openStore(): { blobs: BlobStore; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'realm-blob-peers-unit-'));
  dirs.push(dir);
  const store = new SqliteStore(join(dir, 'state.db'));
  stores.push(store);
  return { blobs: new BlobStore({ dataDir: dir, index: new SqliteBlobIndex(store.database), gcIntervalMs: 0 }), dir };
}

interface Peer {
  view: NodeView;
  /** Requests it was sent: method and headers. */
  seen: { method: string; headers: IncomingHttpHeaders }[];
}

/** A node's blob API as a peer sees it: `blobs` by digest, served to `owners` only (others: 404), `serve` sending what it likes. */
async function peer(id: string, blobs: Map<string, { owners: string[]; serve: Buffer; length?: number }>): Promise<Peer> {
  const seen: Peer['seen'] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', headers: req.headers });
    const digest = decodeURIComponent(/^\/v1\/blobs\/(.+)$/.exec(req.url ?? '')?.[1] ?? '');
    const b = blobs.get(digest);
    const who = req.headers['x-realm-principal'];
    if (!b || req.headers.authorization !== `Bearer ${TOKEN}` || typeof who !== 'string' || !b.owners.includes(who)) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"BLOB_NOT_FOUND","message":"no"}}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(b.length ?? b.serve.length) });
    res.end(req.method === 'HEAD' ? undefined : b.serve);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { view: view(id, `http://127.0.0.1:${port}`), seen };
}

function view(id: string, address: string, state: NodeView['state'] = 'up'): NodeView {
  return { id, address, tags: [], state, fenced: false, self: false, joinedAt: '', report: null };
}

/** The cluster as BlobPeers sees it: this node and `others`. */
function nodesOf(others: NodeView[]): Nodes {
  const self = { ...view('me', 'http://127.0.0.1:1'), self: true };
  const partial: Pick<Nodes, 'selfId' | 'clustered' | 'list' | 'peerToken'> = {
    selfId: 'me',
    clustered: true,
    list: () => Promise.resolve([self, ...others]),
    peerToken: () => TOKEN,
  };
  return partial as Nodes;
}

/** An address nothing listens on (a server opened and closed). */
async function deadAddress(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}`;
}

async function drain(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

void describe('blobs from other nodes (unit)', () => {
  void it('expectBytes passes the bytes of the digest and fails on a flipped byte, a byte too many or too few', async () => {
    const data = randomBytes(200_000);
    const digest = sha(data);
    assert.deepEqual(await drain(Readable.from([data]).pipe(expectBytes(digest, data.length))), data);
    const flipped = Buffer.from(data);
    flipped[123_456] = (flipped[123_456] ?? 0) ^ 1;
    for (const [bytes, size] of [
      [flipped, data.length],
      [Buffer.concat([data, Buffer.from('x')]), data.length],
      [data.subarray(0, data.length - 1), data.length],
    ] as const) {
      const check = expectBytes(digest, size);
      const src = Readable.from([bytes.subarray(0, 100_000), bytes.subarray(100_000)]);
      await assert.rejects(drain(src.pipe(check)), (e) => code(e) === 'BLOB_DIGEST_MISMATCH');
    }
  });

  void it('fetches from the node that has it, asked as the owner; skips a 404, wrong bytes, a dead node and a down one', async () => {
    const data = randomBytes(300_000);
    const digest = sha(data);
    const tampered = Buffer.from(data);
    tampered[0] = (tampered[0] ?? 0) ^ 0xff;
    const empty = await peer('n-404', new Map());
    const liar = await peer('n-liar', new Map([[digest, { owners: [OWNER], serve: tampered }]]));
    const good = await peer('n-good', new Map([[digest, { owners: [OWNER], serve: data }]]));
    const down = view('n-down', await deadAddress(), 'down');
    const dead = view('n-dead', await deadAddress());
    const { blobs } = openStore();
    const peers = new BlobPeers(nodesOf([down, empty.view, dead, liar.view, good.view]), blobs);

    const info = await peers.fetch(digest, OWNER);
    assert.equal(info.digest, digest);
    assert.equal(info.size, data.length);
    assert.equal(info.pinned, false, 'a fetched copy is unpinned: GC takes it after the grace period');
    assert.ok(info.expiresAt);
    assert.deepEqual(await drain(blobs.open(digest, OWNER).stream), data);
    for (const p of [empty, liar, good]) {
      assert.equal(p.seen.length, 1);
      assert.equal(p.seen[0]?.headers['x-realm-principal'], OWNER);
      assert.equal(p.seen[0]?.headers['x-realm-forwarded-by'], 'me', 'marked forwarded: the peer asks no further');
    }
    // Another user of this node gets nothing of it, here.
    assert.throws(
      () => blobs.info(digest, 'uid:4302'),
      (e) => code(e) === 'BLOB_NOT_FOUND',
    );
    assert.equal(await peers.size(digest, OWNER), data.length);
    assert.equal(await peers.size(digest, 'uid:4302'), undefined);
  });

  void it('a peer that sends wrong bytes (one flipped, or the blob twice over) is refused, and nothing of them is kept', async () => {
    const data = randomBytes(100_000);
    const digest = sha(data);
    const tampered = Buffer.from(data);
    tampered[99_999] = (tampered[99_999] ?? 0) ^ 1;
    const liar = await peer('n-liar', new Map([[digest, { owners: [OWNER], serve: tampered }]]));
    const longer = await peer(
      'n-long',
      new Map([[digest, { owners: [OWNER], serve: Buffer.concat([data, data]), length: 2 * data.length }]]),
    );
    const { blobs, dir } = openStore();
    const peers = new BlobPeers(nodesOf([liar.view, longer.view]), blobs);
    const err = await peers.fetch(digest, OWNER).catch((e: unknown) => e);
    assert.equal(code(err), 'BLOB_CORRUPT');
    assert.match((err as Error).message, /node n-liar sent wrong bytes.*node n-long sent wrong bytes.*nothing was stored/s);
    assert.deepEqual(blobs.list('uid:0'), []);
    assert.deepEqual(readdirSync(join(dir, 'blobs', 'uploads')), []);
    assert.deepEqual(readdirSync(join(dir, 'blobs', 'sha256')), []);
  });

  void it('no node has it (for this owner), or etcd cannot list them: BLOB_NOT_FOUND, saying what did not answer', async () => {
    const data = randomBytes(1000);
    const digest = sha(data);
    const other = await peer('n-other', new Map([[digest, { owners: ['uid:4309'], serve: data }]]));
    const { blobs } = openStore();
    const peers = new BlobPeers(nodesOf([other.view, view('n-dead', await deadAddress())]), blobs);
    const err = await peers.fetch(digest, OWNER).catch((e: unknown) => e);
    assert.equal(code(err), 'BLOB_NOT_FOUND');
    assert.match((err as Error).message, /on any node of the cluster \(node n-dead did not answer/);
    assert.deepEqual(blobs.list('uid:0'), []);
    // etcd cannot say which nodes there are: still the answer of a blob nobody has, saying why.
    const cutOff: Nodes = { ...nodesOf([]), list: () => Promise.reject(new Error('etcd did not answer')) };
    const lost = await new BlobPeers(cutOff, blobs).fetch(digest, OWNER).catch((e: unknown) => e);
    assert.equal(code(lost), 'BLOB_NOT_FOUND');
    assert.match((lost as Error).message, /the cluster's nodes could not be listed: etcd did not answer/);
    assert.equal(await new BlobPeers(cutOff, blobs).size(digest, OWNER), undefined);
  });

  void it("jobs read, size and reference another node's blob; one fetch serves readers at once, later reads are local, a corrupt copy here is replaced", async () => {
    const data = randomBytes(50_000);
    const digest = sha(data);
    const hex = digest.slice('sha256:'.length);
    const good = await peer('n-good', new Map([[digest, { owners: [OWNER], serve: data }]]));
    const { blobs } = openStore();
    const jb = jobBlobs(blobs, new BlobPeers(nodesOf([good.view]), blobs));
    assert.equal(await jb.size(hex, OWNER), data.length);
    assert.equal(await jb.size(hex, 'uid:4302'), undefined);
    const [one, two] = await Promise.all([jb.read(hex, OWNER), jb.read(hex, OWNER)]);
    assert.deepEqual(one, data);
    assert.deepEqual(two, data);
    assert.deepEqual(await jb.read(hex, OWNER), data);
    assert.deepEqual(
      good.seen.map((s) => s.method),
      ['HEAD', 'HEAD', 'GET'],
      'one GET for both readers; the third read is served here',
    );
    await assert.rejects(jb.read(hex, 'uid:4302'), (e) => code(e) === 'BLOB_NOT_FOUND');
    // A reference held here (a run's input) holds the local copy.
    await jb.addRef(hex, OWNER, 'job-run:run-1');
    assert.deepEqual(blobs.refs(digest, OWNER), [{ owner: OWNER, ref: 'job-run:run-1' }]);
    assert.equal(blobs.info(digest, OWNER).expiresAt, null);
    await jb.dropRef(hex, OWNER, 'job-run:run-1');
    assert.ok(blobs.info(digest, OWNER).expiresAt, 'given back: the grace period counts');

    // A reference to a blob only another node has fetches it first.
    const other = randomBytes(10_000);
    const otherPeer = await peer('n-2', new Map([[sha(other), { owners: [OWNER], serve: other }]]));
    const { blobs: fresh } = openStore();
    const jb2 = jobBlobs(fresh, new BlobPeers(nodesOf([otherPeer.view]), fresh));
    await jb2.addRef(sha(other).slice(7), OWNER, 'job-run:run-2');
    assert.deepEqual(await drain(fresh.open(sha(other), OWNER).stream), other);
    // A copy here that turns out corrupt is replaced by the peer's sound one as it is read.
    writeFileSync(fresh.layout.blob(sha(other)), randomBytes(other.length));
    assert.deepEqual(await jb2.read(sha(other).slice(7), OWNER), other);
    assert.equal(fresh.info(sha(other), OWNER).corrupt, false);
    assert.equal(otherPeer.seen.length, 2);
    // Without peers (a lone node), a missing blob stays missing.
    await assert.rejects(jobBlobs(fresh).read(hex, OWNER), (e) => code(e) === 'BLOB_NOT_FOUND');
  });
});
