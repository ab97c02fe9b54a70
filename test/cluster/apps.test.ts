/**
 * Wasm apps across a cluster of two realm nodes on a real etcd: an app pushed on one node is
 * served by the other node's own gateway (a `local` app too, to a loopback client there), a
 * replacement pushed on the other node reaches the first, a removal on either is gone on both,
 * two nodes pushing one new name at once cannot both win, the owner's checks hold on every node,
 * a node that was down catches up at its start, and a node that joins brings the apps it had
 * alone. One cluster for the whole file.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apps } from '@realm/sdk';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { freePort } from '../helpers/port.js';
import { until } from '../helpers/until.js';
import { gatewayGet } from '../helpers/gateway-get.js';
import { spawnDaemon } from '../helpers/spawned-daemon.js';
import { wasmSkipReason, wat } from '../helpers/wasm.js';

const skip = etcdSkipReason() ?? (await namespaceSkipReason()) ?? (await wasmSkipReason());
if (skip) console.log(`# cluster apps tests skipped: ${skip}`);

/** A CGI module that answers `text`. */
function cgi(text: string): Promise<Buffer> {
  const out = `Content-Type: text/plain\n\n${text}`;
  return wat(`(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) ${JSON.stringify(out)})
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const ${Buffer.byteLength(out)}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`);
}

