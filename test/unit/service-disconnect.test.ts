/** Which services a node cut off from etcd holds stopped (cluster/service-disconnect.ts), by its lease clock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DisconnectHolds, type LeaseClock } from '../../src/cluster/service-disconnect.js';
import { pushServiceSchema, type ServiceRecord } from '../../src/services/spec.js';

const rec = (name: string, disconnect?: { stopAfter: string }): ServiceRecord => ({
  spec: pushServiceSchema.parse({ name, image: 'host', command: 'true', port: 8000, ...(disconnect ? { disconnect } : {}) }),
  owner: 'uid:0',
  generation: 1,
  createdAt: 0,
  updatedAt: 0,
});

void test('a service is held once the lease was not known alive for its stopAfter; never without it, nor before the node joined', () => {
  const clock: { -readonly [K in keyof LeaseClock]: LeaseClock[K] } & { since: number } = {
    selfId: 'n1',
    currentLease: undefined,
    since: 10_000,
    sinceLeaseAliveMs: () => clock.since,
  };
  const fenced = rec('fenced', { stopAfter: '5s' });
  const kept = rec('kept');
  let told = 0;
  const holds = new DisconnectHolds(
    clock,
    () => [fenced, kept],
    () => told++,
  );
  assert.equal(holds.reason(fenced), null, 'no lease yet: not joined, nothing to hold');
  clock.currentLease = '7';
  clock.since = 4_999;
  assert.equal(holds.reason(fenced), null);
  clock.since = 5_000;
  assert.match(
    holds.reason(fenced) ?? '',
    /^node n1 is cut off from etcd \(its lease not known alive for 5s, disconnect\.stopAfter\)/,
  );
  assert.equal(holds.reason(kept), null, 'without disconnect: keeps running');
  assert.equal(fenced.spec.disconnect?.stopAfter, 5_000);
  assert.equal(kept.spec.disconnect, undefined, 'absent unless set');
  assert.throws(() => rec('x', { stopAfter: '1s' }), /outside 2000ms/);
  // The reconciler is told when a hold starts and when it ends, once each.
  holds.check();
  holds.check();
  assert.equal(told, 1);
  clock.since = 100;
  holds.check();
  assert.equal(told, 2);
  assert.equal(holds.reason(fenced), null);
});
