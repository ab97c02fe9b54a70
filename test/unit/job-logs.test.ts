/** Job logs all together stay under their bound: the runs that ended first lose their logs first, never a running one. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { JobLogs, boundLogs } from '../../src/jobs/logs.js';
import type { JobRunRecord } from '../../src/jobs/records.js';
import { parseJobSpec } from '../../src/jobs/spec.js';

const spec = parseJobSpec({ name: 'j', run: { command: 'true' } });

function run(id: string, attempts: number, endedAt?: number): JobRunRecord {
  return {
    id,
    job: 'j',
    n: 1,
    state: endedAt === undefined ? 'running' : 'succeeded',
    spec,
    inputs: [],
    createdAt: 0,
    ...(endedAt === undefined ? {} : { endedAt }),
    attempts: Array.from({ length: attempts }, (_, i) => ({
      n: i + 1,
      state: endedAt === undefined && i === attempts - 1 ? 'running' : 'failed',
      startedAt: 0,
      artifacts: [],
      logBytes: 10_000,
    })),
  };
}

/** Bytes of every log file under `dir`, as the disk says. */
function onDisk(dir: string): number {
  let n = 0;
  for (const r of readdirSync(dir))
    for (const f of readdirSync(join(dir, r))) if (f.endsWith('.log')) n += statSync(join(dir, r, f)).size;
  return n;
}

void test('the oldest ended runs lose their logs first, each marked; a running one keeps its log; the count survives a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'realm-job-logs-'));
  try {
    const logs = new JobLogs(dir);
    // Ended second, first, third; and one still running (its log open).
    const runs = [run('run-b', 1, 2000), run('run-a', 2, 1000), run('run-c', 1, 3000), run('run-live', 1)];
    for (const r of runs) {
      for (const a of r.attempts) {
        const w = logs.open(r.id, a.n);
        w.write(Buffer.alloc(10_000, 'x'));
        if (a.state !== 'running') void w.end();
      }
    }
    await logs.settled();
    assert.equal(logs.total, 50_000);
    assert.deepEqual(boundLogs(logs, runs, 60_000), [], 'under the bound: nothing goes');

    assert.deepEqual(boundLogs(logs, runs, 35_000), ['run-a'], 'the run that ended first goes first');
    assert.ok(logs.total <= 35_000);
    assert.equal(logs.total, onDisk(dir));
    assert.ok(logs.dropped('run-a'));
    assert.equal(logs.dropped('run-b'), undefined);
    for (const n of [1, 2])
      assert.match(
        readFileSync(logs.file('run-a', n), 'utf8'),
        /^realm: this log \(10000 bytes\) was dropped at .*: this node keeps at most 35000 bytes of job logs/,
      );

    // Past what the ended runs hold: they all go, the running one's log stays whole.
    assert.deepEqual(boundLogs(logs, runs, 1_000), ['run-b', 'run-c']);
    assert.equal(logs.dropped('run-live'), undefined);
    assert.equal(statSync(logs.file('run-live', 1)).size, 10_000);
    assert.equal(logs.total, onDisk(dir));

    // After a restart: the same count, the same marks.
    const again = new JobLogs(dir);
    assert.equal(again.total, logs.total);
    assert.equal(again.dropped('run-a'), logs.dropped('run-a'));
    again.remove('run-b');
    assert.equal(again.dropped('run-b'), undefined);
    assert.equal(again.total, onDisk(dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Everything `read` gives for an attempt's log from `from` (following: until the log ends). */
function readAll(logs: JobLogs, run: string, from: number, follow: boolean): Promise<string> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    logs.read(
      run,
      1,
      { from, follow },
      (c) => got.push(c),
      () => resolve(Buffer.concat(got).toString()),
    );
  });
}

void test('a log read while its chunks are on their way to the file: all of it, in order, from any offset; a removed run leaves nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'realm-job-logs-'));
  try {
    const logs = new JobLogs(dir);
    const w = logs.open('run-x', 1);
    const parts = ['alpha ', 'beta ', 'gamma ', 'delta'];
    // Readers start at every stage: before the file exists, between writes, after the end.
    const readers: Promise<string>[] = [readAll(logs, 'run-x', 0, true)];
    for (const p of parts) {
      w.write(Buffer.from(p));
      readers.push(readAll(logs, 'run-x', 0, true), readAll(logs, 'run-x', 8, true), readAll(logs, 'run-x', 0, false));
      await new Promise((r) => setImmediate(r));
    }
    void w.end();
    readers.push(readAll(logs, 'run-x', 0, false), readAll(logs, 'run-x', 3, true));
    const whole = parts.join('');
    const got = await Promise.all(readers);
    assert.equal(got[0], whole);
    for (let i = 0; i < parts.length; i++) {
      const sofar = parts.slice(0, i + 1).join('');
      assert.equal(got[1 + 3 * i], whole, `following from 0 after write ${i + 1}`);
      // An offset past what there is reads from the end.
      assert.equal(got[2 + 3 * i], whole.slice(Math.min(8, sofar.length)), `following from 8 after write ${i + 1}`);
      assert.equal(got[3 + 3 * i], sofar, `not following, after write ${i + 1}`);
    }
    assert.equal(got.at(-2), whole);
    assert.equal(got.at(-1), whole.slice(3));
    await logs.settled();
    assert.equal(readFileSync(logs.file('run-x', 1), 'utf8'), whole);
    assert.equal(logs.writing('run-x', 1), false);
    assert.equal(logs.total, whole.length);

    // Removed while its writes are still to come: no directory comes back, nothing stays counted.
    const v = logs.open('run-y', 1);
    v.write(Buffer.from('some bytes'));
    logs.remove('run-y');
    v.write(Buffer.from('more'));
    void v.end();
    await logs.settled();
    assert.equal(existsSync(join(dir, 'run-y')), false);
    assert.equal(logs.total, whole.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test("a log's end resolves once every chunk written is in its file: a run is recorded with its log whole", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'realm-job-logs-'));
  try {
    const logs = new JobLogs(dir);
    const w = logs.open('run-end', 1);
    // A program's flood, then realm's own last line: thousands of writes still on their way.
    for (let i = 0; i < 4000; i++) w.write(Buffer.alloc(4096, 'x'));
    w.write(Buffer.from('realm: the last line\n'));
    await w.end();
    const file = readFileSync(logs.file('run-end', 1));
    assert.equal(file.length, w.bytes);
    assert.ok(file.subarray(-21).equals(Buffer.from('realm: the last line\n')));
    assert.equal(logs.writing('run-end', 1), false);
    assert.equal(await w.end(), undefined, 'a second end resolves as the first');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
