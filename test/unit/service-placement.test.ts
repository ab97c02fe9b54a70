/** The leader's plan for a service's replicas (src/cluster/service-placement.ts). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { planService } from '../../src/cluster/service-placement.js';
import type { NodeView } from '../../src/cluster/types.js';
import { pushServiceSchema } from '../../src/services/spec.js';

const node = (id: string, tags: string[] = [], state: NodeView['state'] = 'up'): NodeView => ({
  id,
  address: `http://${id}`,
  tags,
  state,
  fenced: false,
  self: false,
  joinedAt: '',
  report:
    state === 'down'
      ? null
      : {
          version: '0',
          platform: 'linux/x86_64',
          hostname: id,
          drivers: ['namespace'],
          capacity: { cpus: 2, memoryBytes: 8 * 1024 ** 3, sandboxes: 100 },
          load: { sandboxes: 0, loadAvg1: 0 },
          startedAt: '',
        },
});
const spec = (replicas: number, tags: string[] = []) =>
  pushServiceSchema.parse({ name: 'web', image: 'host', command: 'x', port: 80, replicas, tags });
const plain = (m: Map<string, number>): Record<string, number> => Object.fromEntries([...m].sort());

void describe('service placement', () => {
  void it('spreads replicas over the nodes that fit', () => {
    const p = planService('web', spec(2), [node('a'), node('b'), node('c')], new Map(), new Map());
    assert.equal(p.reason, null);
    assert.deepEqual([...p.target.values()], [1, 1]);
  });

  void it("keeps replicas where they are, and places a down node's again on another", () => {
    const nodes = [node('a'), node('b', [], 'down'), node('c')];
    const p = planService(
      'web',
      spec(2),
      nodes,
      new Map([
        ['a', 1],
        ['b', 1],
      ]),
      new Map(),
    );
    assert.deepEqual(plain(p.target), { a: 1, c: 1 });
  });

  void it('honours target tags, and says why when no node fits', () => {
    const nodes = [node('a', ['gpu']), node('b')];
    assert.deepEqual(plain(planService('web', spec(3, ['gpu']), nodes, new Map(), new Map()).target), { a: 3 });
    const none = planService('web', spec(1, ['tpu']), nodes, new Map(), new Map());
    assert.equal(none.target.size, 0);
    assert.match(
      none.reason ?? '',
      /1 of 1 replicas of service web not placed: no node fits \(node a: no tag tpu; node b: no tag tpu\)/,
    );
  });

  void it("runs a pinned service (its state volume's node) only on that node, and waits while it is down", () => {
    const pin = { node: 'b', why: 'its state volume svc.web.data is on node b' };
    const nodes = [node('a'), node('b'), node('c')];
    const p = planService('web', spec(2), nodes, new Map([['a', 1]]), new Map(), pin);
    assert.deepEqual(plain(p.target), { b: 2 });
    assert.equal(p.reason, null);
    const down = planService('web', spec(2), [node('a'), node('b', [], 'down')], new Map([['b', 2]]), new Map(), pin);
    assert.equal(down.target.size, 0);
    assert.match(
      down.reason ?? '',
      /2 of 2 replicas of service web not placed: no node fits \(node a: its state volume svc\.web\.data is on node b; node b: down\); they wait for node b/,
    );
  });

  void it('scales down from the node with the most', () => {
    const p = planService(
      'web',
      spec(2),
      [node('a'), node('b')],
      new Map([
        ['a', 2],
        ['b', 1],
      ]),
      new Map(),
    );
    assert.deepEqual(plain(p.target), { a: 1, b: 1 });
  });
});
