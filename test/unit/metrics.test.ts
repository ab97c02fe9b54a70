/**
 * The metrics registry on its own, with sources written here: every family the hooks feed and
 * the scrape-time gauges read passes `promtool check metrics`; the hooks reach every daemon's
 * registry while it is open and none after; a sandbox gone from the list is gone from the scrape.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { Metrics, type SandboxFigure } from '../../src/metrics/metrics.js';
import { recordExec, recordGateway, recordProxy, recordRequest, recordRun, recordWarm } from '../../src/metrics/record.js';

const skip = spawnSync('promtool', ['--version']).status === 0 ? undefined : 'no promtool (Debian package prometheus)';

function make(list: SandboxFigure[]): Metrics {
  return new Metrics({
    sandboxes: () => Promise.resolve(list),
    warmReady: () => ({ runs: 2, sandboxes: 1 }),
    jobRuns: () => Promise.resolve([{ state: 'queued' }, { state: 'failed' }, { state: 'failed' }]),
    blobs: () => ({ count: 3, bytes: 4096 }),
    relay: () => ({ lanes: 2, relayed: 17 }),
    cgroupRoot: 'realm-metrics-unit-none',
  });
}

function line(text: string, start: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith(start));
}

void describe('metrics registry', () => {
  void it('every family passes promtool, fed by the hooks and the sources', { skip }, async () => {
    const list: SandboxFigure[] = [
      { id: 'sb-one', status: 'running', driver: 'namespace', cgroup: 'realm-metrics-unit-none/sb-one' },
      { id: 'sb-two', status: 'stopped', driver: 'namespace', cgroup: 'realm-metrics-unit-none/sb-two' },
    ];
    const m = make(list);
    try {
      recordRun('python', 'ok', 0.02);
      recordRun('python', 'timeout', 1.5);
      recordExec('namespace', 'ok', 0.01);
      recordWarm('runs', true);
      recordWarm('sandboxes', false);
      recordGateway('hello', true, 0.003);
      recordGateway('hello', false, 2);
      recordProxy(true);
      recordProxy(false);
      recordProxy(false);
      recordRequest('GET', '/v1/sandboxes/:id', 200, 0.001);
      const { text, contentType } = await m.scrape();
      assert.match(contentType, /^text\/plain/);
      const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      for (const want of [
        'realm_runs_total{language="python",verdict="ok"} 1',
        'realm_runs_total{language="python",verdict="timeout"} 1',
        'realm_warm_pool_hits_total{pool="runs"} 1',
        'realm_warm_pool_misses_total{pool="sandboxes"} 1',
        'realm_warm_pool_ready{pool="runs"} 2',
        'realm_gateway_requests_total{app="hello"} 2',
        'realm_gateway_errors_total{app="hello"} 1',
        'realm_proxy_connections_total{decision="allowed"} 1',
        'realm_proxy_connections_total{decision="denied"} 2',
        'realm_job_runs{state="failed"} 2',
        'realm_job_runs{state="running"} 0',
        'realm_blob_store_bytes 4096',
        'realm_gateway_relay_connections 2',
        'realm_gateway_relayed_requests_total 17',
        'realm_sandboxes{state="running",driver="namespace"} 1',
        'realm_sandboxes{state="stopped",driver="namespace"} 1',
        'realm_api_request_duration_seconds_count{method="GET",route="/v1/sandboxes/:id",status="200"} 1',
        'realm_exec_duration_seconds_count{driver="namespace",verdict="ok"} 1',
      ])
        assert.ok(text.split('\n').includes(want), `missing: ${want}`);
      assert.ok(Number(line(text, 'process_open_fds ')?.split(' ')[1]) > 0);
      assert.equal(m.runsTotal, 2);
      assert.equal(m.execsTotal, 1);
      // A sandbox that left the list leaves the scrape.
      list.splice(1, 1);
      assert.equal(
        line((await m.scrape()).text, 'realm_sandboxes{state="stopped",driver="namespace"}'),
        'realm_sandboxes{state="stopped",driver="namespace"} 0',
      );
    } finally {
      m.close();
    }
    // Closed: the hooks no longer reach it.
    recordRun('python', 'ok', 0.02);
    assert.equal(m.runsTotal, 2);
  });
});
