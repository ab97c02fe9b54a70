/**
 * Process services: desired state (desired.ts) and the reconciler that runs it (reconciler.ts),
 * joined for the API and the gateway. In a cluster (cluster/service-cluster.ts) the desired state
 * is the cluster's, the reconciler runs this node's share of it, and a view shows every node's
 * replicas.
 */
import type { z } from 'zod';
import type { Engine } from '../engine/engine.js';
import type { Apps } from '../gateway/apps.js';
import type { serviceHistoryResponse, serviceResponse } from '../daemon/responses-services.js';
import { DesiredServices } from './desired.js';
import { type DesiredSource, Reconciler } from './reconciler.js';
import { DialReplicaProxy, type ReplicaProxy } from './replica-proxy.js';
import type { ServiceLogs } from './logs.js';
import type { ServiceRecord, ServiceSpec } from './spec.js';
import { ReplicaMounts } from '../packages/replica-mounts.js';
import type { PackageRef } from '../packages/ref.js';
import type { NodeServiceReport, ServiceCluster } from '../cluster/service-cluster.js';
import { EtcdDesiredStore } from '../cluster/service-desired.js';
import { DisconnectHolds } from '../cluster/service-disconnect.js';
import type { NodeView } from '../cluster/types.js';

export type ServiceView = z.output<typeof serviceResponse>;
export type HistoryView = z.output<typeof serviceHistoryResponse>;

export class Services {
  readonly desired: DesiredServices;
  readonly reconciler: Reconciler;
  /** Each replica's package mounts (packages/deploy.ts tells it how to get a package this node lacks). */
  readonly mounts: ReplicaMounts;
  /** Resolved once the desired state was read (in a cluster, from etcd at `start`). */
  readonly loaded: Promise<void>;
  private markLoaded: () => void = () => undefined;
  /** In a cluster: the services whose replicas this node stops while cut off from etcd (disconnect.stopAfter). */
  private holds: DisconnectHolds | undefined;

  /**
   * `selfId`: this node's id (each replica's `node`); `cluster`: the cluster's services on etcd,
   * when this node is one of a cluster's.
   */
  constructor(
    engine: Engine,
    apps: Apps,
    dataDir: string,
    readonly selfId: string,
    readonly cluster?: ServiceCluster,
    proxy: ReplicaProxy = new DialReplicaProxy(engine),
  ) {
    this.desired = new DesiredServices(engine, apps, dataDir, cluster ? new EtcdDesiredStore(cluster.client) : undefined);
    if (cluster) this.desired.leaseTtl = () => cluster.longestTtl();
    this.loaded = cluster ? new Promise((resolve) => (this.markLoaded = resolve)) : Promise.resolve();
    this.mounts = new ReplicaMounts(engine, dataDir);
    this.reconciler = new Reconciler(engine, cluster ? this.share(cluster) : this.desired, proxy, this.mounts);
    if (cluster) {
      cluster.desired = () => this.desired.all();
      cluster.finish = (name, g) => this.desired.finishRollout(name, g, 'rolled-out');
      this.reconciler.afterPass = () => void cluster.report(this.reports());
    }
  }

  /**
   * What this node's reconciler runs in a cluster: each service with `replicas` set to this node's
   * share (in the generation a rollout would go back to as well). Each node rolls its share out
   * as a lone daemon does (one replica at a time, each waiting for health); the leader ends the
   * rollout once every node reports the new generation healthy and nothing older. A node whose
   * new replicas fail rolls the cluster's service back (the first to fail does; the others follow
   * the record), and a first generation that fails is marked so, its replicas left to restart.
   */
  private share(cluster: ServiceCluster): DesiredSource {
    const holds = new DisconnectHolds(
      cluster.clock,
      () => this.desired.all(),
      () => view.onChange?.(),
      (name) => (this.reconciler.state(name)?.replicas.length ?? 0) > 0,
    );
    this.holds = holds;
    const mine = (rec: ServiceRecord): ServiceRecord => {
      const replicas = holds.reason(rec) === null ? cluster.share(rec.spec.name) : 0;
      const from = rec.rollout?.from;
      return {
        ...rec,
        spec: { ...rec.spec, replicas },
        ...(rec.rollout && from ? { rollout: { ...rec.rollout, from: { ...from, spec: { ...from.spec, replicas } } } } : {}),
      };
    };
    const view: DesiredSource = {
      all: () => this.desired.all().map(mine),
      event: (rec, type, data, sandbox) => this.desired.event(rec, type, data, sandbox),
      finishRollout: (name, g, outcome, reason) =>
        outcome === 'failed' ? this.desired.finishRollout(name, g, outcome, reason) : Promise.resolve(false),
      rollback: (name, g, reason) => this.desired.rollback(name, g, reason),
      held: (name) => {
        const rec = this.desired.lookup(name);
        return rec ? holds.reason(rec) : null;
      },
      onChange: undefined,
    };
    this.desired.onChange = () => view.onChange?.();
    cluster.onShares = () => view.onChange?.();
    return view;
  }

