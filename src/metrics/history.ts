/**
 * The last hour of the node in 5 s samples, kept in memory for the dashboard's charts
 * (`GET /v1/metrics/history`): sandboxes by state, runs and execs per second, the sandboxes'
 * memory and cpu (their cgroup root's, warm ones included) and the daemon's own.
 */
import type { Metrics } from './metrics.js';
import { processFigures } from './process.js';

export const HISTORY_INTERVAL_MS = 5000;
/** One hour of samples. */
export const HISTORY_SAMPLES = 720;

export interface HistorySample {
  /** When it was taken (ms since the epoch). */
  time: number;
  sandboxes: Record<string, number>;
  runsPerSecond: number;
  execsPerSecond: number;
  /** Memory in use by the node's sandboxes (bytes). */
  sandboxMemoryBytes: number;
  /** Cores the node's sandboxes used, on average over the interval. */
  sandboxCpus: number;
  daemonMemoryBytes: number;
  /** Cores the daemon used, on average over the interval. */
  daemonCpus: number;
}

export class History {
  private readonly ring: HistorySample[] = [];
  private readonly timer: NodeJS.Timeout;
  readonly intervalMs: number;
  private last: { time: number; runs: number; execs: number; sandboxCpu: number; daemonCpu: number } | undefined;
  private taking = false;

  constructor(
    private readonly metrics: Metrics,
    intervalMs = HISTORY_INTERVAL_MS,
  ) {
    this.intervalMs = intervalMs;
    this.timer = setInterval(() => void this.take(), intervalMs);
    this.timer.unref();
    void this.take();
  }

  /** The samples kept, oldest first; `since` (ms since the epoch) keeps only later ones. */
  samples(since = 0): HistorySample[] {
    return this.ring.filter((s) => s.time > since);
  }

  close(): void {
    clearInterval(this.timer);
  }

  private async take(): Promise<void> {
    if (this.taking) return; // a slow store: skip a beat rather than pile up
    this.taking = true;
    try {
      const time = Date.now();
      const s = await this.metrics.sample();
      const proc = processFigures();
      const now = {
        time,
        runs: this.metrics.runsTotal,
        execs: this.metrics.execsTotal,
        sandboxCpu: s.cpuSeconds,
        daemonCpu: proc.cpuSeconds,
      };
      const prev = this.last;
      this.last = now;
      if (!prev) return; // rates want two readings
      const secs = Math.max(0.001, (time - prev.time) / 1000);
      const rate = (a: number, b: number): number => Math.max(0, Math.round(((a - b) / secs) * 1000) / 1000);
      this.ring.push({
        time,
        sandboxes: s.sandboxes,
        runsPerSecond: rate(now.runs, prev.runs),
        execsPerSecond: rate(now.execs, prev.execs),
        sandboxMemoryBytes: s.memoryBytes,
        sandboxCpus: rate(now.sandboxCpu, prev.sandboxCpu),
        daemonMemoryBytes: proc.residentBytes,
        daemonCpus: rate(now.daemonCpu, prev.daemonCpu),
      });
      if (this.ring.length > HISTORY_SAMPLES) this.ring.splice(0, this.ring.length - HISTORY_SAMPLES);
    } catch {
      /* a store closing under us: the next beat tries again */
    } finally {
      this.taking = false;
    }
  }
}
