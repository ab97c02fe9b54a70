/**
 * A node cut off from etcd (etcd and the other node run on): node B reaches etcd through a TCP
 * relay the test cuts. A service with `disconnect.stopAfter` has B's replica stopped once B's lease
 * was not known alive for that long, while the other node serves it; one without keeps running on
 * B while it is cut off (the default, so two copies run); once B is in touch again it runs neither
 * (their assignments went with its lease), not resurrected. A stopAfter below the lease TTL is
 * refused. One cluster of two nodes for the file.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import type { ServiceInfo } from '@realm/sdk';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { freePort } from '../helpers/port.js';
import { until } from '../helpers/until.js';
import { gatewayGet } from '../helpers/gateway-get.js';
import { startRelay, type TcpRelay } from '../helpers/tcp-relay.js';
import { PYTHON_REPLICA, serviceSeen } from '../helpers/service-seen.js';

const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# cluster disconnect tests skipped: ${skip}`);

/** Processes in sandbox `sandbox`'s cgroup of node `n`. */
function processesIn(n: TestNode, sandbox: string): number {
  let count = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cgroup`, 'utf8').includes(`/${n.cgroupRoot}/${sandbox}`)) count++;
    } catch {
      /* exited while we looked */
    }
  }
  return count;
}

void describe('services on a node cut off from etcd', { skip }, () => {
  const t0 = Date.now();
  let etcd: TestEtcd;
  let relay: TcpRelay;
  let a: TestNode;
  let b: TestNode;
  let gateway = 0;

  before(async () => {
    etcd = await startEtcd();
    relay = await startRelay(etcd.members[0]?.client ?? 0);
    gateway = await freePort();
    // A first: it leads (places the replicas); B reaches etcd only through the relay.
    a = await startNode(etcd.cluster, 'dc-a', { args: ['--gateway', `127.0.0.1:${gateway}`] });
    b = await startNode(`etcd://127.0.0.1:${relay.port}`, 'dc-b', {
      join: (await a.client.nodes.invite()).token,
      tags: ['dc-b'],
    });
  });

  // A case that failed while etcd was cut off leaves it reachable again for the next.
  afterEach(() => relay?.mend());

  after(async () => {
    relay?.mend();
    const left: string[] = [];
    // A node that died on its own says why.
    for (const n of [a, b])
      if (n && n.proc.exitCode !== null) console.log(`# node ${n.id} exited (${n.proc.exitCode}):\n${n.log().slice(-4000)}`);
    try {
      // A node that does not stop (its shutdown waiting on etcd for ever) hangs here: a failure too.
      for (const n of [b, a]) if (n) left.push(...(await n.remove().catch((e: unknown) => [`node ${n.id}: ${String(e)}`])));
    } finally {
      await relay?.close();
      await etcd?.stop();
    }
    console.log(`# test/cluster/disconnect.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(left, [], 'nothing left behind');
  });

  const spec = { ...PYTHON_REPLICA, replicas: 2 };
  const seen = serviceSeen;
  const on = (s: ServiceInfo, node: string): ServiceInfo['replicaList'] => s.replicaList.filter((r) => r.node === node);
  const healthyOnBoth = (s: ServiceInfo): boolean =>
    s.healthy === 2 && on(s, 'dc-a').length === 1 && on(s, 'dc-b').length === 1 && s.replicaList.every((r) => r.healthy);
  const twoOnA = (s: ServiceInfo): boolean => s.healthy === 2 && on(s, 'dc-a').length === 2 && on(s, 'dc-b').length === 0;

  void it('refuses a stopAfter shorter than the lease TTL of any node', async () => {
    await assert.rejects(a.client.services.push({ ...spec, name: 'short', disconnect: { stopAfter: '2s' } }), (e: Error) => {
      assert.equal((e as { code?: string }).code, 'INVALID_REQUEST');
      assert.match(e.message, /disconnect\.stopAfter 2000 ms is shorter than the lease TTL of node dc-a of this cluster \(3 s/);
      return true;
    });
    // A node with a longer lease joins: pushed on A, a stopAfter under its TTL is refused too, naming it.
    const c = await startNode(etcd.cluster, 'dc-c', { join: (await a.client.nodes.invite()).token, leaseTtl: 5 });
    try {
      await until('A sees C and its lease', async () =>
        (await a.client.nodes.list()).some((n) => n.id === 'dc-c' && n.report?.leaseTtlMs === 5000),
      );
      await assert.rejects(a.client.services.push({ ...spec, name: 'short', disconnect: { stopAfter: '4s' } }), (e: Error) => {
        assert.equal((e as { code?: string }).code, 'INVALID_REQUEST');
        assert.match(e.message, /disconnect\.stopAfter 4000 ms is shorter than the lease TTL of node dc-c of this cluster \(5 s/);
        return true;
      });
    } finally {
      assert.deepEqual(await c.remove(), [], 'node C left nothing behind');
    }
    // Gone (down), C counts no more.
    await until('A sees C down', async () => !(await a.client.nodes.list()).some((n) => n.id === 'dc-c' && n.state !== 'down'));
    await assert.rejects(a.client.services.push({ ...spec, name: 'short', disconnect: { stopAfter: '500ms' } }), /stopAfter/);
    await assert.rejects(
      a.client.services.push({ ...spec, name: 'short', disconnect: {} as { stopAfter: string } }),
      /stopAfter/,
    );
    assert.deepEqual(await a.client.services.list(), []);
  });

  void it("stops a cut-off node's replicas with disconnect.stopAfter, keeps them without; none stays after it reconnects", async () => {
    const fenced = await a.client.services.push({ ...spec, name: 'fenced', disconnect: { stopAfter: '3s' } });
    assert.equal(fenced.disconnect.stopAfterMs, 3000);
    assert.equal((await a.client.services.push({ ...spec, name: 'kept' })).disconnect.stopAfterMs, null);
    const fencedB = on(await seen(a, 'fenced', 'a healthy replica on each node', healthyOnBoth), 'dc-b')[0];
    const keptB = on(await seen(a, 'kept', 'a healthy replica on each node', healthyOnBoth), 'dc-b')[0];
    assert.ok(fencedB && keptB);
    assert.ok(processesIn(b, fencedB.sandbox) > 0 && processesIn(b, keptB.sandbox) > 0, 'both replicas run on dc-b');
    assert.equal((await b.client.services.get('fenced')).disconnect.stopAfterMs, 3000, 'every node has the spec');

    relay.cut();
    const cutAt = Date.now();
    // With the option: dc-b's replica is gone, and dc-b says why; dc-a runs and serves both replicas.
    await until('the replica of fenced on dc-b stopped', () => Promise.resolve(processesIn(b, fencedB.sandbox) === 0));
    const stoppedMs = Date.now() - cutAt;
    const onB = await b.client.services.get('fenced');
    assert.deepEqual(on(onB, 'dc-b'), []);
    assert.match(
      onB.lastError ?? '',
      /node dc-b is cut off from etcd \(its lease not known alive for 3s, disconnect\.stopAfter\)/,
    );
    // dc-b's log reaches the test through a pipe, a moment after the line is made.
    await until('dc-b logs why it stopped the replica', () =>
      Promise.resolve(
        /service fenced: node dc-b cut off from etcd for \d+\.\d s since its lease was last known alive/.test(b.log()),
      ),
    );
    // The event follows the sandbox's removal, a moment after its processes are gone.
    await until('dc-b logs service.replica.stopped', () => Promise.resolve(/service\.replica\.stopped/.test(b.log())));
    await seen(a, 'fenced', 'two healthy replicas on dc-a', twoOnA);
    await until('fenced through dc-a', async () => (await gatewayGet(gateway, '/fenced/hello.txt')).status === 200);
    // Without it: dc-b's replica runs on while cut off, though dc-a runs two already (the default).
    await seen(a, 'kept', 'two healthy replicas on dc-a', twoOnA);
    assert.ok(processesIn(b, keptB.sandbox) > 0, "kept's replica on dc-b runs on while it is cut off");
    assert.equal(on(await b.client.services.get('kept'), 'dc-b').length, 1);
    const cutMs = Date.now() - cutAt;
    relay.mend();
    const mendAt = Date.now();
    // In touch again: its assignments went with its lease; it runs neither service, and the others stay on dc-a.
    await until('the replica of kept on dc-b stopped', () => Promise.resolve(processesIn(b, keptB.sandbox) === 0));
    const backMs = Date.now() - mendAt;
    for (const name of ['kept', 'fenced']) {
      const s = await seen(b, name, 'two healthy replicas, both on dc-a', twoOnA);
      assert.deepEqual(on(s, 'dc-b'), []);
    }
    assert.equal(on(await seen(a, 'fenced', 'two on dc-a', twoOnA), 'dc-b').length, 0, 'fenced not resurrected on dc-b');
    // Not even for a moment: its hold ends with its new lease, and what was placed under the old one is not its own.
    assert.equal(b.log().match(/service\.replica\.started fenced /g)?.length, 1, 'dc-b started one replica of fenced, once');
    console.log(
      `# cut off at 0: fenced's replica on dc-b stopped at ${stoppedMs} ms (stopAfter 3 s, lease TTL 3 s); cut for ${cutMs} ms; kept's old replica gone ${backMs} ms after the relay mended`,
    );
    await a.client.services.remove('fenced');
    await a.client.services.remove('kept');
  });

  void it('after a cut whose history etcd compacted, the node runs nothing of its old lease and sees the cluster as it is', async () => {
    await a.client.services.push({ ...spec, name: 'long' });
    const mine = on(await seen(a, 'long', 'a healthy replica on each node', healthyOnBoth), 'dc-b')[0];
    assert.ok(mine);
    relay.cut();
    await seen(a, 'long', 'two healthy replicas on dc-a', twoOnA);
    // etcd forgets the history dc-b missed (auto-compaction does over a long cut): dc-b cannot
    // replay the removal of its assignments; its watches of etcd end.
    const admin = new Etcd3({ hosts: `http://127.0.0.1:${etcd.members[0]?.client ?? 0}` });
    try {
      const { revision } = (await admin.kv.range({ key: Buffer.from('/') })).header;
      await admin.kv.compact({ revision, physical: true });
    } finally {
      admin.close();
    }
    relay.mend();
    await until('the replica of long on dc-b stopped', () => Promise.resolve(processesIn(b, mine.sandbox) === 0));
    await seen(b, 'long', 'two healthy replicas, both on dc-a', twoOnA);
    // It follows what changes from now on.
    await a.client.services.scale('long', 3);
    await seen(b, 'long', 'three healthy replicas', (s) => s.healthy === 3 && s.replicaList.length === 3);
    await a.client.services.remove('long');
    await until('long gone on dc-b', async () => (await b.client.services.list()).length === 0);
    // Its other watches were made again too: a job placed on dc-b (its executor's assignments) runs there.
    const job = await a.client.jobs.submit({ name: 'after-cut', run: { command: 'true' }, targeting: { tags: ['dc-b'] } });
    const id = job.runs[0]?.id ?? '';
    await until('the job placed on dc-b ran', async () => (await a.client.jobs.run(id)).state === 'succeeded');
    assert.equal((await a.client.jobs.run(id)).attempts[0]?.node, 'dc-b');
    assert.equal(b.proc.exitCode, null, `dc-b runs on: ${b.log().slice(-2000)}`);
  });
});