  /** This node's replicas of each service it has a state for, as reported to the others. */
  private reports(): Map<string, NodeServiceReport> {
    const out = new Map<string, NodeServiceReport>();
    for (const rec of this.desired.all()) {
      const st = this.reconciler.state(rec.spec.name);
      if (!st) continue;
      out.set(rec.spec.name, {
        replicas: st.replicas
          .filter((r) => !r.exit)
          .map((r) => ({
            id: r.id,
            sandbox: r.sandboxId,
            process: r.processId,
            healthy: r.healthy,
            generation: r.generation,
            startedAt: r.startedAt,
          })),
        restarts: st.restarts,
        lastError: st.lastError,
      });
    }
    return out;
  }

  get proxy(): ReplicaProxy {
    return this.reconciler.proxy;
  }

  async start(): Promise<void> {
    await this.cluster?.start();
    await this.desired.start();
    await this.desired.adoptLocal(this.selfId);
    this.markLoaded();
    await this.reconciler.start();
    this.holds?.start();
  }

  /** In a cluster: another node with a healthy replica of `name`, for the gateway to send a request to. */
  async elsewhere(name: string): Promise<NodeView | undefined> {
    return this.cluster?.healthyElsewhere(name);
  }

  view(rec: ServiceRecord): ServiceView {
    const { spec } = rec;
    const st = this.reconciler.state(spec.name);
    const live = (st?.replicas ?? []).filter((r) => !r.exit);
    const iso = (t: number): string => new Date(t).toISOString();
    const others = this.cluster?.others(spec.name) ?? [];
    const replicaList = [
      ...live.map((r) => ({
        id: r.id,
        node: this.selfId,
        sandbox: r.sandboxId,
        process: r.processId,
        healthy: r.healthy,
        generation: r.generation,
        startedAt: iso(r.startedAt),
      })),
      ...others.flatMap(([node, rep]) => rep.replicas.map((r) => ({ ...r, node, startedAt: iso(r.startedAt) }))),
    ];
    const reason = this.cluster?.reason(spec.name) ?? null;
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
      disconnect: { stopAfterMs: spec.disconnect?.stopAfter ?? null },
      generation: rec.generation,
      rollout: rec.rollout
        ? { startedAt: new Date(rec.rollout.startedAt).toISOString(), from: rec.rollout.from?.generation ?? null }
        : null,
      replicas: spec.replicas,
      running: replicaList.length,
      healthy: replicaList.filter((r) => r.healthy).length,
      restarts: (st?.restarts ?? 0) + others.reduce((n, [, r]) => n + r.restarts, 0),
      lastError: reason ?? st?.lastError ?? others.find(([, r]) => r.lastError)?.[1].lastError ?? null,
      placement: {
        nodes: this.cluster ? this.cluster.placement(spec.name) : [{ node: this.selfId, replicas: spec.replicas }],
        reason,
      },
      replicaList,
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

  /** Remove a service; its replicas are gone when this resolves (in a cluster: this node's, and the others' within 10 s). */
  async remove(name: string, who: string): Promise<void> {
    await this.desired.remove(name, who);
    await this.gone(name);
  }

  /** Resolves once service `name`, removed, has no replica left (in a cluster: here, and on the others within 10 s). */
  async gone(name: string): Promise<void> {
    while (this.reconciler.state(name)) await this.reconciler.settle();
    for (let i = 0; i < 100 && this.cluster?.runsElsewhere(name); i++) await new Promise((r) => setTimeout(r, 100));
  }

  logs(name: string, who: string): ServiceLogs | undefined {
    this.desired.get(name, who);
    return this.reconciler.state(name)?.logs;
  }

  /** For the gateway: the service (its replicas come from `reconciler.pick`). */
  route(name: string): ServiceRecord | undefined {
    return this.desired.lookup(name);
  }

  async close(): Promise<void> {
    this.holds?.close();
    await this.cluster?.close();
    await this.desired.close();
    await this.reconciler.close();
  }
}
