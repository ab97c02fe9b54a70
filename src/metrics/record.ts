/**
 * The hooks the engine, gateway, proxy, jobs and API call when something ends: one small call
 * each, no imports of the metrics registry. A daemon with metrics on registers a sink
 * (metrics.ts); with none (`--no-metrics`) every hook is a loop over an empty set.
 */

/** What the hooks report to. */
export interface MetricsSink {
  run(language: string, verdict: string, seconds: number): void;
  exec(driver: string, verdict: string, seconds: number): void;
  warm(pool: WarmPoolName, hit: boolean): void;
  gateway(app: string, ok: boolean, seconds: number): void;
  proxy(allowed: boolean): void;
  request(method: string, route: string, status: number, seconds: number): void;
}

export type WarmPoolName = 'runs' | 'sandboxes';

const sinks = new Set<MetricsSink>();

/** Send every hook's reports to `sink` from now on; the function returned stops it. */
export function addSink(sink: MetricsSink): () => void {
  sinks.add(sink);
  return () => void sinks.delete(sink);
}

/** Seconds since `start` (a performance.now() reading). */
export function since(start: number): number {
  return (performance.now() - start) / 1000;
}

/** A one-shot run ended with `verdict` (`error` when it failed before a verdict). */
export function recordRun(language: string, verdict: string, seconds: number): void {
  for (const s of sinks) s.run(language, verdict, seconds);
}

/** A command in a sandbox ran to completion. */
export function recordExec(driver: string, verdict: string, seconds: number): void {
  for (const s of sinks) s.exec(driver, verdict, seconds);
}

/** A warm pool was asked for a sandbox: `hit` when it had one ready. */
export function recordWarm(pool: WarmPoolName, hit: boolean): void {
  for (const s of sinks) s.warm(pool, hit);
}

/** The gateway answered a request for a known app. */
export function recordGateway(app: string, ok: boolean, seconds: number): void {
  for (const s of sinks) s.gateway(app, ok, seconds);
}

/** A sandbox's egress proxy let a connection through, or refused it. */
export function recordProxy(allowed: boolean): void {
  for (const s of sinks) s.proxy(allowed);
}

/** The API answered `method route` (the route's pattern, never the raw path) with `status`. */
export function recordRequest(method: string, route: string, status: number, seconds: number): void {
  for (const s of sinks) s.request(method, route, status, seconds);
}
