/**
 * Services across a cluster of three realm nodes on a real etcd: a process service pushed on one
 * node is placed by the leader on two nodes (spread) and reached through every node's gateway; a
 * node running a replica killed with SIGKILL has it placed again on a live node, and once back it
 * runs nothing that is no longer its own; an update whose replicas crash is rolled back on every
 * node; a user's replica sandboxes are listed and reached by id (the dashboard's way too) from
 * every node, with their node, by their owner and root and by no one else; target tags are
 * honoured; a service no node fits says why; a node that joins brings the services it ran alone.
 * One cluster for the whole file.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, type ExecResult, Sandbox, type SandboxInfo, type ServiceInfo } from '@realm/sdk';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { freePort } from '../helpers/port.js';
import { until } from '../helpers/until.js';
import { gatewayGet } from '../helpers/gateway-get.js';
import { spawnDaemon } from '../helpers/spawned-daemon.js';
import { PYTHON_REPLICA, serviceSeen } from '../helpers/service-seen.js';

const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# cluster services tests skipped: ${skip}`);

const nodesOf = (s: ServiceInfo): string[] => s.replicaList.map((r) => r.node).sort();

void describe('services across a cluster of three nodes', { skip }, () => {
  const t0 = Date.now();
  let etcd: TestEtcd;
  const nodes: TestNode[] = [];
  const gateways = new Map<string, number>();
  const byId = (id: string): TestNode => nodes.find((n) => n.id === id) as TestNode;

  before(async () => {
    etcd = await startEtcd();
    const ports = [await freePort(), await freePort(), await freePort()];
    const a = await startNode(etcd.cluster, 'svc-a', { args: ['--gateway', `127.0.0.1:${ports[0]}`] });
    nodes.push(a);
    const [forB, forC] = await Promise.all([a.client.nodes.invite(), a.client.nodes.invite()]);
    // Each kept as soon as it is up, so one that fails to start leaves no other running.
    const started = await Promise.allSettled([
      startNode(etcd.cluster, 'svc-b', { tags: ['gpu'], join: forB.token, args: ['--gateway', `127.0.0.1:${ports[1]}`] }),
      startNode(etcd.cluster, 'svc-c', { join: forC.token, args: ['--gateway', `127.0.0.1:${ports[2]}`] }),
    ]);
    for (const r of started) if (r.status === 'fulfilled') nodes.push(r.value);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    nodes.forEach((n, i) => gateways.set(n.id, ports[i] ?? 0));
  });

  after(async () => {
    const left: string[] = [];
    for (const n of nodes) {
      // A node killed and not restarted (a failed case) leaves its replicas' sandboxes: it removes them at its start.
      if (n.proc.exitCode !== null || n.proc.signalCode !== null) await n.restart().catch(() => undefined);
      left.push(...(await n.remove()));
    }
    await etcd?.stop();
    console.log(`# test/cluster/services.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(left, [], 'nothing left behind');
  });

  const spec = PYTHON_REPLICA;
  const seen = serviceSeen;

  const twoHealthyOn = (s: ServiceInfo): boolean =>
    s.healthy === 2 && s.replicaList.length === 2 && new Set(nodesOf(s)).size === 2 && s.replicaList.every((r) => r.healthy);

  void it("places replicas on two nodes, reached through every node's gateway; a killed node's replica is placed again", async () => {
    const [a] = nodes as [TestNode];
    await a.client.services.push({ ...spec, name: 'web', replicas: 2 });
    // Every node shows both replicas, each on its own node, and the placement that put them there.
    let placed: ServiceInfo | undefined;
    for (const n of nodes) placed = await seen(n, 'web', 'two healthy replicas on two nodes', twoHealthyOn);
    assert.ok(placed);
    assert.deepEqual(
      placed.placement.nodes.map((p) => p.node),
      nodesOf(placed),
    );
    assert.equal(placed.placement.reason, null);
    for (const n of nodes) {
      const r = await gatewayGet(gateways.get(n.id) ?? 0, '/web/hello.txt');
      assert.equal(r.status, 200, `through node ${n.id}'s gateway: ${r.body}`);
      assert.equal(r.body, 'hello from a replica\n');
    }
    // The logs, asked of one node, hold every replica's (each node keeps its own).
    let text = '';
    for await (const chunk of a.client.services.logs('web')) text += chunk;
    for (const r of placed.replicaList) assert.match(text, new RegExp(`\\[${r.id} realm\\] replica ${r.id} started`), text);
    // A restart (new generation) on another node: each node replaces its replicas, and the leader
    // ends the rollout once the new generation is healthy everywhere.
    await nodes[2]?.client.services.restart('web');
    const restarted = await seen(
      a,
      'web',
      'generation 2 rolled out',
      (s) => twoHealthyOn(s) && s.rollout === null && s.replicaList.every((r) => r.generation === 2),
    );
    assert.deepEqual(nodesOf(restarted), nodesOf(placed), 'the replicas stay on their nodes');
    assert.equal((await a.client.services.history('web')).at(-1)?.outcome, 'rolled-out');

    // Kill (SIGKILL) a node that runs a replica: within its lease time its replica runs on a live node.
    const victim = byId(nodesOf(placed).find((id) => id !== a.id) ?? '');
    const live = nodes.filter((n) => n !== victim);
    const killedAt = Date.now();
    await victim.kill('SIGKILL');
    const again = await seen(
      a,
      'web',
      'two healthy replicas on the two live nodes',
      (s) => twoHealthyOn(s) && !nodesOf(s).includes(victim.id),
    );
    assert.deepEqual(nodesOf(again), live.map((n) => n.id).sort());
    for (const n of live)
      await until(
        `web through node ${n.id}'s gateway`,
        async () => (await gatewayGet(gateways.get(n.id) ?? 0, '/web/hello.txt')).status === 200,
      );
    console.log(`# re-placed and served again ${Date.now() - killedAt} ms after the kill (lease TTL 3 s)`);

    // Back: it runs none of its old replicas (not its own any more), and its gateway reaches the service.
    await victim.restart();
    const back = await seen(victim, 'web', 'the replicas on the other two nodes', (s) => twoHealthyOn(s));
    assert.ok(!nodesOf(back).includes(victim.id), `node ${victim.id} runs none: ${JSON.stringify(back.replicaList)}`);
    await until(
      `web through node ${victim.id}'s gateway`,
      async () => (await gatewayGet(gateways.get(victim.id) ?? 0, '/web/hello.txt')).status === 200,
    );
    await a.client.services.remove('web');
    for (const n of nodes) await until(`web gone on node ${n.id}`, async () => (await n.client.services.list()).length === 0);
  });

  void it('an update whose replicas crash is rolled back on every node, the old replicas kept', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    await a.client.services.push({ ...spec, name: 'roll', replicas: 2 });
    const before = await seen(a, 'roll', 'two healthy replicas on two nodes', twoHealthyOn);
    // Generation 2 exits at once, wherever it starts: the first node to see it fail rolls the
    // cluster's service back, and every node keeps (or starts again) generation 1.
    const pushed = await b.client.services.push({ ...spec, name: 'roll', replicas: 2, command: 'exit 3' });
    assert.equal(pushed.generation, 2);
    const after = await seen(
      a,
      'roll',
      'generation 1 desired again, healthy on two nodes, nothing of generation 2 left',
      (s) => s.generation === 1 && s.rollout === null && twoHealthyOn(s) && s.replicaList.every((r) => r.generation === 1),
    );
    assert.deepEqual(
      after.replicaList.map((r) => r.sandbox).sort(),
      before.replicaList.map((r) => r.sandbox).sort(),
      'the old replicas were kept, not replaced',
    );
    const last = (await b.client.services.history('roll')).at(-1);
    assert.equal(last?.generation, 2);
    assert.equal(last?.outcome, 'rolled-back');
    assert.match(last?.reason ?? '', /replica roll-[0-9a-f]+ exited \(exit code 3\)/);
    for (const n of nodes)
      assert.equal((await gatewayGet(gateways.get(n.id) ?? 0, '/roll/hello.txt')).status, 200, `through ${n.id}`);
    await a.client.services.remove('roll');
    for (const n of nodes) await until(`roll gone on node ${n.id}`, async () => (await n.client.services.list()).length === 0);
  });

  void it("a user's replicas on every node: listed with their node, inspected and used by id from any node; another user sees none", async () => {
    // A client per node for each user (tokens are each node's): the service's owner and a stranger.
    const owner = await Promise.all(nodes.map((n) => n.userClient(4101)));
    const stranger = await Promise.all(nodes.map((n) => n.userClient(4102)));
    const [mine] = owner as [Client];
    await mine.services.push({ ...spec, name: 'mine', replicas: 3 });
    const s = await until('three healthy replicas of mine, one on each node (as its owner sees them)', async () => {
      const x = await mine.services.get('mine');
      return x.healthy === 3 && new Set(nodesOf(x)).size === 3 ? x : undefined;
    });
    // `realm svc inspect mine`: every replica with its node, from any node.
    const where = new Map(s.replicaList.map((r) => [r.sandbox, r.node]));
    for (const c of owner)
      assert.deepEqual(new Map((await c.services.get('mine')).replicaList.map((r) => [r.sandbox, r.node])), where);
    const label = { labels: { 'realm.service': 'mine' } };
    const listed = (l: SandboxInfo[]): Map<string, string | undefined> => new Map(l.map((x) => [x.id, x.node]));
    // A request as the dashboard on node `n` sends it (its page's Origin is that node's own).
    const asPage = (n: TestNode, c: Client, path: string, body: unknown): Promise<Response> =>
      fetch(`${n.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${c.token ?? ''}`, origin: n.url, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    for (const [i, n] of nodes.entries()) {
      const c = owner[i];
      // `realm sandbox ls` as the owner and as root: every replica, on whichever node it runs.
      assert.deepEqual(listed(await Sandbox.list(label, c)), where, `the owner's list on node ${n.id}`);
      assert.deepEqual(listed(await Sandbox.list(label, n.client)), where, `root's list on node ${n.id}`);
      for (const r of s.replicaList) {
        // Inspect by id, from a node that holds it or not: it names its node; its server process is there.
        const got = await Sandbox.get(r.sandbox, c);
        assert.equal(got.info.node, r.node, `sandbox ${r.sandbox} as node ${n.id} shows it`);
        assert.equal((await Sandbox.get(r.sandbox, n.client)).info.node, r.node, `root, on node ${n.id}`);
        const procs = await c.request<{ processes: { id: string; status: string }[] }>(
          'GET',
          `/v1/sandboxes/${r.sandbox}/processes`,
        );
        assert.ok(
          procs.processes.some((p) => p.id === r.process && p.status === 'running'),
          JSON.stringify(procs),
        );
        // Exec by id, as the SDK and as the dashboard's page would (every action of the page on a sandbox of
        // another node was refused there as another site's: ORIGIN_NOT_ALLOWED).
        assert.equal((await got.exec(['cat', 'hello.txt'])).stdout, 'hello from a replica\n');
        const res = await asPage(n, c, `/v1/sandboxes/${r.sandbox}/exec`, { command: ['cat', 'hello.txt'] });
        const text = await res.text();
        assert.equal(res.status, 200, `the dashboard on node ${n.id}, sandbox on node ${r.node}: ${text}`);
        assert.equal((JSON.parse(text) as ExecResult).stdout, 'hello from a replica\n');
        // Another user: none of them, from any node, by list, id or action.
        await assert.rejects(Sandbox.get(r.sandbox, stranger[i]), { code: 'SANDBOX_NOT_FOUND' });
        const refused = await asPage(n, stranger[i], `/v1/sandboxes/${r.sandbox}/exec`, { command: ['true'] });
        assert.equal(refused.status, 404, await refused.text());
      }
      assert.deepEqual(await Sandbox.list(label, stranger[i]), [], `another user's list on node ${n.id}`);
      await assert.rejects(stranger[i].services.get('mine'), { code: 'SERVICE_NOT_FOUND' });
    }
    await mine.services.remove('mine');
    for (const n of nodes) await until(`mine gone on node ${n.id}`, async () => (await n.client.services.list()).length === 0);
  });

  void it('honours target tags, and says why when no node fits', async () => {
    const [a] = nodes as [TestNode];
    await a.client.services.push({ ...spec, name: 'tagged', replicas: 2, tags: ['gpu'] });
    const s = await seen(a, 'tagged', 'two healthy replicas', (x) => x.healthy === 2);
    assert.deepEqual(nodesOf(s), ['svc-b', 'svc-b']);
    assert.deepEqual(s.placement.nodes, [{ node: 'svc-b', replicas: 2 }]);

    await a.client.services.push({ ...spec, name: 'nowhere', tags: ['tpu'] });
    const none = await seen(a, 'nowhere', 'a placement reason', (x) => x.placement.reason !== null);
    assert.match(
      none.placement.reason ?? '',
      /1 of 1 replicas of service nowhere not placed: no node fits \(node svc-a: no tag tpu; node svc-b: no tag tpu; node svc-c: no tag tpu\)/,
    );
    assert.equal(none.lastError, none.placement.reason);
    assert.equal(none.running, 0);
    await a.client.services.remove('tagged');
    await a.client.services.remove('nowhere');
  });

  // Last: it adds a fourth node.
  void it('a node that joins brings the services it ran alone; one whose name the cluster has stays its own, not run', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    await a.client.services.push({ ...spec, name: 'taken', replicas: 0 });
    const dataDir = mkdtempSync(join(tmpdir(), 'realm-test-node-svc-d-'));
    // The cgroup root node svc-d will have, so that removing the node removes what this left.
    const lone = await spawnDaemon({ dataDir, cgroupRoot: `realm-test-node-${process.pid}-svc-d` });
    try {
      await lone.client.services.push({ ...spec, name: 'brought', replicas: 0 });
      await lone.client.services.push({ ...spec, name: 'taken', replicas: 0, command: 'exit 0' });
    } finally {
      await lone.stop();
    }
    const d = await startNode(etcd.cluster, 'svc-d', { join: (await a.client.nodes.invite()).token, dataDir });
    nodes.push(d);
    const brought = await seen(b, 'brought', 'the service node svc-d ran alone', () => true);
    assert.equal(brought.generation, 1);
    assert.ok(existsSync(join(dataDir, 'services', 'brought.json.joined')), 'its file is kept, renamed');
    assert.equal((await b.client.services.get('taken')).command, spec.command, "the cluster's own is left as it was");
    assert.ok(existsSync(join(dataDir, 'services', 'taken.json')), 'the one whose name the cluster has stays in its file');
    assert.match(
      d.log(),
      /service taken of \S+taken\.json \(this node's before it joined the cluster\) is not run: the cluster has a service of that name/,
    );
    // It is the cluster's like any other: scaled from another node, placed, served.
    await b.client.services.scale('brought', 1);
    await seen(a, 'brought', 'one healthy replica', (s) => s.healthy === 1);
    await a.client.services.remove('brought');
    await a.client.services.remove('taken');
  });
});
