/**
 * Metrics on a real daemon: the scrape passes `promtool check metrics`; the series follow
 * sandboxes as they come and go (a destroyed sandbox's are gone) and runs as they end with each
 * verdict; /metrics wants the admin token unless --metrics-public; the separate --metrics
 * listener serves it without one; --no-metrics answers METRICS_OFF; the history fills.
 */
import { request } from 'node:http';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { Sandbox, nodeInfo, run } from '@realm/sdk';
import { daemonHooks, namespaceSkipReason, startTestDaemon, removeTestDirs, type TestDaemon } from '../helpers/daemon.js';

const skip =
  (await namespaceSkipReason()) ??
  (spawnSync('promtool', ['--version']).status === 0 ? undefined : 'no promtool (Debian package prometheus; scripts/setup.sh)');
if (skip) console.log(`# skipping metrics tests: ${skip}`);

/** `promtool check metrics` on the text: its complaints, empty when it passes. */
function promtool(text: string): string {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return r.status === 0 ? '' : `${r.stdout}${r.stderr}` || `promtool exited ${String(r.status)}`;
}

/** The sample lines of one family (name, then `{` or a space), labels and value as text. */
function series(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

/** The value of the one series of `name` whose labels include every `labels` pair; undefined when none. */
function value(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = series(text, name).find((l) => want.every((w) => l.includes(w)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

void describe('metrics', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d), { warm: 1, metrics: { metricsListen: '127.0.0.1:0', metricsIntervalMs: 100 } }, skip);
  const scrape = async (): Promise<string> => {
    const r = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return r.text();
  };

  void it('the API wants the admin token for /metrics; the separate listener wants none', async () => {
    const anon = await fetch(`${t.url}/metrics`);
    assert.equal(anon.status, 401);
    assert.equal(((await anon.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
    const url = t.daemon.metricsUrl;
    assert.ok(url?.startsWith('http://127.0.0.1:'), String(url));
    const text = await (await fetch(`${url}/metrics`)).text();
    assert.equal(promtool(text), '');
    assert.ok(series(text, 'process_resident_memory_bytes').length === 1);
    assert.equal((await fetch(`${url}/v1/sandboxes`)).status, 404);
    // A name a page could rebind to the listener is refused (no token guards it); its IP passes.
    const asked = (hostHeader: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const u = new URL(`${url ?? ''}/metrics`);
        request({ host: u.hostname, port: u.port, path: '/metrics', headers: { host: hostHeader } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
          .once('error', reject)
          .end();
      });
    assert.equal(await asked(`evil.example:${new URL(url ?? '').port}`), 403);
    assert.equal(await asked(`localhost:${new URL(url ?? '').port}`), 200);
    assert.equal(await asked(new URL(url ?? '').host), 200);
    assert.equal(promtool(await t.client.metrics.text()), '');
  });

  void it('a sandbox has series while it lives, and none once destroyed', async () => {
    const sb = await Sandbox.create({}, t.client);
    try {
      assert.equal((await sb.exec('echo hi')).verdict, 'ok');
      const text = await scrape();
      assert.equal(promtool(text), '');
      const driver = sb.info.driver;
      assert.ok(
        (value(text, 'realm_sandboxes', { state: 'running', driver }) ?? 0) >= 1,
        series(text, 'realm_sandboxes').join('\n'),
      );
      assert.ok((value(text, 'realm_sandbox_memory_bytes', { sandbox_id: sb.id }) ?? 0) > 0, text);
      assert.ok((value(text, 'realm_sandbox_pids', { sandbox_id: sb.id }) ?? 0) >= 1);
      assert.notEqual(value(text, 'realm_sandbox_cpu_seconds_total', { sandbox_id: sb.id }), undefined);
      assert.ok((value(text, 'realm_exec_duration_seconds_count', { driver, verdict: 'ok' }) ?? 0) >= 1);
      // The API's histogram names the route's pattern, never the sandbox's id.
      const api = series(text, 'realm_api_request_duration_seconds_count');
      assert.ok(
        api.some((l) => l.includes('route="/v1/sandboxes/:id/exec"') && l.includes('status="200"')),
        api.join('\n'),
      );
      assert.ok(!api.some((l) => l.includes(sb.id)));
      assert.ok(
        (value(text, 'realm_warm_pool_hits_total', { pool: 'sandboxes' }) ?? 0) +
          (value(text, 'realm_warm_pool_misses_total', { pool: 'sandboxes' }) ?? 0) >=
          1,
      );
    } finally {
      await sb.destroy();
    }
    const text = await scrape();
    assert.equal(promtool(text), '');
    for (const name of ['realm_sandbox_memory_bytes', 'realm_sandbox_pids', 'realm_sandbox_cpu_seconds_total'])
      assert.ok(!series(text, name).some((l) => l.includes(sb.id)), `${name} still has ${sb.id}`);
    assert.ok(!text.includes(sb.id));
  });

  void it('runs are counted by language and verdict', async () => {
    const before = await scrape();
    const count = (text: string, verdict: string): number => value(text, 'realm_runs_total', { language: 'bash', verdict }) ?? 0;
    const results = [
      await run({ language: 'bash', code: 'echo ok' }, t.client),
      await run({ language: 'bash', code: 'exit 3' }, t.client),
      await run({ language: 'bash', code: 'sleep 30', timeout: '1s' }, t.client),
    ];
    assert.deepEqual(
      results.map((r) => r.verdict),
      ['ok', 'runtime-error', 'timeout'],
    );
    const after = await scrape();
    assert.equal(promtool(after), '');
    for (const verdict of ['ok', 'runtime-error', 'timeout']) {
      assert.equal(count(after, verdict), count(before, verdict) + 1, verdict);
      assert.ok((value(after, 'realm_run_duration_seconds_count', { language: 'bash', verdict }) ?? 0) >= 1);
    }
    // The run's warm pool was asked each time.
    const asked = (text: string): number =>
      (value(text, 'realm_warm_pool_hits_total', { pool: 'runs' }) ?? 0) +
      (value(text, 'realm_warm_pool_misses_total', { pool: 'runs' }) ?? 0);
    assert.equal(asked(after), asked(before) + 3);
  });

  void it('the history keeps samples of the node, with the runs in them', async () => {
    const last = Date.now();
    await run({ language: 'bash', code: 'true' }, t.client);
    // Wait for two samples taken after the run (a rate wants two readings).
    let h = await t.client.metrics.history();
    while (h.samples.filter((s) => s.time > Date.now() - 60_000 && s.time > last).length < 2) {
      await new Promise((r) => setTimeout(r, 100));
      h = await t.client.metrics.history();
    }
    assert.equal(h.intervalSeconds, 0.1);
    const s = h.samples.at(-1);
    assert.ok(s && typeof s.sandboxes.running === 'number' && s.daemonMemoryBytes > 0);
    const runs = h.samples.reduce((n, x) => n + x.runsPerSecond * h.intervalSeconds, 0);
    assert.ok(runs > 0, JSON.stringify(h.samples.slice(-5)));
    const later = await t.client.metrics.history(s.time);
    assert.ok(later.samples.every((x) => x.time > s.time));
    assert.equal(
      (await fetch(`${t.url}/v1/metrics/history?since=x`, { headers: { authorization: `Bearer ${t.token}` } })).status,
      400,
    );
  });

  void it('--metrics-public opens /metrics; --no-metrics answers METRICS_OFF', async () => {
    const open = await startTestDaemon({ warm: 0, metrics: { metricsPublic: true } });
    try {
      const r = await fetch(`${open.url}/metrics`);
      assert.equal(r.status, 200);
      assert.equal(promtool(await r.text()), '');
      assert.equal((await fetch(`${open.url}/v1/sandboxes`)).status, 401); // nothing else opened
      assert.ok((await nodeInfo(open.client)).warnings?.some((w) => w.includes('--metrics-public')));
    } finally {
      await open.close();
      removeTestDirs(open);
    }
    const off = await startTestDaemon({ warm: 0, metrics: { metrics: false } });
    try {
      for (const path of ['/metrics', '/v1/metrics/history']) {
        const r = await fetch(`${off.url}${path}`, { headers: { authorization: `Bearer ${off.token}` } });
        assert.equal(r.status, 404);
        assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'METRICS_OFF');
      }
    } finally {
      await off.close();
      removeTestDirs(off);
    }
  });
});
