/**
 * Process services on this node: desired state (desired.ts) and the reconciler that runs it
 * (reconciler.ts), joined for the API and the gateway.
 */
import type { z } from 'zod';
import type { Engine } from '../engine/engine.js';
import type { Apps } from '../gateway/apps.js';
import type { serviceHistoryResponse, serviceResponse } from '../daemon/responses-services.js';
import { DesiredServices } from './desired.js';
import { Reconciler } from './reconciler.js';
import { DialReplicaProxy, type ReplicaProxy } from './replica-proxy.js';
import type { ServiceLogs } from './logs.js';
import type { ServiceRecord, ServiceSpec } from './spec.js';
import { ReplicaMounts } from '../packages/replica-mounts.js';
import type { PackageRef } from '../packages/ref.js';

export type ServiceView = z.output<typeof serviceResponse>;
export type HistoryView = z.output<typeof serviceHistoryResponse>;

export class Services {
  readonly desired: DesiredServices;
  readonly reconciler: Reconciler;

  constructor(engine: Engine, apps: Apps, dataDir: string, proxy: ReplicaProxy = new DialReplicaProxy(engine)) {
    this.desired = new DesiredServices(engine, apps, dataDir);
    this.reconciler = new Reconciler(engine, this.desired, proxy, new ReplicaMounts(engine, dataDir));
  }

  get proxy(): ReplicaProxy {
    return this.reconciler.proxy;
  }

  start(): Promise<void> {
    return this.reconciler.start();
  }

  view(rec: ServiceRecord): ServiceView {
    const { spec } = rec;
    const st = this.reconciler.state(spec.name);
    const replicas = st?.replicas ?? [];
    return {
      name: spec.name,
      kind: 'process',
      image: spec.image,
      command: spec.command,
      port: spec.port,
      memory: spec.memory,
      cpus: spec.cpus,
      pids: spec.pids,
      env: Object.keys(spec.env),
      tags: spec.tags,
      visibility: spec.visibility,
      health: {
        path: spec.health.path ?? null,
        intervalMs: spec.health.interval,
        timeoutMs: spec.health.timeout,
        threshold: spec.health.threshold,
      },
      restart: { delayMs: spec.restart.delay, maxDelayMs: spec.restart.maxDelay },
      package: rec.package ?? null,
      update: { healthyDeadlineMs: spec.update.healthyDeadline, minHealthyTimeMs: spec.update.minHealthyTime },
      generation: rec.generation,
      rollout: rec.rollout
        ? { startedAt: new Date(rec.rollout.startedAt).toISOString(), from: rec.rollout.from?.generation ?? null }
        : null,
      replicas: spec.replicas,
      running: replicas.filter((r) => !r.exit).length,
      healthy: replicas.filter((r) => r.healthy && !r.exit).length,
      restarts: st?.restarts ?? 0,
      lastError: st?.lastError ?? null,
      replicaList: replicas.map((r) => ({
        id: r.id,
        sandbox: r.sandboxId,
        process: r.processId,
        healthy: r.healthy,
        generation: r.generation,
        startedAt: new Date(r.startedAt).toISOString(),
      })),
      createdAt: new Date(rec.createdAt).toISOString(),
      updatedAt: new Date(rec.updatedAt).toISOString(),
    };
  }

  /** The service's generations, oldest first. */
  history(name: string, who: string): HistoryView {
    const rec = this.desired.get(name, who);
    const iso = (t: number): string => new Date(t).toISOString();
    return {
      name,
      history: (rec.history ?? []).map(({ package: pkg, ...h }) => ({
        ...h,
        package: pkg ? { name: pkg.name, version: pkg.version, digest: pkg.digest } : null,
        at: iso(h.at),
        finishedAt: h.finishedAt === null ? null : iso(h.finishedAt),
      })),
    };
  }

  /** Start or update a service; `pkg`: the package it comes from (packages/deploy.ts), with its mounts. */
  async push(spec: ServiceSpec, owner: string, pkg?: PackageRef): Promise<ServiceRecord> {
    return this.desired.push(spec, owner, pkg);
  }

  /** Remove a service; its replicas are gone when this resolves. */
  async remove(name: string, who: string): Promise<void> {
    this.desired.remove(name, who);
    while (this.reconciler.state(name)) await this.reconciler.settle();
  }

  logs(name: string, who: string): ServiceLogs | undefined {
    this.desired.get(name, who);
    return this.reconciler.state(name)?.logs;
  }

  /** For the gateway: the service (its replicas come from `reconciler.pick`). */
  route(name: string): ServiceRecord | undefined {
    return this.desired.lookup(name);
  }

  close(): Promise<void> {
    return this.reconciler.close();
  }
}
