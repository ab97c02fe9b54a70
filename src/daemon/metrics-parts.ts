/** The daemon's metrics parts: the `--metrics` listen address, the metrics and their history. */
import type { Engine } from '../engine/engine.js';
import type { SqliteStore } from '../store/sqlite/store.js';
import { parseListen } from '../config.js';
import { relayStats } from '../gateway/lane-relay.js';
import { Metrics } from '../metrics/metrics.js';
import { History } from '../metrics/history.js';
import type { MetricsParts } from './routes/metrics.js';
import type { DaemonOptions } from './daemon-options.js';

/** `--metrics HOST:PORT` (a bare port: loopback); refused with --no-metrics. */
export function parseMetricsListen(text: string, on: boolean | undefined): { host: string; port: number } {
  if (on === false) throw new Error(`--metrics ${text} serves metrics, which --no-metrics turns off: leave one out`);
  try {
    return parseListen(text);
  } catch {
    throw new Error(`--metrics ${text}: write host:port or a port (e.g. 127.0.0.1:9920 or 9920)`);
  }
}

/** The metrics and their history, reading the engine, the job store and the blob index. */
export function startMetrics(
  opts: DaemonOptions,
  engine: Engine,
  jobs: { listJobRuns(): Promise<{ state: string }[]> },
  store: SqliteStore,
): NonNullable<MetricsParts> {
  const cgroupRoot = opts.cgroupRoot ?? 'realm';
  const blobTotals = store.database.prepare<[], { count: number; bytes: number }>(
    'SELECT COUNT(*) AS count, COALESCE(SUM(size), 0) AS bytes FROM blobs',
  );
  const metrics = new Metrics({
    sandboxes: async () =>
      (await engine.listSandboxes()).map((s) => ({
        id: s.id,
        status: s.status,
        driver: s.driver,
        cgroup: `${cgroupRoot}/${s.id}`,
      })),
    warmReady: () => engine.warmReady(),
    jobRuns: () => jobs.listJobRuns(),
    blobs: () => blobTotals.get() ?? { count: 0, bytes: 0 },
    relay: relayStats,
    cgroupRoot,
  });
  return { metrics, history: new History(metrics, opts.metricsIntervalMs) };
}

export function closeMetrics(m: NonNullable<MetricsParts>): void {
  m.history.close();
  m.metrics.close();
}
