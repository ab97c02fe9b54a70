/**
 * The node's metrics: the Prometheus text (`GET /metrics`, the admin's unless the daemon runs with
 * --metrics-public) and the last hour in 5 s samples for charts.
 *
 * @example
 *   const c = new Client();
 *   const { samples } = await c.metrics.history();
 *   console.log(samples.at(-1)?.sandboxes.running, samples.at(-1)?.runsPerSecond);
 */
import type { Client } from './client.js';

export interface MetricsSample {
  /** When it was taken (ms since the epoch). */
  time: number;
  /** The node's sandboxes by state (creating, running, stopped, destroying). */
  sandboxes: Record<string, number>;
  runsPerSecond: number;
  execsPerSecond: number;
  /** Memory in use by the node's sandboxes (warm ones included). */
  sandboxMemoryBytes: number;
  /** Cores the node's sandboxes used over the interval. */
  sandboxCpus: number;
  daemonMemoryBytes: number;
  daemonCpus: number;
}

export interface MetricsHistory {
  intervalSeconds: number;
  /** Oldest first; at most an hour of them. */
  samples: MetricsSample[];
}

export class Metrics {
  constructor(private readonly c: Client) {}

  /** The Prometheus exposition text. */
  async text(): Promise<string> {
    let text = '';
    const decoder = new TextDecoder();
    for await (const chunk of await this.c.stream('GET', '/metrics')) text += decoder.decode(chunk, { stream: true });
    return text + decoder.decode();
  }

  /** Samples of the last hour, oldest first; `since` (ms since the epoch) keeps only later ones. */
  history(since?: number): Promise<MetricsHistory> {
    return this.c.request<MetricsHistory>('GET', `/v1/metrics/history${since !== undefined ? `?since=${since}` : ''}`);
  }
}
