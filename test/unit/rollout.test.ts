/**
 * The rollout policy (src/services/rollout.ts) and the history it leaves (history.ts), without
 * sandboxes: one replica at a time with a generation to go back to, all at once without one,
 * failures named, and generations numbered past every one used.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lastGeneration, nextGeneration, settle, specDigest } from '../../src/services/history.js';
import { type RolloutReplica, rolloutStep } from '../../src/services/rollout.js';
import { type ServiceRecord, pushServiceSchema } from '../../src/services/spec.js';

const spec = pushServiceSchema.parse({ name: 'web', image: 'host', command: 'serve', port: 8000, replicas: 3 });
const NOW = 1_000_000;

function rec(from: boolean): ServiceRecord {
  return {
    spec,
    owner: 'uid:0',
    generation: 2,
    createdAt: 0,
    updatedAt: 0,
    rollout: { startedAt: NOW, from: from ? { generation: 1, spec } : null },
  };
}

let seq = 0;
function replica(generation: number, o: Partial<RolloutReplica> = {}): RolloutReplica {
  const healthy = o.healthy ?? true;
  return {
    id: `r${++seq}`,
    generation,
    startedAt: NOW - 1000,
    healthy,
    healthySince: healthy ? NOW - 500 : 0,
    everHealthy: healthy,
    failures: 0,
    exit: null,
    ...o,
  };
}

void describe('rollout steps', () => {
  void it('replaces one replica at a time: one new starts, an old goes only once it is healthy', () => {
    const old = [replica(1), replica(1), replica(1)];
    const s0 = rolloutStep(rec(true), old, 0, NOW);
    assert.deepEqual(s0, { kind: 'step', launch: 1, stop: [], done: false });
    // Starting: nothing more.
    assert.deepEqual(rolloutStep(rec(true), old, 1, NOW), { kind: 'step', launch: 0, stop: [], done: false });
    // Started, not healthy yet: nothing more.
    const fresh = replica(2, { healthy: false, startedAt: NOW - 100 });
    assert.deepEqual(rolloutStep(rec(true), [...old, fresh], 0, NOW), { kind: 'step', launch: 0, stop: [], done: false });
    // Healthy: one old goes (the oldest), and the next new one may start.
    const ready = replica(2);
    const s1 = rolloutStep(rec(true), [...old, ready], 0, NOW);
    assert.equal(s1.kind, 'step');
    if (s1.kind !== 'step') return;
    assert.equal(s1.stop.length, 1);
    assert.equal(s1.launch, 1);
    assert.equal(s1.done, false);
  });

  void it('is done when every wanted replica is new and healthy and the old are going', () => {
    const s = rolloutStep(rec(true), [replica(2), replica(2), replica(2), replica(1)], 0, NOW);
    assert.equal(s.kind === 'step' && s.done && s.stop.length === 1 && s.launch === 0, true);
  });

  void it('waits minHealthyTime before a new replica counts', () => {
    const r = { ...rec(true), spec: { ...spec, update: { ...spec.update, minHealthyTime: 10_000 } } };
    const s = rolloutStep(r, [replica(1), replica(1), replica(1), replica(2)], 0, NOW);
    assert.deepEqual(s, { kind: 'step', launch: 0, stop: [], done: false });
  });

  void it('fails on a crash, on a replica not healthy past the deadline, and on one that turned unhealthy', () => {
    assert.deepEqual(rolloutStep(rec(true), [], 0, NOW, 'replica x exited (exit code 1)'), {
      kind: 'fail',
      reason: 'replica x exited (exit code 1)',
    });
    const late = replica(2, { healthy: false, startedAt: NOW - spec.update.healthyDeadline - 1 });
    const s = rolloutStep(rec(true), [replica(1), late], 0, NOW);
    assert.equal(s.kind, 'fail');
    assert.match(s.kind === 'fail' ? s.reason : '', new RegExp(`replica ${late.id} was not healthy within 5m`));
    const sick = replica(2, { healthy: false, everHealthy: true, failures: 3 });
    const t = rolloutStep(rec(true), [replica(1), sick], 0, NOW);
    assert.match(t.kind === 'fail' ? t.reason : '', /failed 3 health checks in a row/);
  });

  void it('starts every replica at once with nothing to go back to, the old going once all are healthy', () => {
    assert.deepEqual(rolloutStep(rec(false), [replica(1)], 0, NOW), { kind: 'step', launch: 3, stop: [], done: false });
    const s = rolloutStep(rec(false), [replica(1), replica(2), replica(2), replica(2)], 0, NOW);
    assert.equal(s.kind === 'step' && s.done && s.stop.length === 1, true);
  });
});

void describe('generation history', () => {
  void it('numbers generations past every one used, supersedes one rolling out, and settles outcomes', () => {
    const first = nextGeneration(undefined, spec, 1, 'uid:1', 'push', 10);
    assert.equal(first.rollout.from, null);
    let r: ServiceRecord = { spec, owner: 'uid:1', generation: 1, createdAt: 10, updatedAt: 10, ...first };
    r = { ...r, rollout: undefined, history: settle(r, 1, 'rolled-out', null, 20) };
    const second = nextGeneration(r, spec, 2, 'uid:1', 'restart', 30);
    assert.deepEqual(second.rollout.from, { generation: 1, spec });
    r = { ...r, generation: 2, ...second };
    // A push while 2 rolls out: 3 rolls out from 1 as well, and 2 is superseded.
    const third = nextGeneration(r, spec, 3, 'uid:1', 'push', 40);
    assert.deepEqual(third.rollout.from, { generation: 1, spec });
    assert.deepEqual(
      third.history.map((h) => [h.generation, h.outcome]),
      [
        [1, 'rolled-out'],
        [2, 'superseded'],
        [3, 'rolling-out'],
      ],
    );
    // Rolled back to 1: the next generation is 4, not 2.
    r = { ...r, generation: 1, rollout: undefined, history: settle({ ...r, ...third }, 3, 'rolled-back', 'x', 50) };
    assert.equal(lastGeneration(r), 3);
  });

  void it('digests equal specs alike whatever their key order, and different ones apart', () => {
    const shuffled = Object.fromEntries(Object.entries(spec).reverse()) as typeof spec;
    assert.equal(specDigest(shuffled), specDigest(spec));
    assert.notEqual(specDigest({ ...spec, command: 'other' }), specDigest(spec));
    assert.match(specDigest(spec), /^sha256:[0-9a-f]{64}$/);
  });
});
