/**
 * The event stream (GET /v1/events) and a sandbox's live stats, on a real daemon: a sandbox's
 * life in order, an OOM kill, runs' verdicts, filters, owners, Last-Event-ID resumes, a reader
 * too slow to keep; memory of a memory hog rising in its stats; a gone sandbox's stats a 404.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { before, describe, it } from 'node:test';
import { Client, ConflictError, type RealmEvent, Sandbox, SandboxNotFoundError, events, run } from '@realm/sdk';
import { spawn } from 'node:child_process';
import { REALM_BIN, realm } from '../helpers/cli.js';
import { daemonHooks, userClient, namespaceSkipReason, type TestDaemon } from '../helpers/daemon.js';
import { READER_BACKLOG } from '../../src/daemon/routes/events.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping event and stats tests: ${skip}`);

/** Events read in the background, and a wait for the first that `pred` holds for. */
function follow(
  client: Client,
  opts: Parameters<typeof events>[0] = {},
): {
  seen: RealmEvent[];
  until: (pred: (e: RealmEvent) => boolean) => Promise<RealmEvent>;
  stop: () => void;
} {
  const seen: RealmEvent[] = [];
  const waiting: { pred: (e: RealmEvent) => boolean; done: (e: RealmEvent) => void }[] = [];
  const abort = new AbortController();
  let failed: unknown;
  void (async () => {
    try {
      for await (const e of events({ ...opts, signal: abort.signal }, client)) {
        seen.push(e);
        for (const w of [...waiting])
          if (w.pred(e)) {
            waiting.splice(waiting.indexOf(w), 1);
            w.done(e);
          }
      }
    } catch (e) {
      if (!abort.signal.aborted) failed = e;
    }
  })();
  return {
    seen,
    until: (pred) => {
      if (failed)
        return Promise.reject(failed instanceof Error ? failed : new Error('the event stream failed', { cause: failed }));
      const hit = seen.find(pred);
      return hit ? Promise.resolve(hit) : new Promise((done) => waiting.push({ pred, done }));
    },
    stop: () => abort.abort(),
  };
}

/** A stream is live once it has seen an event emitted after it opened: one of its own making. */
async function opened(t: TestDaemon, f: ReturnType<typeof follow>, tag: string, labels?: Record<string, string>): Promise<void> {
  // node events reach every reader whatever its owner; its filters must let node.* (with `labels`) in.
  const mark = (): void => t.daemon.engine.events.emit({ type: 'node.joined', owner: null, ids: { node: tag }, labels });
  const timer = setInterval(mark, 50);
  try {
    mark();
    await f.until((e) => e.type === 'node.joined' && e.ids?.node === tag);
  } finally {
    clearInterval(timer);
  }
}

