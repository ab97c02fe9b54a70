/**
 * Nodes on a 3-member etcd (`--cluster etcd://a,b,c`), as in production: they join and work
 * (node ls, a placed run, a sandbox on node B driven through node A); the leading etcd member is
 * killed with -9 and the cluster keeps working on the other two (a new etcd leader, no node lost
 * or fenced for longer than a moment, placement and forwarding fine, the nodes' leases kept);
 * then the member comes back and the cluster still works. Everything is stopped and removed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Sandbox, run } from '@realm/sdk';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { errorMessage } from '../../src/util/errors.js';

const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# 3-member etcd tests skipped: ${skip}`);

/** Poll `check` until it holds (at most `ms`); the last failure otherwise. */
async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms${last ? ` (${errorMessage(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

void describe('nodes on a 3-member etcd', { skip }, () => {
  let etcd: TestEtcd;
  let a: TestNode | undefined;
  let b: TestNode | undefined;

  before(async () => {
    etcd = await startEtcd(3);
    // The production lease (5 s): a member's loss must not cost a node its lease.
    a = await startNode(etcd.cluster, 'm3-a', { leaseTtl: 5 });
    b = await startNode(etcd.cluster, 'm3-b', { leaseTtl: 5, tags: ['gpu'], join: (await a.client.nodes.invite()).token });
  });

  after(async () => {
    for (const n of [a, b]) await n?.remove();
    await etcd?.stop();
  });

  /** Both nodes listed up and unfenced by each; a run placed on B through A; a sandbox on B driven through A. */
  const works = async (): Promise<void> => {
    assert.ok(a && b);
    for (const n of [a, b]) {
      const list = await n.client.nodes.list();
      assert.deepEqual(
        list.map((x) => [x.id, x.state, x.fenced]),
        [
          ['m3-a', 'up', false],
          ['m3-b', 'up', false],
        ],
      );
    }
    const r = await run({ language: 'bash', code: 'echo placed', placement: { tags: ['gpu'] } }, a.client);
    assert.equal(r.stdout, 'placed\n');
    const sb = await Sandbox.create({ placement: { node: 'm3-b' } }, a.client);
    try {
      assert.equal((await sb.exec(['echo', 'through-a'])).stdout, 'through-a\n');
      const onB = (await b.client.request<{ sandboxes: { id: string }[] }>('GET', '/v1/sandboxes')).sandboxes;
      assert.ok(onB.some((s) => s.id === sb.id));
    } finally {
      await sb.destroy();
    }
  };

  void it('nodes given all three members join and work', async () => {
    assert.equal(etcd.cluster.split(',').length, 3, etcd.cluster);
    await works();
  });

  void it('the leading member killed with -9: a new leader, the nodes keep their leases and keep working', async () => {
    assert.ok(a && b);
    const leader = await etcd.leader();
    await etcd.kill(leader);
    await until('a new etcd leader', async () => (await etcd.leader()) !== leader);
    // A moment of fencing is allowed (a keepalive on the lost member's connection); it ends.
    const killedAt = Date.now();
    await until('the nodes work on the other two members', () => works().then(() => true));
    console.log(`# etcd member ${leader} (the leader) killed; the nodes worked again after ${Date.now() - killedAt} ms`);
    const onA = await a.client.request<{ cluster: { fenced: boolean } }>('GET', '/v1/node');
    assert.equal(onA.cluster.fenced, false);
    for (const n of [a, b]) assert.doesNotMatch(n.log(), /the cluster lease was lost/, `${n.id}: ${n.log()}`);
    await works();
  });

  void it('the member comes back; the cluster keeps working', async () => {
    const down = etcd.members.findIndex((m) => m.proc.exitCode !== null || m.proc.signalCode !== null);
    assert.ok(down >= 0, 'a member is down');
    await etcd.restart(down);
    await works();
  });

  void it('nothing is left behind', async () => {
    for (const n of [b, a]) if (n) assert.deepEqual(await n.remove(), [], n.id);
    [a, b] = [undefined, undefined];
  });
});
