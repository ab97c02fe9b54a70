/**
 * Process services: long-running replicas of a command in sandboxes, kept running by the node and
 * served at its gateway (`http://127.0.0.1:8080/NAME/…`).
 *
 * @example
 *   const c = new Client();
 *   await c.services.push({ name: 'web', image: 'host', command: 'python3 -m http.server 8000', port: 8000, replicas: 2 });
 *   console.log((await c.services.get('web')).healthy);
 *   await c.services.scale('web', 3);
 */
import type { Client } from './client.js';

export interface ServicePushOptions {
  name: string;
  image: string;
  /** A shell string (sh -c) run in the sandbox user's home. */
  command: string;
  /** The port the command listens on inside its sandbox. */
  port: number;
  /** Default 1. */
  replicas?: number;
  /** Per replica: `512m` (default), bytes as a number. */
  memory?: string | number;
  cpus?: string | number;
  pids?: number;
  env?: Record<string, string>;
  /** Stored for a cluster's placement. */
  tags?: string[];
  visibility?: 'local' | 'public';
  /** Default: a TCP connect every 10s (1s timeout, 3 failures). */
  health?: { path?: string; interval?: string | number; timeout?: string | number; threshold?: number };
  /** Default: 30s doubling to 1h. */
  restart?: { delay?: string | number; maxDelay?: string | number };
  /**
   * How an update rolls out (one replica at a time): a new replica not healthy within
   * `healthyDeadline` (default 5m) rolls it back; each stays healthy `minHealthyTime` (default 0)
   * before an old one goes.
   */
  update?: { healthyDeadline?: string | number; minHealthyTime?: string | number };
  /**
   * In a cluster, what a node cut off from etcd does with its replicas. Absent (the default): they
   * keep running, so once the cluster places them elsewhere two copies may run until it is back.
   * `stopAfter` (at least the lease TTL, e.g. `30s`): the node stops them once its lease was not
   * known alive for that long, and runs them again only where the cluster places them.
   */
  disconnect?: { stopAfter: string | number };
}

export interface ReplicaInfo {
  id: string;
  /** The node that runs it. */
  node: string;
  sandbox: string;
  process: string;
  healthy: boolean;
  generation: number;
  startedAt: string;
}

/** The package a service was deployed from (`realm package deploy`). */
export interface PackageInfo {
  name: string;
  version: string;
  /** sha256 of the .realm file. */
  digest: string;
  mounts: {
    kind: 'static' | 'config' | 'work' | 'state';
    path: string;
    /** static, config: the content digest of the tree mounted read-only. */
    tree?: string | undefined;
    /** state: the volume that holds it. */
    volume?: string | undefined;
    /** state, in a cluster: the node the volume is on, where every replica runs (the service is pinned there). */
    node?: string | undefined;
  }[];
}

export interface ServiceInfo {
  name: string;
  kind: 'process';
  image: string;
  command: string;
  port: number;
  memory: number;
  cpus: number;
  pids: number;
  /** Names of the environment variables set. */
  env: string[];
  tags: string[];
  visibility: 'local' | 'public';
  health: { path: string | null; intervalMs: number; timeoutMs: number; threshold: number };
  restart: { delayMs: number; maxDelayMs: number };
  /** null for a service pushed without a package. */
  package: PackageInfo | null;
  update: { healthyDeadlineMs: number; minHealthyTimeMs: number };
  /** stopAfterMs: a node cut off from etcd stops its replicas after this; null: they keep running (the default). */
  disconnect: { stopAfterMs: number | null };
  generation: number;
  /** The rollout of `generation` under way (from: the generation a failure rolls back to), or null. */
  rollout: { startedAt: string; from: number | null } | null;
  /** Desired replicas. */
  replicas: number;
  running: number;
  healthy: number;
  restarts: number;
  /** A replica's last error, or why replicas are not placed (a cluster's). */
  lastError: string | null;
  /** Where the replicas are to run: replicas per node, and why not all are placed (null when they are). */
  placement: { nodes: { node: string; replicas: number }[]; reason: string | null };
  replicaList: ReplicaInfo[];
  createdAt: string;
  updatedAt: string;
}

/** One generation of a service (`services.history`). */
export interface ServiceGeneration {
  generation: number;
  /** sha256 of the spec as pushed. */
  digest: string;
  at: string;
  /** Who pushed or restarted. */
  by: string;
  cause: 'push' | 'restart';
  /** The package this generation was deployed from (a rollback brings back its mounts); null: pushed without one. */
  package: { name: string; version: string; digest: string } | null;
  outcome: 'rolling-out' | 'rolled-out' | 'rolled-back' | 'failed' | 'superseded';
  /** Why it rolled back or failed. */
  reason: string | null;
  finishedAt: string | null;
}

const enc = encodeURIComponent;

export class Services {
  constructor(private readonly c: Client) {}

  /** Start or update a service (an update replaces every replica). */
  push(opts: ServicePushOptions): Promise<ServiceInfo> {
    return this.c.request<ServiceInfo>('POST', '/v1/services', opts);
  }

  async list(): Promise<ServiceInfo[]> {
    return (await this.c.request<{ services: ServiceInfo[] }>('GET', '/v1/services')).services;
  }

  get(name: string): Promise<ServiceInfo> {
    return this.c.request<ServiceInfo>('GET', `/v1/services/${enc(name)}`);
  }

  scale(name: string, replicas: number): Promise<ServiceInfo> {
    return this.c.request<ServiceInfo>('POST', `/v1/services/${enc(name)}/scale`, { replicas });
  }

  /** Replace every replica, one at a time (rolled back if a new one fails its health check). */
  restart(name: string): Promise<ServiceInfo> {
    return this.c.request<ServiceInfo>('POST', `/v1/services/${enc(name)}/restart`);
  }

  /** The service's generations, oldest first, and how each rollout ended. */
  async history(name: string): Promise<ServiceGeneration[]> {
    return (await this.c.request<{ name: string; history: ServiceGeneration[] }>('GET', `/v1/services/${enc(name)}/history`))
      .history;
  }

  /** Remove the service; its replicas are gone when this resolves. */
  async remove(name: string): Promise<void> {
    await this.c.request('DELETE', `/v1/services/${enc(name)}`);
  }

  /** The replicas' output, as text; with `follow`, each piece as it comes until the service goes or `signal` aborts. */
  async *logs(name: string, opts: { follow?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<string> {
    const body = await this.c.stream(
      'GET',
      `/v1/services/${enc(name)}/logs${opts.follow ? '?follow=1' : ''}`,
      undefined,
      opts.signal,
    );
    const dec = new TextDecoder();
    for await (const chunk of body) yield dec.decode(chunk, { stream: true });
  }
}