void describe('event stream', { skip }, () => {
  let t: TestDaemon;
  let user: Client;
  daemonHooks((d) => (t = d), { warm: 0 });
  before(async () => {
    if (skip) return;
    // A user with a token of its own (made in the daemon's store, as `realm token create` would).
    user = await userClient(t, 'uid:4201');
  });

  void it("a sandbox's life comes in order: created, started, stopped, started, destroyed", async () => {
    const f = follow(t.client, { types: ['sandbox.*', 'node.*'], labels: { life: 'one' } });
    try {
      await opened(t, f, 'life', { life: 'one' });
      const sb = await Sandbox.create({ image: 'host', labels: { life: 'one' } }, t.client);
      await sb.stop();
      await sb.start();
      await sb.destroy();
      await f.until((e) => e.type === 'sandbox.destroyed');
      const mine = f.seen.filter((e) => e.ids?.sandbox === sb.id);
      assert.deepEqual(
        mine.map((e) => e.type),
        ['sandbox.created', 'sandbox.started', 'sandbox.stopped', 'sandbox.started', 'sandbox.destroyed'],
      );
      const ids = mine.map((e) => e.id ?? 0);
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => a - b),
        'ids rise',
      );
      assert.deepEqual(mine[0]?.labels, { life: 'one' });
      assert.equal(mine[0]?.data.driver, 'namespace');
    } finally {
      f.stop();
    }
  });

  void it('a command killed for memory makes a sandbox.oom event', async () => {
    const f = follow(t.client, { types: ['sandbox.oom', 'node.*'] });
    const sb = await Sandbox.create({ image: 'host', memory: '64m' }, t.client);
    try {
      await opened(t, f, 'oom');
      const r = await sb.exec(['/usr/bin/python3', '-c', 'a = []\nwhile True: a.append(bytearray(8 << 20))'], {
        timeout: 30_000,
      });
      assert.equal(r.verdict, 'oom');
      const e = await f.until((x) => x.type === 'sandbox.oom');
      assert.equal(e.ids?.sandbox, sb.id);
    } finally {
      f.stop();
      await sb.destroy();
    }
  });

  void it('run.finished carries the language, driver, verdict and wall time; a type filter keeps out the rest', async () => {
    const f = follow(t.client, { types: ['run.finished', 'node.*'] });
    try {
      await opened(t, f, 'runs');
      await run({ language: 'python', code: 'print(1)' }, t.client);
      await run({ language: 'python', code: 'raise SystemExit(3)' }, t.client);
      const sb = await Sandbox.create({ image: 'host' }, t.client); // not a run: filtered out
      await sb.destroy();
      await run({ language: 'python', code: 'print(2)' }, t.client); // the last, to know all came
      await f.until((e) => e.type === 'run.finished' && f.seen.filter((x) => x.type === 'run.finished').length === 3);
      const runs = f.seen.filter((e) => e.type === 'run.finished');
      assert.deepEqual(
        runs.map((e) => e.data.verdict),
        ['ok', 'runtime-error', 'ok'],
      );
      for (const e of runs) {
        assert.equal(e.data.language, 'python');
        assert.equal(e.data.driver, 'namespace');
        assert.equal(typeof e.data.wallMs, 'number');
        assert.match(e.ids?.run ?? '', /^run-/);
      }
      assert.deepEqual(
        f.seen.filter((e) => !e.type.startsWith('node.') && e.type !== 'run.finished'),
        [],
      );
    } finally {
      f.stop();
    }
  });

  void it("another user sees its own sandbox's events, not root's; root sees both", async () => {
    const mine = follow(user, { types: ['sandbox.created', 'node.*'] });
    const root = follow(t.client, { types: ['sandbox.created', 'node.*'] });
    try {
      await Promise.all([opened(t, mine, 'owners-u'), opened(t, root, 'owners-r')]);
      const rootBox = await Sandbox.create({ image: 'host' }, t.client);
      const userBox = await Sandbox.create({ image: 'host' }, user);
      // Events come in order: by the user's own, root's (made before) would have come.
      await mine.until((e) => e.ids?.sandbox === userBox.id);
      await root.until((e) => e.ids?.sandbox === userBox.id);
      assert.ok(!mine.seen.some((e) => e.ids?.sandbox === rootBox.id), "the user saw root's sandbox");
      assert.ok(root.seen.some((e) => e.ids?.sandbox === rootBox.id));
      await rootBox.destroy();
      await userBox.destroy();
    } finally {
      mine.stop();
      root.stop();
    }
  });

  void it('Last-Event-ID resumes after the id given; an id of no event of this daemon says there is a gap', async () => {
    const first = follow(t.client, { types: ['sandbox.*', 'node.*'], labels: { resume: 'yes' } });
    let ids: number[];
    try {
      await opened(t, first, 'resume', { resume: 'yes' });
      const sb = await Sandbox.create({ image: 'host', labels: { resume: 'yes' } }, t.client);
      await sb.destroy();
      await first.until((e) => e.type === 'sandbox.destroyed');
      ids = first.seen.filter((e) => e.ids?.sandbox === sb.id).map((e) => e.id ?? 0);
    } finally {
      first.stop();
    }
    assert.equal(ids.length, 3);
    const again = follow(t.client, { types: ['sandbox.*'], labels: { resume: 'yes' }, after: ids[0] ?? 0 });
    try {
      await again.until((e) => e.id === ids[2]);
      assert.deepEqual(
        again.seen.map((e) => e.id),
        ids.slice(1),
      );
    } finally {
      again.stop();
    }
    const late = follow(t.client, { after: 1e12 });
    try {
      const gap = await late.until((e) => e.type === 'stream.gap');
      assert.equal(gap.id, undefined);
      assert.match(String(gap.data.reason), /restarted/);
    } finally {
      late.stop();
    }
  });

  void it("a job run's states come in order, ending in its verdict's", async () => {
    const f = follow(user, { types: ['job', 'node.*'] });
    try {
      await opened(t, f, 'jobs');
      const ok = await user.jobs.submit({ toml: 'name = "ev-ok"\n[run]\ncommand = "true"\n' });
      const bad = await user.jobs.submit({ toml: 'name = "ev-bad"\n[run]\ncommand = "exit 4"\n[retry]\nattempts = 0\n' });
      const runOf = (s: typeof ok): string => s.runs[0]?.id ?? '';
      const ended = (id: string) => (e: RealmEvent) => e.ids?.run === id && ['job.succeeded', 'job.failed'].includes(e.type);
      await f.until(ended(runOf(ok)));
      await f.until(ended(runOf(bad)));
      const states = (id: string): string[] => f.seen.filter((e) => e.ids?.run === id).map((e) => e.type);
      assert.deepEqual(states(runOf(ok)), ['job.queued', 'job.running', 'job.succeeded']);
      assert.deepEqual(states(runOf(bad)), ['job.queued', 'job.running', 'job.failed']);
      assert.equal(f.seen.find((e) => e.ids?.run === runOf(ok))?.ids?.job, 'ev-ok');
    } finally {
      f.stop();
    }
  });

  void it('an id of another life of the daemon (X-Realm-Boot sent back as ?boot=) resumes from the first event kept, after a stream.gap', async () => {
    // Ids 1 to 6 at least, whatever ran before.
    for (let i = 0; i < 6; i++) t.daemon.engine.events.emit({ type: 'test.life', owner: 'uid:0', data: { i } });
    /** The first bytes of a stream: up to the event with id `until`. */
    const read = async (q: string, until: number): Promise<{ boot: string | null; lines: string }> => {
      const ctl = new AbortController();
      const res = await fetch(`${t.url}/v1/events?${q}`, { headers: { authorization: `Bearer ${t.token}` }, signal: ctl.signal });
      assert.equal(res.status, 200);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let lines = '';
      try {
        while (!new RegExp(`^id: ${until}$`, 'm').test(lines)) {
          const { done, value } = await reader.read();
          if (done) break;
          lines += value;
        }
      } finally {
        ctl.abort();
      }
      return { boot: res.headers.get('x-realm-boot'), lines };
    };
    const mine = await read('since=0', 1);
    assert.match(mine.boot ?? '', /^[0-9a-f]{16}$/);
    // Id 5 of another life: from the start of this one's (its ids 1-5 are other events), told why.
    const other = await read(`since=5&boot=${mine.boot === '0123456789abcdef' ? 'fedcba9876543210' : '0123456789abcdef'}`, 1);
    assert.equal(other.boot, mine.boot);
    const gap = other.lines.split('\n').find((l) => l.includes('stream.gap'));
    assert.ok(gap, other.lines.slice(0, 400));
    const note = JSON.parse(gap.slice('data: '.length)) as { data: { restarted?: boolean; boot?: string } };
    assert.equal(note.data.restarted, true);
    assert.equal(note.data.boot, mine.boot);
    assert.ok(other.lines.indexOf('stream.gap') < other.lines.indexOf('id: 1\n'));
    // Id 5 of this life resumes after it, without a note.
    const same = await read(`since=5&boot=${mine.boot}`, 6);
    assert.match(same.lines, /^id: 6$/m);
    assert.doesNotMatch(same.lines, /stream\.gap|^id: [1-5]$/m);

    // The SDK: onOpen hands over the life; `boot` with `after` resumes as above.
    const ctl = new AbortController();
    let opened: string | undefined;
    const otherBoot = mine.boot === '0123456789abcdef' ? 'fedcba9876543210' : '0123456789abcdef';
    const firstTwo: RealmEvent[] = [];
    for await (const e of events(
      { after: 5, boot: otherBoot, signal: ctl.signal, onOpen: ({ boot }) => (opened = boot) },
      t.client,
    )) {
      firstTwo.push(e);
      if (firstTwo.length === 2) break;
    }
    ctl.abort();
    assert.equal(opened, mine.boot);
    assert.equal(firstTwo[0]?.type, 'stream.gap');
    assert.equal(firstTwo[0]?.data.restarted, true);
    assert.ok((firstTwo[1]?.id ?? 99) <= 5, 'the new life from its oldest event kept');
  });

  void it('bad filters are refused before the stream starts', async () => {
    for (const q of ['type=%24bad', 'label=novalue', 'since=abc', 'boot=not-hex']) {
      const res = await fetch(`${t.url}/v1/events?${q}`, { headers: { authorization: `Bearer ${t.token}` } });
      assert.equal(res.status, 400, q);
      await res.body?.cancel();
    }
  });

  void it('a reader that does not read is dropped with a stream.overflow event, not kept growing', async () => {
    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const u = new URL(`${t.url}/v1/events?type=test.flood`);
      request({
        host: u.hostname,
        port: u.port,
        path: `${u.pathname}${u.search}`,
        headers: { authorization: `Bearer ${t.token}` },
      })
        .on('response', resolve)
        .on('error', reject)
        .end();
    });
    assert.equal(res.statusCode, 200);
    res.pause();
    // Far more than the socket buffers and the reader's backlog hold, while it reads nothing.
    const pad = 'x'.repeat(4096);
    for (let i = 0; i < 20 * READER_BACKLOG; i++) {
      t.daemon.engine.events.emit({ type: 'test.flood', owner: 'uid:0', data: { i, pad } });
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
    let text = '';
    res.setEncoding('utf8');
    for await (const chunk of res) text += chunk as string;
    // Each message's `data:` line; comments (pings) have none.
    const got = text
      .split('\n\n')
      .flatMap((block) => block.split('\n').filter((l) => l.startsWith('data:')))
      .map((l) => JSON.parse(l.slice(5)) as RealmEvent);
    const last = got.at(-1);
    assert.equal(last?.type, 'stream.overflow');
    assert.ok(got.length < 20 * READER_BACKLOG, `all ${got.length} came`);
  });
});

