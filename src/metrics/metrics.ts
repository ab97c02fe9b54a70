/**
 * The daemon's Prometheus metrics (`GET /metrics`): counters and histograms fed by the hooks in
 * record.ts, gauges read at scrape time from the engine, the stores and the sandboxes' cgroups.
 * Histograms are labelled only by driver, language, verdict, route (+ method and status) or app,
 * so their series stay few; per-sandbox gauges exist for live sandboxes only.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { cgroupUsage } from './cgroup.js';
import { processFigures } from './process.js';
import { type MetricsSink, type WarmPoolName, addSink } from './record.js';

/** A live sandbox as the gauges see it. */
export interface SandboxFigure {
  id: string;
  status: string;
  driver: string;
  /** Its cgroup (under each hierarchy's root). */
  cgroup: string;
}

/** What the scrape-time gauges read. */
export interface MetricsSources {
  /** The node's sandboxes (its own, not warm ones). */
  sandboxes(): Promise<SandboxFigure[]>;
  /** Sandboxes ready in the warm pools. */
  warmReady(): Record<WarmPoolName, number>;
  /** Job runs by state. */
  jobRuns(): Promise<{ state: string }[]>;
  /** The blob store's size. */
  blobs(): { count: number; bytes: number };
  /** The gateway's relay thread: connections it holds now, exchanges it passed on (since the process started). */
  relay(): { lanes: number; relayed: number };
  /** The cgroup that holds every sandbox of this daemon (warm ones too). */
  cgroupRoot: string;
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const STATES = ['creating', 'running', 'stopped', 'destroying'];
const JOB_STATES = ['queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'];

export class Metrics implements MetricsSink {
  readonly registry = new Registry();
  /** Totals since start, for the history's rates. */
  runsTotal = 0;
  execsTotal = 0;
  private readonly stop: () => void;
  private readonly runs: Counter<'language' | 'verdict'>;
  private readonly runSeconds: Histogram<'language' | 'verdict'>;
  private readonly execSeconds: Histogram<'driver' | 'verdict'>;
  private readonly warmHits: Counter<'pool'>;
  private readonly warmMisses: Counter<'pool'>;
  private readonly gatewayRequests: Counter<'app'>;
  private readonly gatewayErrors: Counter<'app'>;
  private readonly gatewaySeconds: Histogram<'app'>;
  private readonly proxyConnections: Counter<'decision'>;
  private readonly requestSeconds: Histogram<'method' | 'route' | 'status'>;

  constructor(private readonly sources: MetricsSources) {
    const registers = [this.registry];
    this.runs = new Counter({
      name: 'realm_runs_total',
      help: 'One-shot runs finished, by language and verdict (error: failed before a verdict).',
      labelNames: ['language', 'verdict'],
      registers,
    });
    this.runSeconds = new Histogram({
      name: 'realm_run_duration_seconds',
      help: 'Wall time of one-shot runs, sandbox included, by language and verdict.',
      labelNames: ['language', 'verdict'],
      buckets: SECONDS,
      registers,
    });
    this.execSeconds = new Histogram({
      name: 'realm_exec_duration_seconds',
      help: 'Wall time of commands run to completion in sandboxes, by driver and verdict.',
      labelNames: ['driver', 'verdict'],
      buckets: SECONDS,
      registers,
    });
    this.warmHits = new Counter({
      name: 'realm_warm_pool_hits_total',
      help: 'Requests a warm pool served with a ready sandbox.',
      labelNames: ['pool'],
      registers,
    });
    this.warmMisses = new Counter({
      name: 'realm_warm_pool_misses_total',
      help: 'Requests a warm pool had nothing ready for (a sandbox was built cold).',
      labelNames: ['pool'],
      registers,
    });
    this.gatewayRequests = new Counter({
      name: 'realm_gateway_requests_total',
      help: 'Requests the app gateway served, by app.',
      labelNames: ['app'],
      registers,
    });
    this.gatewayErrors = new Counter({
      name: 'realm_gateway_errors_total',
      help: 'Requests the app gateway served that failed (the app timed out, crashed or answered badly), by app.',
      labelNames: ['app'],
      registers,
    });
    this.gatewaySeconds = new Histogram({
      name: 'realm_gateway_request_duration_seconds',
      help: 'Wall time of app gateway requests, by app.',
      labelNames: ['app'],
      buckets: SECONDS,
      registers,
    });
    this.proxyConnections = new Counter({
      name: 'realm_proxy_connections_total',
      help: "Connections asked of sandboxes' egress proxies, by decision (allowed, denied).",
      labelNames: ['decision'],
      registers,
    });
    this.requestSeconds = new Histogram({
      name: 'realm_api_request_duration_seconds',
      help: 'Time to the response head of API requests, by method, route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: SECONDS,
      registers,
    });
    for (const pool of ['runs', 'sandboxes'] as const) {
      this.warmHits.inc({ pool }, 0);
      this.warmMisses.inc({ pool }, 0);
    }
    this.proxyConnections.inc({ decision: 'allowed' }, 0);
    this.proxyConnections.inc({ decision: 'denied' }, 0);
    this.scraped(registers);
    this.stop = addSink(this);
  }

