/** The job queue is bounded and fair across owners; an ended run is written once. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FairQueue } from '../../src/jobs/queue.js';
import type { JobRunRecord } from '../../src/jobs/records.js';
import { parseJobSpec } from '../../src/jobs/spec.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';

void test('runs take turns across owners, oldest first within each; past the bound, CAPACITY_EXCEEDED', () => {
  const q = new FairQueue(5);
  q.push('a1', 'alice');
  q.push('a2', 'alice');
  q.push('a3', 'alice');
  q.push('b1', 'bob');
  assert.equal(q.position('b1'), 2, "bob's one run is second, not fourth");
  assert.equal(q.position('a3'), 4);
  q.push('c1', 'carol');
  assert.throws(
    () => q.push('c2', 'carol'),
    (e: Error & { code?: string }) => e.code === 'CAPACITY_EXCEEDED' && /queue is full \(5 runs/.test(e.message),
  );
  q.requeue('a0', 'alice'); // a retry is never refused
  assert.equal(q.remove('a2'), true);
  const order: string[] = [];
  for (let r = q.next(); r; r = q.next()) order.push(r);
  assert.deepEqual(order, ['a1', 'b1', 'c1', 'a3', 'a0']);
  assert.equal(q.length, 0);
});

void test('a run that has ended is written once: a second write of it changes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'realm-store-'));
  const store = new SqliteStore(join(dir, 'state.db'));
  try {
    const run: JobRunRecord = {
      id: 'run-000000000001',
      job: 'build',
      n: 1,
      state: 'running',
      spec: parseJobSpec({ name: 'build', run: { command: 'make' } }),
      inputs: [],
      createdAt: 1,
      attempts: [],
    };
    assert.equal(await store.putJobRun(run), true);
    assert.equal(await store.putJobRun({ ...run, state: 'succeeded', reason: 'done' }), true);
    assert.equal(await store.putJobRun({ ...run, state: 'running' }), false, 'an ended run never runs again');
    assert.equal((await store.getJobRun(run.id))?.reason, 'done');
    assert.deepEqual(
      (await store.listJobRuns('build')).map((r) => r.state),
      ['succeeded'],
    );
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
