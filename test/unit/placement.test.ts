/**
 * Placement over node views as the cluster reports them: tags, driver, size, state, room and load
 * for runs and sandboxes; [targeting], platform names and job slots for jobs; the reasons given.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { misfit, place } from '../../src/cluster/placement.js';
import { jobMisfit, refuseNowhere, samePlatform } from '../../src/cluster/job-placement.js';
import type { NodeView } from '../../src/cluster/types.js';
import { parseJobToml } from '../../src/jobs/spec.js';
import type { RealmError } from '../../src/util/errors.js';

const GiB = 1024 ** 3;

function node(
  id: string,
  o: Partial<NodeView> & { drivers?: string[]; load?: number; slots?: number; memory?: number } = {},
): NodeView {
  return {
    id,
    address: `http://${id}:7070`,
    tags: o.tags ?? [],
    state: o.state ?? 'up',
    fenced: o.fenced ?? false,
    self: o.self ?? false,
    joinedAt: '2026-12-05T00:00:00.000Z',
    report:
      o.report === null
        ? null
        : {
            version: '0',
            platform: 'linux/x86_64',
            hostname: id,
            drivers: o.drivers ?? ['namespace', 'gvisor'],
            capacity: { cpus: 4, memoryBytes: o.memory ?? 8 * GiB, sandboxes: 10, jobs: o.slots ?? 2 },
            load: { sandboxes: o.load ?? 0, loadAvg1: 0 },
            startedAt: '2026-12-05T00:00:00.000Z',
          },
  };
}

const code = (e: unknown): string | undefined => (e as RealmError).code;

void describe('placement', () => {
  void it('a node misfits by state, fence, tag, driver, size and room, each said in words', () => {
    assert.equal(misfit(node('a', { state: 'down', report: null }), { tags: [] }), 'down');
    assert.equal(misfit(node('a', { state: 'draining' }), { tags: [] }), 'draining');
    assert.equal(misfit(node('a', { fenced: true }), { tags: [] }), 'cut off from etcd (fenced)');
    assert.equal(misfit(node('a', { tags: ['x'] }), { tags: ['x', 'gpu'] }), 'no tag gpu');
    assert.equal(misfit(node('a', { drivers: ['namespace'] }), { tags: [], driver: 'gvisor' }), 'driver gvisor unavailable');
    assert.equal(misfit(node('a'), { tags: [], memoryBytes: 16 * GiB }), 'memory 16 GiB asked, it has 8 GiB');
    assert.equal(misfit(node('a'), { tags: [], cpus: 8 }), '8 cpus asked, it has 4');
    assert.equal(misfit(node('a', { load: 10 }), { tags: [] }), 'full (10 of 10 sandboxes)');
    assert.equal(misfit(node('a', { tags: ['gpu'] }), { tags: ['gpu'], driver: 'gvisor', memoryBytes: GiB, cpus: 2 }), null);
  });

  void it('places on the node named, else the least loaded that fits; this node wins a tie; none fits says why per node', () => {
    const nodes = [
      node('a', { self: true, load: 5, tags: ['pool'] }),
      node('b', { load: 2, drivers: ['namespace'], tags: ['pool'] }),
      node('c', { load: 1, tags: ['pool'] }),
    ];
    assert.equal(place(nodes, { tags: [] }).id, 'a', 'no constraint: stays here while this node fits');
    assert.equal(place(nodes, { tags: [], driver: 'gvisor' }).id, 'a', 'this node has the driver');
    assert.equal(place(nodes, { tags: [], node: 'b' }).id, 'b');
    assert.equal(
      place([node('a', { self: true, load: 1, tags: ['pool'] }), node('c', { load: 1, tags: ['pool'] })], { tags: ['pool'] }).id,
      'a',
    );
    assert.equal(place(nodes, { tags: ['pool'] }).id, 'c', 'a constraint: the least loaded that fits');
    assert.throws(
      () => place(nodes, { tags: [], driver: 'microvm', memoryBytes: 32 * GiB }),
      (e) =>
        code(e) === 'NO_NODE_FITS' &&
        /node a: driver microvm unavailable; node b: driver microvm unavailable; node c: driver microvm unavailable/.test(
          (e as Error).message,
        ),
    );
    assert.throws(
      () => place(nodes, { tags: [], memoryBytes: 32 * GiB }),
      (e) => code(e) === 'NO_NODE_FITS' && /node c: memory 32 GiB asked, it has 8 GiB/.test((e as Error).message),
    );
    assert.throws(
      () => place(nodes, { tags: [], node: 'z' }),
      (e) => code(e) === 'NODE_NOT_FOUND',
    );
  });

  void it('runs and sandboxes: a platform asked for is a constraint, by either name of it, refused per node', () => {
    const arm = node('d', { load: 0 });
    if (arm.report) arm.report.platform = 'linux/aarch64';
    const nodes = [node('a', { self: true, load: 5 }), node('b', { load: 2 }), arm];
    assert.equal(misfit(arm, { tags: [], platform: 'linux/arm64' }), null);
    assert.equal(misfit(node('a'), { tags: [], platform: 'linux/arm64' }), 'it is linux/x86_64, not linux/arm64');
    assert.equal(place(nodes, { tags: [], platform: 'linux/arm64' }).id, 'd', 'the one node of that platform');
    // A platform asked for is a constraint: the least loaded of that platform, not simply this node.
    assert.equal(place(nodes, { tags: [], platform: 'linux/amd64' }).id, 'b');
    assert.throws(
      () => place(nodes, { tags: [], platform: 'linux/riscv64' }),
      (e) =>
        code(e) === 'NO_NODE_FITS' &&
        /\(platform linux\/riscv64\): node a: it is linux\/x86_64, not linux\/riscv64; node b: it is linux\/x86_64, not linux\/riscv64; node d: it is linux\/aarch64, not linux\/riscv64/.test(
          (e as Error).message,
        ),
    );
  });

  void it('jobs: platform names, job slots, and a spec no member could ever run refused with every node', () => {
    assert.ok(samePlatform('linux/amd64', 'linux/x86_64'));
    assert.ok(samePlatform('linux/arm64', 'linux/aarch64'));
    assert.ok(!samePlatform('linux/amd64', 'linux/aarch64'));
    const want = { tags: [], memoryBytes: GiB, cpus: 1 };
    assert.equal(jobMisfit(node('a', { slots: 2 }), want, 2), 'busy (2 of 2 job slots)');
    assert.equal(jobMisfit(node('a', { slots: 2 }), want, 1), null);
    assert.equal(jobMisfit(node('a'), { ...want, platform: 'linux/arm64' }, 0), 'it is linux/x86_64, not linux/arm64');
    const spec = (targeting: string): ReturnType<typeof parseJobToml> =>
      parseJobToml(`name = "j"\n[run]\ncommand = "true"\nmemory = "2g"\n[targeting]\n${targeting}\n`);
    const nodes = [node('a', { tags: ['gpu'], drivers: ['namespace'] }), node('b', { state: 'down', report: null })];
    // A down node with the tags may come back: queued, not refused.
    refuseNowhere(nodes, spec('tags = []'));
    refuseNowhere([node('a', { state: 'draining', tags: ['gpu'] })], spec('tags = ["gpu"]'));
    assert.throws(
      () => refuseNowhere(nodes, spec('tags = ["tpu"]')),
      (e) => code(e) === 'JOB_UNPLACEABLE' && /node a: no tag tpu; node b: no tag tpu/.test((e as Error).message),
    );
    assert.throws(
      () => refuseNowhere(nodes.slice(0, 1), spec('driver = "gvisor"')),
      (e) => code(e) === 'JOB_UNPLACEABLE' && /node a: driver gvisor unavailable/.test((e as Error).message),
    );
    assert.throws(
      () => refuseNowhere([node('a', { memory: GiB })], spec('tags = []')),
      (e) => code(e) === 'JOB_UNPLACEABLE' && /node a: memory 2 GiB asked, it has 1 GiB/.test((e as Error).message),
    );
  });
});
