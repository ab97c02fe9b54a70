/**
 * A node alone (no etcd) is a cluster of one: its node routes answer for it, and a placement a
 * request asks for is checked against it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Sandbox, run, type RealmError } from '@realm/sdk';
import { removeTestDirs, startTestDaemon, testDriverSkipReason, type TestDaemon } from '../helpers/daemon.js';

const skip = await testDriverSkipReason();
const code = (e: unknown): string | undefined => (e as RealmError).code;

void describe('nodes on a lone daemon', { skip }, () => {
  let t: TestDaemon;
  before(async () => {
    t = await startTestDaemon({ warm: 0, tags: ['gpu', 'zone=a'] });
  });
  after(async () => {
    await t?.daemon.close();
    if (t) removeTestDirs(t);
  });

  void it('lists itself, with its tags and report; drain and tags change it', async () => {
    const [self, ...others] = await t.client.nodes.list();
    assert.deepEqual(others, []);
    assert.ok(self);
    assert.equal(self.self, true);
    assert.equal(self.state, 'up');
    assert.deepEqual(self.tags, ['gpu', 'zone=a']);
    assert.equal(self.address, t.url);
    assert.ok(self.report?.drivers.length);
    assert.deepEqual(await t.client.nodes.get(self.id), { ...self, report: (await t.client.nodes.get(self.id)).report });
    const info = await t.client.request<{ cluster: { id: string; clustered: boolean } }>('GET', '/v1/node');
    assert.equal(info.cluster.id, self.id);
    assert.equal(info.cluster.clustered, false);
    await assert.rejects(t.client.nodes.get('nowhere'), (e) => code(e) === 'NODE_NOT_FOUND');

    assert.deepEqual((await t.client.nodes.tag(self.id, { add: ['ssd'], remove: ['gpu'] })).tags, ['ssd', 'zone=a']);
    await assert.rejects(t.client.nodes.tag(self.id, { add: ['no spaces'] }), (e) => code(e) === 'INVALID_REQUEST');
    assert.equal((await t.client.nodes.drain(self.id)).state, 'draining');
    const refused = await run({ language: 'bash', code: 'echo x', placement: { tags: ['ssd'] } }, t.client).catch(
      (e: unknown) => e,
    );
    assert.equal(code(refused), 'NO_NODE_FITS');
    assert.match((refused as Error).message, /draining/);
    assert.equal((await t.client.nodes.drain(self.id, false)).state, 'up');
    await t.client.nodes.tag(self.id, { add: ['gpu'], remove: ['ssd'] });
  });

  void it('a placement is checked against this node: what it has runs, what it lacks is refused with the reason', async () => {
    const r = await run({ language: 'bash', code: 'echo placed', placement: { tags: ['gpu'] } }, t.client);
    assert.equal(r.stdout, 'placed\n');
    const self = (await t.client.nodes.list())[0]?.id ?? '';
    const sb = await Sandbox.create({ placement: { node: self, tags: ['zone=a'] } }, t.client);
    assert.equal((await sb.exec(['echo', 'here'])).stdout, 'here\n');
    await sb.destroy();
    const none = await run({ language: 'bash', code: 'echo x', placement: { tags: ['tpu'] } }, t.client).catch((e: unknown) => e);
    assert.equal(code(none), 'NO_NODE_FITS');
    assert.match((none as Error).message, new RegExp(`node ${self}: no tag tpu`));
    await assert.rejects(Sandbox.create({ placement: { node: 'elsewhere' } }, t.client), (e) => code(e) === 'NODE_NOT_FOUND');
  });

  void it("a job's [targeting] tags are this node's tags as they are now", async () => {
    const spec = { name: 'tpu-job', run: { command: 'echo on tpu' }, targeting: { tags: ['tpu'] } };
    const refused = await t.client.jobs.submit(spec).catch((e: unknown) => e);
    assert.equal(code(refused), 'JOB_UNPLACEABLE');
    assert.match((refused as Error).message, /no tag tpu \(its tags: gpu, zone=a\)/);
    const self = (await t.client.nodes.list())[0]?.id ?? '';
    await t.client.nodes.tag(self, { add: ['tpu'] });
    const job = await t.client.jobs.submit(spec);
    const run = await t.client.jobs.wait(job.name, { intervalMs: 50 });
    assert.equal(run.state, 'succeeded', run.reason ?? '');
    await t.client.jobs.remove(job.name);
  });
});