  /** Gauges read when scraped. */
  private scraped(registers: Registry[]): void {
    const { sources } = this;
    // One read of the store and of each live sandbox's cgroup feeds the four families.
    let pending: Promise<void> | undefined;
    const readSandboxes = (): Promise<void> =>
      (pending ??= (async () => {
        const list = await sources.sandboxes();
        sandboxes.reset();
        memory.reset();
        cpu.reset();
        pids.reset();
        for (const driver of new Set(list.map((s) => s.driver))) for (const state of STATES) sandboxes.set({ state, driver }, 0);
        for (const s of list) {
          sandboxes.inc({ state: s.status, driver: s.driver });
          if (s.status !== 'running') continue;
          const u = cgroupUsage(s.cgroup);
          if (!u) continue;
          memory.set({ sandbox_id: s.id }, u.memoryBytes);
          cpu.inc({ sandbox_id: s.id }, u.cpuSeconds);
          pids.set({ sandbox_id: s.id }, u.pids);
        }
      })().finally(() => (pending = undefined)));
    // prom-client collects each family in turn: the first reads, the others share its answer.
    const sandboxes = new Gauge({
      name: 'realm_sandboxes',
      help: 'Sandboxes on this node, by state and driver (warm ones not counted).',
      labelNames: ['state', 'driver'],
      registers,
      collect: readSandboxes,
    });
    const memory = new Gauge({
      name: 'realm_sandbox_memory_bytes',
      help: "A live sandbox's memory in use (its cgroup's), by sandbox.",
      labelNames: ['sandbox_id'],
      registers,
      collect: readSandboxes,
    });
    const cpu = new Counter({
      name: 'realm_sandbox_cpu_seconds_total',
      help: "A live sandbox's cpu time (its cgroup's), by sandbox.",
      labelNames: ['sandbox_id'],
      registers,
      collect: readSandboxes,
    });
    const pids = new Gauge({
      name: 'realm_sandbox_pids',
      help: "A live sandbox's processes and threads, by sandbox.",
      labelNames: ['sandbox_id'],
      registers,
      collect: readSandboxes,
    });
    new Gauge({
      name: 'realm_warm_pool_ready',
      help: 'Sandboxes ready in the warm pools, by pool (runs: one-shot runs; sandboxes: creates).',
      labelNames: ['pool'],
      registers,
      collect() {
        for (const [pool, n] of Object.entries(sources.warmReady())) this.set({ pool }, n);
      },
    });
    new Gauge({
      name: 'realm_job_runs',
      help: 'Job runs by state (in a cluster: the whole cluster).',
      labelNames: ['state'],
      registers,
      async collect() {
        const counts = new Map(JOB_STATES.map((s) => [s, 0]));
        for (const r of await sources.jobRuns()) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'realm_blob_store_bytes',
      help: "Bytes of the blob store's blobs.",
      registers,
      collect() {
        this.set(sources.blobs().bytes);
      },
    });
    new Gauge({
      name: 'realm_blob_store_blobs',
      help: 'Blobs in the blob store.',
      registers,
      collect() {
        this.set(sources.blobs().count);
      },
    });
    new Gauge({
      name: 'realm_gateway_relay_connections',
      help: "Client connections to services that the gateway's relay thread holds now.",
      registers,
      collect() {
        this.set(sources.relay().lanes);
      },
    });
    new Counter({
      name: 'realm_gateway_relayed_requests_total',
      help: "Requests to services that the gateway's relay thread passed on (the fast lane's repeats).",
      registers,
      collect() {
        this.reset();
        this.inc(sources.relay().relayed);
      },
    });
    const figures = { at: 0, value: processFigures() };
    const proc = (): ReturnType<typeof processFigures> => {
      if (Date.now() - figures.at > 100) figures.value = processFigures();
      figures.at = Date.now();
      return figures.value;
    };
    new Gauge({
      name: 'process_resident_memory_bytes',
      help: "The daemon's resident memory.",
      registers,
      collect() {
        this.set(proc().residentBytes);
      },
    });
    new Counter({
      name: 'process_cpu_seconds_total',
      help: "The daemon's cpu time, user and system.",
      registers,
      collect() {
        this.reset();
        this.inc(proc().cpuSeconds);
      },
    });
    new Gauge({
      name: 'process_open_fds',
      help: "The daemon's open file descriptors.",
      registers,
      collect() {
        this.set(proc().openFds);
      },
    });
    new Gauge({
      name: 'process_start_time_seconds',
      help: 'When the daemon started, in seconds since the epoch.',
      registers,
      collect() {
        this.set(proc().startTimeSeconds);
      },
    });
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ text: string; contentType: string }> {
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }

  close(): void {
    this.stop();
  }

  run(language: string, verdict: string, seconds: number): void {
    this.runsTotal++;
    this.runs.inc({ language, verdict });
    this.runSeconds.observe({ language, verdict }, seconds);
  }

  exec(driver: string, verdict: string, seconds: number): void {
    this.execsTotal++;
    this.execSeconds.observe({ driver, verdict }, seconds);
  }

  warm(pool: WarmPoolName, hit: boolean): void {
    (hit ? this.warmHits : this.warmMisses).inc({ pool });
  }

  gateway(app: string, ok: boolean, seconds: number): void {
    this.gatewayRequests.inc({ app });
    if (!ok) this.gatewayErrors.inc({ app });
    this.gatewaySeconds.observe({ app }, seconds);
  }

  proxy(allowed: boolean): void {
    this.proxyConnections.inc({ decision: allowed ? 'allowed' : 'denied' });
  }

  request(method: string, route: string, status: number, seconds: number): void {
    this.requestSeconds.observe({ method, route, status: String(status) }, seconds);
  }

  /** For the history: the node's sandboxes by state and the cgroup root's usage. */
  async sample(): Promise<{ sandboxes: Record<string, number>; memoryBytes: number; cpuSeconds: number }> {
    const sandboxes: Record<string, number> = Object.fromEntries(STATES.map((s) => [s, 0]));
    for (const s of await this.sources.sandboxes()) sandboxes[s.status] = (sandboxes[s.status] ?? 0) + 1;
    const u = cgroupUsage(this.sources.cgroupRoot);
    return { sandboxes, memoryBytes: u?.memoryBytes ?? 0, cpuSeconds: u?.cpuSeconds ?? 0 };
  }
}