void describe('wasm apps across a cluster of two nodes (a third joins last)', { skip }, () => {
  const t0 = Date.now();
  let etcd: TestEtcd;
  const nodes: TestNode[] = [];
  const ports: number[] = [];

  before(async () => {
    etcd = await startEtcd();
    ports.push(await freePort(), await freePort());
    const a = await startNode(etcd.cluster, 'app-a', { args: ['--gateway', `127.0.0.1:${ports[0]}`] });
    nodes.push(a);
    const invite = await a.client.nodes.invite();
    nodes.push(await startNode(etcd.cluster, 'app-b', { join: invite.token, args: ['--gateway', `127.0.0.1:${ports[1]}`] }));
  });

  after(async () => {
    const left: string[] = [];
    for (const n of nodes) left.push(...(await n.remove()));
    await etcd?.stop();
    console.log(`# test/cluster/apps.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(left, [], 'nothing left behind');
  });

  /** Until the gateway on `port` answers `path` with `status` (and `body`). */
  const answers = (port: number, path: string, status: number, body?: string): Promise<unknown> =>
    until(`the gateway on port ${port} answers ${path} with ${status} ${body ?? ''}`, async () => {
      const r = await gatewayGet(port, path);
      return r.status === status && (body === undefined || r.body === body) ? r : undefined;
    });

  void it("serves an app pushed on one node from every node's own gateway; a replacement and a removal reach every node", async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    const [pa, pb] = ports as [number, number];
    const [v1, v2] = [await cgi('version one'), await cgi('version two')];
    assert.equal((await gatewayGet(pb, '/hello/')).status, 404);
    // A `local` app (the default): before, node B neither had it nor relayed it.
    const at = Date.now();
    const pushed = await apps.push({ name: 'hello', module: v1 }, a.client);
    assert.equal(pushed.visibility, 'local');
    await answers(pb, '/hello/', 200, 'version one');
    console.log(`# pushed on a → served by b's gateway: ${Date.now() - at} ms`);
    assert.equal((await gatewayGet(pa, '/hello/')).body, 'version one');
    const onB = await apps.get('hello', b.client);
    assert.equal(onB.sha256, pushed.sha256);
    // Replaced on B: A serves the new version.
    const again = await apps.push({ name: 'hello', module: v2, replicas: 1 }, b.client);
    assert.notEqual(again.sha256, pushed.sha256);
    await answers(pa, '/hello/', 200, 'version two');
    assert.equal((await gatewayGet(pb, '/hello/')).body, 'version two');
    assert.equal((await apps.get('hello', a.client)).replicas, 1);
    // Removed on A: gone on both.
    await apps.remove('hello', a.client);
    await answers(pb, '/hello/', 404);
    assert.equal((await gatewayGet(pa, '/hello/')).status, 404);
    assert.deepEqual(
      (await apps.list(b.client)).map((x) => x.name),
      [],
    );
  });

  void it('two nodes pushing one new name at once: one wins, the other is told, and both serve the winner', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    const [pa, pb] = ports as [number, number];
    const [one, two] = [await cgi('from a'), await cgi('from b')];
    const [ra, rb] = await Promise.allSettled([
      apps.push({ name: 'race', module: one }, a.client),
      apps.push({ name: 'race', module: two }, b.client),
    ]);
    const won = [ra, rb].filter((r) => r.status === 'fulfilled');
    console.log(`# race: the push on a ${ra.status}, on b ${rb.status}`);
    // Both may succeed when one push saw the other's (a replacement then); never both as a new app unseen.
    for (const r of [ra, rb])
      if (r.status === 'rejected') assert.match(String(r.reason), /pushed or removed on another node/, String(r.reason));
    assert.ok(won.length >= 1);
    const last = await until('both nodes agree on the app', async () => {
      const [x, y] = [await apps.get('race', a.client), await apps.get('race', b.client)];
      return x.sha256 === y.sha256 ? x : undefined;
    });
    const body = last.sha256 === createHash('sha256').update(one).digest('hex') ? 'from a' : 'from b';
    await answers(pa, '/race/', 200, body);
    await answers(pb, '/race/', 200, body);
    await apps.remove('race', b.client);
    await answers(pa, '/race/', 404);
  });

  void it('a change on one node right after one answered on another acts on it: replaced, then removed, never refused as raced', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    const [one, two] = [await cgi('first'), await cgi('second')];
    // No wait between the calls: each node first catches up with what etcd answered before.
    for (let i = 0; i < 5; i++) {
      const first = await apps.push({ name: 'ryw', module: one }, a.client);
      const second = await apps.push({ name: 'ryw', module: two }, b.client);
      assert.notEqual(second.sha256, first.sha256);
      await apps.remove('ryw', a.client);
    }
    // Reads are a node's own view: each sees the removal a moment later.
    for (const n of [a, b])
      await until('the app gone from every node', async () => !(await apps.list(n.client)).some((x) => x.name === 'ryw'));
  });

  void it("the owner's checks hold on every node: another user can neither replace nor remove an app pushed elsewhere", async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    const [pa, pb] = ports as [number, number];
    const [ua, ub] = [await a.userClient(4001), await b.userClient(4002)];
    await apps.push({ name: 'mine', module: await cgi('mine') }, ua);
    await answers(pb, '/mine/', 200, 'mine');
    await assert.rejects(apps.push({ name: 'mine', module: await cgi('theirs') }, ub), /taken by another user/);
    await assert.rejects(apps.remove('mine', ub), /no app "mine"/);
    assert.equal((await gatewayGet(pa, '/mine/')).body, 'mine');
    await apps.remove('mine', ua);
    await answers(pb, '/mine/', 404);
  });

  void it('a node down meanwhile drops an app removed and serves one pushed while it was away', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    const [, pb] = ports as [number, number];
    await apps.push({ name: 'old', module: await cgi('old') }, a.client);
    await answers(pb, '/old/', 200, 'old');
    await b.stop();
    await apps.remove('old', a.client);
    await apps.push({ name: 'new', module: await cgi('new') }, a.client);
    await b.restart();
    await answers(pb, '/new/', 200, 'new');
    await answers(pb, '/old/', 404);
    assert.deepEqual(
      (await apps.list(b.client)).map((x) => x.name),
      ['new'],
    );
    await apps.remove('new', b.client);
  });

  void it("a node that joins brings the apps it had alone; one whose name the cluster has is replaced by the cluster's", async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    const [, pb] = ports as [number, number];
    await apps.push({ name: 'taken', module: await cgi('the cluster') }, a.client);
    const dataDir = mkdtempSync(join(tmpdir(), 'realm-test-node-app-c-'));
    // The cgroup root node app-c will have, so that removing the node removes what this left.
    const lone = await spawnDaemon({ dataDir, cgroupRoot: `realm-test-node-${process.pid}-app-c` });
    try {
      await apps.push({ name: 'brought', module: await cgi('brought') }, lone.client);
      await apps.push({ name: 'taken', module: await cgi('alone') }, lone.client);
    } finally {
      await lone.stop();
    }
    const c = await startNode(etcd.cluster, 'app-c', { join: (await a.client.nodes.invite()).token, dataDir });
    nodes.push(c);
    await answers(pb, '/brought/', 200, 'brought');
    const cluster = await apps.get('taken', a.client);
    await until("node app-c has the cluster's app", async () => (await apps.get('taken', c.client)).sha256 === cluster.sha256);
    assert.match(c.log(), /app taken, this node's before it joined the cluster, is replaced by the cluster's app/);
    await apps.remove('brought', b.client);
    await apps.remove('taken', c.client);
    await until('node app-c drops the apps', async () => (await apps.list(c.client)).length === 0);
  });
});
