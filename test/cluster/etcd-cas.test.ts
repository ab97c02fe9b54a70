/**
 * The compare-and-swap writes the cluster's records go through (src/cluster/etcd.ts), on a real
 * etcd: a wasm app's record (`apps/NAME`, cluster/apps-cluster.ts) and a service's (`svc/spec/NAME`,
 * cluster/service-desired.ts) as two nodes write them. A push
 * or a removal compares the revision its node last saw; a removal never beats a replacement its
 * node had not seen (it was a plain delete: the replacement, acknowledged to whoever pushed it,
 * went silently). Deterministic: each node's view is the revision it wrote or was told of.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { casDelete, casPut, etcdClient } from '../../src/cluster/etcd.js';
import { APPS } from '../../src/cluster/apps-cluster.js';
import { EtcdDesiredStore, SVC_SPEC } from '../../src/cluster/service-desired.js';
import type { ServiceRecord } from '../../src/services/spec.js';

const skip = etcdSkipReason();
if (skip) console.log(`# etcd compare-and-swap tests skipped: ${skip}`);

void describe("compare-and-swap on a cluster record's revision", { skip }, () => {
  const t0 = Date.now();
  let etcd: TestEtcd;
  let client: Etcd3;

  before(async () => {
    etcd = await startEtcd();
    client = etcdClient(etcd.cluster);
  });

  after(async () => {
    client?.close();
    await etcd?.stop();
    console.log(`# test/cluster/etcd-cas.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  const held = (key: string): Promise<string | null> => client.get(key).string();

  void it('a removal on the revision its node saw: refused after a replacement it did not see, which is kept', async () => {
    const key = `${APPS}hello`;
    // Node A pushes the app (new: it must not exist); node B is told of it (its watch), and pushes a replacement.
    const seenByA = await casPut(client, key, 'v1 from a', undefined, 3000, 'writing an app');
    assert.ok(seenByA);
    assert.equal(await casPut(client, key, 'v1 from b', undefined, 3000, 'writing an app'), undefined, 'a second create');
    const seenByB = await casPut(client, key, 'v2 from b', seenByA, 3000, 'writing an app');
    assert.ok(seenByB && BigInt(seenByB) > BigInt(seenByA));
    // Node A, not told yet, removes what it saw: refused, the replacement kept. So is a stale push.
    assert.equal(await casDelete(client, key, seenByA, 3000, 'removing an app'), 'changed');
    assert.equal(await held(key), 'v2 from b');
    assert.equal(await casPut(client, key, 'v3 from a', seenByA, 3000, 'writing an app'), undefined);
    assert.equal(await casDelete(client, key, undefined, 3000, 'removing an app'), 'changed', 'one it never saw');
    assert.equal(await held(key), 'v2 from b');
    // Told of it, A removes it; removed again (from a node that saw the same revision): gone, not refused.
    assert.equal(await casDelete(client, key, seenByB, 3000, 'removing an app'), 'deleted');
    assert.equal(await held(key), null);
    assert.equal(await casDelete(client, key, seenByB, 3000, 'removing an app'), 'gone');
    assert.equal(await casDelete(client, key, undefined, 3000, 'removing an app'), 'gone');
    // Made again meanwhile: a removal on the old revision is refused.
    const again = await casPut(client, key, 'v4 from b', undefined, 3000, 'writing an app');
    assert.ok(again);
    assert.equal(await casDelete(client, key, seenByB, 3000, 'removing an app'), 'changed');
    assert.equal(await casDelete(client, key, again, 3000, 'removing an app'), 'deleted');
  });

  void it("a service's removal on the revision its node saw: refused after a push it did not see, which is kept", async () => {
    /** A service record of generation `g` (the store keeps what it is given). */
    const rec = (g: number): ServiceRecord =>
      ({ spec: { name: 'web' }, owner: 'uid:0', generation: g, createdAt: 0, updatedAt: 0 }) as unknown as ServiceRecord;
    // Node A's store follows nothing (no watch): it knows only what it wrote, so its view stays stale.
    const a = new EtcdDesiredStore(client);
    const b = new EtcdDesiredStore(client);
    try {
      await a.put(rec(1));
      assert.deepEqual(
        (await b.start(() => undefined)).map((r) => r.generation),
        [1],
      );
      await b.put(rec(2));
      await assert.rejects(a.put(rec(3)), (e: Error & { code?: string }) => e.code === 'SERVICE_NAME_TAKEN');
      await assert.rejects(
        a.delete('web'),
        (e: Error & { code?: string }) => e.code === 'SERVICE_NAME_TAKEN' && /pushed again on another node/.test(e.message),
      );
      assert.equal((JSON.parse((await held(`${SVC_SPEC}web`)) ?? '{}') as ServiceRecord).generation, 2, 'the newer push kept');
      await b.delete('web');
      assert.equal(await held(`${SVC_SPEC}web`), null);
      // Removed by another node already: no error.
      await a.delete('web');
    } finally {
      await a.close();
      await b.close();
    }
  });
});