void describe('sandbox stats', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d), { warm: 0 });

  void it("a memory hog's memory rises in its stats stream; a stopped sandbox's stats are a 409, a destroyed one's a 404", async () => {
    const sb = await Sandbox.create({ image: 'host', memory: '512m' }, t.client);
    try {
      const once = await sb.stats();
      assert.equal(once.id, sb.id);
      assert.equal(once.memory.limitBytes, 512 * 1024 * 1024);
      assert.ok(once.network, 'the namespace driver reads its network namespace');
      assert.equal(typeof once.disk.usedBytes, 'number');
      assert.notEqual(once.cpu.percent, null);
      await sb.processes.start([
        '/usr/bin/python3',
        '-c',
        'import time\na = []\nfor _ in range(40):\n    a.append(bytearray(5 << 20)); a[-1][::4096] = b"x" * len(a[-1][::4096]); time.sleep(0.1)\ntime.sleep(600)',
      ]);
      const abort = new AbortController();
      const seen: number[] = [];
      for await (const s of sb.statsStream({ interval: '250ms', signal: abort.signal })) {
        seen.push(s.memory.bytes);
        assert.ok(s.pids.current >= 1);
        if (s.memory.bytes > (seen[0] ?? 0) + 100 * 1024 * 1024) break;
      }
      abort.abort();
      const rises = seen.slice(1).filter((m, i) => m > (seen[i] ?? 0)).length;
      assert.ok(rises >= 2, `memory rose ${rises} times: ${seen.join(' ')}`);
      const peak = await sb.stats();
      assert.ok((peak.memory.peakBytes ?? 0) >= (seen.at(-1) ?? 0));
      assert.ok(peak.cpu.seconds > 0);
      await sb.stop();
      await assert.rejects(sb.stats(), ConflictError);
    } finally {
      await sb.destroy();
    }
    await assert.rejects(sb.stats(), SandboxNotFoundError);
    const res = await fetch(`${t.url}/v1/sandboxes/${sb.id}/stats/stream`, { headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(res.status, 404);
    await res.body?.cancel();
  });

  void it('realm sandbox stats: a table, --json, and with -f a line per sample when stdout is not a terminal', async () => {
    const sb = await Sandbox.create({ image: 'host' }, t.client);
    try {
      const table = await realm(['sandbox', 'stats', sb.id], { url: t.url });
      assert.equal(table.code, 0, table.stderr);
      assert.match(table.stdout, /^\s*ID\s+CPU %\s+CPU TIME\s+MEMORY\s+PEAK\s+PIDS\s+DISK\s+NET IN\s+NET OUT\n/);
      assert.ok(table.stdout.includes(sb.id));
      const json = await realm(['sandbox', 'stats', sb.id, '--json'], { url: t.url });
      assert.equal((JSON.parse(json.stdout) as { id: string }).id, sb.id);
      // -f into a pipe: a header, then one tab-separated line per sample; read two, then stop it.
      const child = spawn(REALM_BIN, ['sandbox', 'stats', sb.id, '-f', '--interval', '250ms'], {
        env: { ...process.env, REALM_URL: t.url, REALM_TOKEN: t.token },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.setEncoding('utf8');
      for await (const chunk of child.stdout) {
        out += chunk as string;
        if (out.split('\n').filter((l) => l.includes(sb.id)).length >= 2) break;
      }
      child.kill();
      const lines = out.split('\n');
      assert.match(lines[0] ?? '', /^TIME\tID\tCPU %/);
      assert.match(lines[1] ?? '', new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+\\t${sb.id}\\t`));
    } finally {
      await sb.destroy();
    }
  });
});
