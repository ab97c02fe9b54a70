/**
 * The daemon's log without a daemon: rotation keeps the files bounded (size, count), reading back
 * spans the files and the ring in order, the query's parameters, the text form, and the fallback
 * to stderr when no daemon logs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DaemonLogs } from '../../src/logs/logger.js';
import { log } from '../../src/logs/log.js';
import { logFiles } from '../../src/logs/files.js';
import { parseLogQuery } from '../../src/logs/query.js';
import { LogRing } from '../../src/logs/ring.js';
import { textLine } from '../../src/logs/text.js';
import { readLogs } from '../../src/daemon/routes/logs.js';
import { requestContext } from '../../src/logs/context.js';
import { EventBus } from '../../src/engine/events.js';
import { RealmError } from '../../src/util/errors.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'realm-logs-'));

void describe('log files', () => {
  void it('rotate by size and keep at most the current file and N rotated ones', async () => {
    const dir = tmp();
    try {
      const logs = new DaemonLogs({ dir, maxFileBytes: 8192, files: 3, stderr: false });
      const pad = 'x'.repeat(150);
      for (let i = 0; i < 2000; i++) {
        log.info(`line ${i} ${pad}`, { n: i });
        // Let rotations run between bursts, as a daemon's lines come.
        if (i % 100 === 99) await new Promise((r) => setImmediate(r));
      }
      await logs.close();
      const names = readdirSync(dir).sort();
      assert.deepEqual(names, ['realm.log', 'realm.log.1', 'realm.log.2', 'realm.log.3'], names.join(' '));
      for (const n of names) {
        const st = statSync(join(dir, n));
        assert.ok(st.size <= 8192 + 400, `${n} is ${st.size} bytes`);
        assert.equal(st.mode & 0o777, 0o600, `${n} is the admin's alone`);
      }
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      // The newest line is last in realm.log, and the files read oldest first run on without a gap.
      const current = readFileSync(join(dir, 'realm.log'), 'utf8').trim().split('\n');
      assert.equal((JSON.parse(current.at(-1) ?? '{}') as { n: number }).n, 1999);
      const all = logFiles(dir).flatMap((f) => readFileSync(f, 'utf8').trim().split('\n'));
      const ns = all.map((l) => (JSON.parse(l) as { n: number }).n);
      assert.deepEqual(
        ns,
        ns.map((_, i) => ns[0] + i),
      );
      assert.ok(ns[0] > 0, 'the oldest lines were let go');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('reads older lines from the files where the ring does not reach', async () => {
    const dir = tmp();
    try {
      const logs = new DaemonLogs({ dir, ringSize: 10, stderr: false });
      for (let i = 0; i < 100; i++) log.info(`line ${i}`, { n: i, ...(i % 2 ? { sandboxId: 'sb-odd' } : {}) });
      await logs.close(); // flushed to the file; the ring and the files stay readable
      const n = (rs: Record<string, unknown>[]): unknown[] => rs.map((r) => r.n);
      assert.deepEqual(n(await readLogs(logs, { limit: 5 })), [95, 96, 97, 98, 99], 'from the ring alone');
      const many = n(await readLogs(logs, { limit: 30 }));
      assert.deepEqual(
        many,
        Array.from({ length: 30 }, (_, i) => 70 + i),
        'the files, then the ring, in order, none twice',
      );
      const odd = n(await readLogs(logs, { limit: 12, sandbox: 'sb-odd' }));
      assert.deepEqual(
        odd,
        Array.from({ length: 12 }, (_, i) => 77 + 2 * i),
      );
      assert.deepEqual(await readLogs(logs, { limit: 5, level: 'warn' }), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

void describe('log lines', () => {
  void it('reach stderr after the turn that logged them, all of that turn in one write', async () => {
    const logs = new DaemonLogs({ level: 'info' });
    const writes: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = (chunk: string | Uint8Array): boolean => {
      writes.push(String(chunk));
      return true;
    };
    try {
      // As while answering a request: its lines go out after the answer, not before it.
      log.info('first');
      log.info('second');
      assert.deepEqual(writes, [], 'nothing written during the turn');
      assert.deepEqual(
        logs.ring.tail(() => true, 2).map((l) => l.msg),
        ['first', 'second'],
        'the ring has them at once',
      );
      await new Promise((r) => setImmediate(r));
      assert.equal(writes.length, 1);
      assert.match(writes[0] ?? '', /first[^]*\n.*second/);
    } finally {
      process.stderr.write = write;
      await logs.close();
    }
  });

  void it('carry the request being served, but not after its answer', async () => {
    const logs = new DaemonLogs({ stderr: false });
    try {
      const ctx = { requestId: 'r-1', done: false };
      await requestContext.run(ctx, async () => {
        log.info('during');
        ctx.done = true;
        await Promise.resolve();
        log.info('after');
      });
      const [during, after] = logs.ring.tail(() => true, 2);
      assert.equal(during?.requestId, 'r-1');
      assert.equal(after?.requestId, undefined);
    } finally {
      await logs.close();
    }
  });

  void it('log events with their ids under the log names, and levels filter', async () => {
    const logs = new DaemonLogs({ level: 'info', stderr: false });
    const bus = new EventBus();
    try {
      logs.follow(bus);
      bus.emit({ type: 'run.finished', owner: 'uid:5', ids: { run: 'run-1' }, data: { verdict: 'ok' } });
      bus.emit({ type: 'sandbox.oom', owner: 'uid:5', ids: { sandbox: 'sb-1' } });
      bus.emit({ type: 'app.pushed', owner: 'uid:5', ids: { app: 'hello' } });
      log.debug('not kept at info');
      const lines = logs.ring.tail(() => true, 10);
      assert.deepEqual(
        lines.map((l) => [l.level, l.msg]),
        [
          ['info', 'run.finished run-1'],
          ['warn', 'sandbox.oom sb-1'],
          ['info', 'app.pushed hello'],
        ],
      );
      assert.equal(lines[0]?.runId, 'run-1');
      assert.deepEqual(lines[0]?.data, { verdict: 'ok' });
      assert.equal(lines[1]?.sandboxId, 'sb-1');
      assert.equal(lines[2]?.service, 'hello');
      assert.equal(lines[0]?.owner, 'uid:5');
    } finally {
      await logs.close();
    }
  });

  void it('a text line is concise: level (but info), message, the other fields', () => {
    assert.equal(
      textLine({ level: 'warn', time: 't', pid: 1, msg: 'sandbox sb-1 denied x:1', sandboxId: 'sb-1', reason: 'not allowed' }),
      'realm: WARN sandbox sb-1 denied x:1 sandboxId=sb-1 reason="not allowed"\n',
    );
    assert.equal(textLine({ level: 'info', msg: 'up', err: new Error('boom') }), 'realm: up err="boom"\n');
  });
});

void describe('log queries', () => {
  void it('take levels, a sandbox, times, durations ago and limits; refuse the rest', () => {
    const now = Date.parse('2026-12-05T10:00:00Z');
    assert.deepEqual(parseLogQuery({}, now), { limit: 100 });
    assert.deepEqual(parseLogQuery({ level: 'warn', sandbox: 'sb-1', limit: '5' }, now), {
      level: 'warn',
      sandbox: 'sb-1',
      limit: 5,
    });
    assert.equal(parseLogQuery({ since: '10m' }, now).since, now - 600_000);
    assert.equal(parseLogQuery({ since: '2026-12-05T09:00:00Z' }, now).since, now - 3_600_000);
    assert.equal(parseLogQuery({ since: String(now) }, now).since, now);
    for (const bad of [
      { level: 'loud' },
      { since: 'yesterday' },
      { since: '2026-13-45T99:00:00Z' },
      { limit: '0' },
      { limit: '10001' },
    ])
      assert.throws(() => parseLogQuery(bad, now), RealmError);
  });

  void it("the ring covers a time once it holds every line since, not before the daemon's start", () => {
    const ring = new LogRing(3);
    const at = (ms: number): string => JSON.stringify({ level: 'info', time: new Date(ms).toISOString(), msg: String(ms) });
    const start = Date.now();
    assert.equal(ring.covers(undefined), false);
    assert.equal(ring.covers(start - 60_000), false, 'an earlier life of the daemon is in the files only');
    assert.equal(ring.covers(start + 1000), true);
    for (const ms of [start + 1, start + 2, start + 3, start + 4]) ring.push(at(ms));
    assert.equal(ring.covers(start + 1), false, 'its first line was let go');
    assert.equal(ring.covers(start + 2), true);
    assert.equal(ring.push('not json'), undefined);
  });
});

void describe('log without a daemon', () => {
  void it('writes info and above to stderr as text', (t) => {
    const written: string[] = [];
    t.mock.method(process.stderr, 'write', (s: string) => written.push(s) > 0);
    log.debug('hidden');
    log.warn('careful', { sandboxId: 'sb-9' });
    t.mock.restoreAll();
    assert.deepEqual(written, ['realm: WARN careful sandboxId=sb-9\n']);
  });
});
