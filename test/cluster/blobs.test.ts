/**
 * Blobs across a cluster (real etcd, three realm nodes as processes): a blob put on one node is
 * read through another, fetched there by digest from the node that has it (the node between
 * asks in turn: one answers 404, the next has it) and verified; another user gets nothing of it
 * through any node; a job on one node reads an input uploaded to another, and its artifact is
 * read through a third; a sandbox placed on a node without its image gets the image from the node
 * that has it. Wrong bytes from a peer are refused: test/unit/blob-peers.test.ts and
 * test/unit/image-peers.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { type Client, type RealmError, Sandbox } from '@realm/sdk';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { egressRootLeft, namespaceSkipReason } from '../helpers/daemon.js';
import { busyboxLayers, makeImage, ociArchive } from '../helpers/oci.js';

const exec = promisify(execFile);
const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# cluster blob tests skipped: ${skip}`);

const code = (e: unknown): string | undefined => (e as RealmError).code;
const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function bytesOf(c: Client, digest: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of Readable.fromWeb(await c.blobs.get(digest))) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A HEAD of the blob on `node` as `c`'s user: the status and the size it gives. */
async function head(node: TestNode, c: Client, digest: string): Promise<[number, string | null]> {
  const res = await fetch(`${node.url}/v1/blobs/${digest}`, {
    method: 'HEAD',
    headers: { authorization: `Bearer ${c.token ?? ''}` },
  });
  return [res.status, res.headers.get('content-length')];
}

