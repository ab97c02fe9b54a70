/** Which services a node cut off from etcd holds stopped (cluster/service-disconnect.ts), by its lease clock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DisconnectHolds, type LeaseClock } from '../../src/cluster/service-disconnect.js';
import { addLogSink } from '../../src/logs/log.js';
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

void test('the hold is said once per cut, whether the reconciler asks first (and stops the replicas) or the clock looks first', () => {
  const warnings: string[] = [];
  const detach = addLogSink({ write: (level, msg) => void (level === 'warn' && warnings.push(msg)) });
  try {
    const clock = { selfId: 'n1', currentLease: '7', since: 0, sinceLeaseAliveMs: () => clock.since };
    const fenced = rec('fenced', { stopAfter: '3s' });
    let running = true;
    const holds = new DisconnectHolds(
      clock,
      () => [fenced],
      () => undefined,
      () => running,
    );
    clock.since = 3_500;
    // The reconciler's pass comes first: it reads the reason, then stops the replica.
    assert.ok(holds.reason(fenced));
    running = false;
    holds.check();
    holds.check();
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0] ?? '', /^service fenced: node n1 cut off from etcd for 3\.5 s since its lease was last known alive/);
    // In touch again, then a second cut: said again; the clock's look first this time.
    clock.since = 100;
    holds.check();
    running = true;
    clock.since = 3_200;
    holds.check();
    assert.equal(warnings.length, 2);
    // A node that runs no replica of the service says nothing.
    clock.since = 100;
    holds.check();
    running = false;
    clock.since = 4_000;
    holds.check();
    assert.equal(warnings.length, 2);
  } finally {
    detach();
  }
});