void describe('blobs across a cluster of three nodes', { skip }, () => {
  let etcd: TestEtcd;
  let a: TestNode;
  let b: TestNode;
  let c: TestNode;
  /** User 4201 on each node (its tokens are per node), and user 4202 who must see none of 4201's. */
  let u: Record<'a' | 'b' | 'c', Client>;
  let v: Record<'a' | 'b' | 'c', Client>;

  before(async () => {
    etcd = await startEtcd();
    a = await startNode(etcd.cluster, 'node-a');
    const [forB, forC] = await Promise.all([a.client.nodes.invite(), a.client.nodes.invite()]);
    [b, c] = await Promise.all([
      startNode(etcd.cluster, 'node-b', { join: forB.token }),
      startNode(etcd.cluster, 'node-c', { join: forC.token }),
    ]);
    u = { a: await a.userClient(4201), b: await b.userClient(4201), c: await c.userClient(4201) };
    v = { a: await a.userClient(4202), b: await b.userClient(4202), c: await c.userClient(4202) };
  });

  after(async () => {
    for (const n of [a, b, c]) await n?.remove();
    await etcd?.stop();
  });

  void it('a blob put on node C is read through node B (node A, asked first, has none) and through the CLI on A, verified', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const put = await u.c.blobs.put(data);
    assert.equal(put.digest, sha(data));
    assert.deepEqual(await head(b, u.b, put.digest), [200, String(data.length)], 'HEAD asks the peers');
    assert.deepEqual(
      (await u.b.blobs.ls()).map((x) => x.digest),
      [],
      'a HEAD fetches nothing',
    );
    const got = await bytesOf(u.b, put.digest);
    assert.equal(got.length, data.length);
    assert.equal(sha(got), put.digest);
    assert.ok(got.equals(data));
    // Now node B holds a copy for the user: unpinned, so GC takes it after the grace period.
    const [copy] = await u.b.blobs.ls();
    assert.equal(copy?.digest, put.digest);
    assert.equal(copy.pinned, false);
    assert.ok(copy.expiresAt);
    assert.deepEqual(
      (await u.a.blobs.ls()).map((x) => x.digest),
      [],
      'node A was asked and holds nothing',
    );
    // The CLI against node A: `realm blob get` to stdout, and to a file (digest checked by the SDK).
    const out = await exec(join(PACKAGE_ROOT, 'bin', 'realm'), ['blob', 'get', put.digest, '-'], {
      env: { ...process.env, REALM_URL: a.url, REALM_TOKEN: u.a.token ?? '' },
      encoding: 'buffer',
      maxBuffer: 8 * 1024 * 1024,
    });
    assert.equal(sha(out.stdout), put.digest);
    // A range of it through B is served from B's copy.
    const res = await fetch(`${b.url}/v1/blobs/${put.digest}`, {
      headers: { authorization: `Bearer ${u.b.token ?? ''}`, range: 'bytes=10-19' },
    });
    assert.equal(res.status, 206);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(data.subarray(10, 20)));
    // B's copy goes bad on its disk: the read that finds it breaks off (and quarantines it); the
    // next one fetches a sound copy from node C again.
    const hex = put.digest.slice('sha256:'.length);
    writeFileSync(join(b.dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex), randomBytes(data.length));
    await assert.rejects(bytesOf(u.b, put.digest));
    const end = Date.now() + 5000;
    let again: Buffer | undefined;
    while (!again && Date.now() < end) again = await bytesOf(u.b, put.digest).catch(() => undefined);
    assert.ok(again?.equals(data), 'repaired from node C');
    assert.equal((await u.b.blobs.ls())[0]?.corrupt, false);
  });

  void it('another user gets BLOB_NOT_FOUND through every node, and no copy; a client posing as a peer is no one', async () => {
    const data = randomBytes(4096);
    const put = await u.a.blobs.put(data);
    await bytesOf(u.b, put.digest); // node B now has a copy for 4201 too
    for (const node of ['a', 'b', 'c'] as const) {
      await assert.rejects(bytesOf(v[node], put.digest), (e) => code(e) === 'BLOB_NOT_FOUND', `through node ${node}`);
      assert.equal((await head({ a, b, c }[node], v[node], put.digest))[0], 404);
      assert.deepEqual(await v[node].blobs.ls(), []);
    }
    const err = await bytesOf(v.c, put.digest).catch((e: unknown) => e);
    assert.match((err as Error).message, /on any node of the cluster/);
    const forged = await fetch(`${c.url}/v1/blobs/${put.digest}`, {
      headers: { authorization: 'Bearer rlmpeer_0000', 'x-realm-principal': 'uid:4201', 'x-realm-forwarded-by': 'node-a' },
    });
    assert.equal(forged.status, 401);
    await forged.body?.cancel();
    // Root reads it through node C (the node's admin reads all, on the peers too).
    assert.ok((await bytesOf(c.client, put.digest)).equals(data));
  });

  void it('a job on node B reads an input uploaded to node A; its artifact, collected on B, is read through node C', async () => {
    const input = Buffer.from('made on node a\n');
    const put = await u.a.blobs.put(input);
    const job = await u.b.jobs.submit({
      toml: `name = "shout"\n[run]\ncommand = "tr a-z A-Z < in > out.txt"\n[[inputs]]\nsource = "cas:${put.digest}"\ndest = "in"\n[[artifacts]]\npath = "out.txt"\nname = "out"\n`,
    });
    const run = await u.b.jobs.wait(job.name);
    assert.equal(run.state, 'succeeded', `${run.reason ?? ''}\n${await u.b.jobs.log(run.id)}`);
    const [art] = await u.b.jobs.artifacts(job.name);
    assert.equal(art?.name, 'out');
    const upper = await bytesOf(u.c, `sha256:${art.sha256}`);
    assert.equal(upper.toString(), 'MADE ON NODE A\n');
    // The run holds its input on node B (a reference), until the job is removed.
    assert.deepEqual(
      (await u.b.blobs.ls()).filter((x) => x.digest === put.digest).map((x) => x.refs),
      [1],
    );
    await u.b.jobs.remove(job.name);
    assert.deepEqual(
      (await u.b.blobs.ls()).filter((x) => x.digest === put.digest).map((x) => [x.refs, x.pinned]),
      [[0, false]],
      'given back: the grace period counts',
    );
  });

  void it('a sandbox placed on node B with an image only node A has gets it from A, verified, under its name', async () => {
    const [img] = await a.client.images.import(await ociArchive(makeImage(await busyboxLayers()), 'bb:1'));
    assert.deepEqual(
      (await b.client.images.list()).map((i) => i.names),
      [],
    );
    // Asked of node C, placed on node B by the user; B brings the image from A (C, asked first, has none).
    const sb = await Sandbox.create({ image: 'bb:1', placement: { node: 'node-b' } }, u.c);
    try {
      assert.equal((await sb.exec(['/bin/sh', '-c', 'cat /usr/hello'])).stdout, 'hello from layer 3\n');
    } finally {
      await sb.destroy();
    }
    assert.deepEqual(
      (await b.client.images.list()).map((i) => [i.names, i.digest]),
      [[['bb:1'], img?.digest]],
    );
    assert.deepEqual(await c.client.images.list(), []);
    assert.match(b.log(), /image bb:1 \(sha256:[0-9a-f]{64}\) brought from node node-a/);
    // An image no node has is the same IMAGE_NOT_FOUND as on a lone node.
    await assert.rejects(
      Sandbox.create({ image: 'nope:1', placement: { node: 'node-b' } }, u.c),
      (e) => code(e) === 'IMAGE_NOT_FOUND',
    );
    await b.client.images.remove('bb:1');
    await a.client.images.remove('bb:1');
  });

  void it('nothing is left behind', async () => {
    for (const n of [a, b, c]) {
      assert.deepEqual(await n.remove(), [], `node ${n.id}`);
      assert.deepEqual(egressRootLeft(n.cgroupRoot), [], `node ${n.id}: its egress cgroup root`);
    }
  });
});
