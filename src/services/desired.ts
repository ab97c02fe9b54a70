/**
 * Desired state of the services: on a node alone, one JSON file per service under DATA/services,
 * written whole by rename so a crash leaves the old or the new; in a cluster, one etcd key per
 * service (a `DesiredStore`, cluster/service-desired.ts), so every node sees and changes the same. This is
 * the only place desired state is read or written; the reconciler (reconciler.ts) reads it and
 * makes running replicas match (in a cluster, this node's share of them: cluster/service-cluster.ts).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { mayUse } from '../engine/owner.js';
import type { Apps } from '../gateway/apps.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { lastGeneration, nextGeneration, settle } from './history.js';
import type { GenerationEntry, ServiceRecord, ServiceSpec } from './spec.js';
import type { PackageRef } from '../packages/ref.js';
import { log } from '../logs/log.js';

/** Where a cluster keeps desired state (cluster/service-desired.ts); absent: files under DATA/services. */
export interface DesiredStore {
  /** Every record kept, and from then on each change made elsewhere (null: removed). */
  start(told: (name: string, rec: ServiceRecord | null) => void): Promise<ServiceRecord[]>;
  /** Write a record, refused (SERVICE_NAME_TAKEN) when another node changed it since it was read. */
  put(rec: ServiceRecord): Promise<void>;
  delete(name: string): Promise<void>;
  close(): Promise<void>;
  /**
   * Write `puts` and remove `deletes` in one transaction with `swap`, only if `swap.key` and every
   * record are still as read (a signed manifest's changes: all of them or none).
   */
  commit?(puts: ServiceRecord[], deletes: string[], swap: Swap, also?: KeyWrites): Promise<CommitOutcome>;
  /** Resolves once every change made before the call is in the records `start` told of (or after `ms`). */
  caughtUp?(ms: number): Promise<void>;
}

/** A key written with a batch of changes only if it is as read: `mod` its revision then (undefined: absent). */
export interface Swap {
  key: string;
  mod: string | undefined;
  value: string;
}

/**
 * Other keys written in the same transaction as a batch of service changes, each only if it is
 * as read (`mod`: its revision then; undefined: absent): a signed manifest's apps.
 */
export interface KeyWrites {
  compares: { key: string; mod: string | undefined }[];
  puts: { key: string; value: string }[];
  deletes: string[];
}

/** `swap-moved`: its key changed since it was read; `services-moved`: a record did (a service's, or one of the `KeyWrites`); nothing was written either way. */
export type CommitOutcome = { outcome: 'done'; revision: string } | { outcome: 'swap-moved' | 'services-moved' };

/** A change checked and made ready, not yet written (a signed manifest writes all of its at once). */
export type PlannedChange =
  | { kind: 'put'; rec: ServiceRecord; event: [type: string, data: Record<string, unknown>] }
  | { kind: 'delete'; rec: ServiceRecord; by: string };

export class DesiredServices {
  private readonly dir: string;
  private readonly cache = new Map<string, ServiceRecord>();
  /** Told after every change (the reconciler looks at once). */
  onChange: (() => void) | undefined;
  /** In a cluster: the longest lease TTL of its nodes, and whose (a service's disconnect.stopAfter may not be shorter). */
  leaseTtl: (() => Promise<{ ms: number; node: string }>) | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly apps: Apps,
    dataDir: string,
    private readonly store?: DesiredStore,
  ) {
    this.dir = join(dataDir, 'services');
    if (store) return;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const f of readdirSync(this.dir)) {
      if (!f.endsWith('.json')) continue;
      try {
        const rec = JSON.parse(readFileSync(join(this.dir, f), 'utf8')) as ServiceRecord;
        this.cache.set(rec.spec.name, rec);
      } catch (e) {
        // One bad file does not keep the daemon (and every other service) down.
        log.error(`services: ${join(this.dir, f)} is not a service record, skipped: ${String(e)}`);
      }
    }
  }

  /** In a cluster: every record from etcd, then kept as etcd changes. */
  async start(): Promise<void> {
    if (!this.store) return;
    const all = await this.store.start((name, rec) => {
      if (rec) this.cache.set(name, rec);
      else this.cache.delete(name);
      this.onChange?.();
    });
    for (const rec of all) this.cache.set(rec.spec.name, rec);
    this.onChange?.();
  }

  /**
   * In a cluster: the services this node kept in DATA/services before it joined become the
   * cluster's — each written to etcd unless the cluster has one of that name (a package's state
   * volume pinned to this node, where it lives), its file then renamed NAME.json.joined (kept,
   * never read again). One whose name the cluster has stays in its file, not run, with a warning
   * at each start; one that could not be written is tried again at the next start.
   */
  async adoptLocal(selfId: string): Promise<void> {
    if (!this.store || !existsSync(this.dir)) return;
    for (const f of readdirSync(this.dir).filter((x) => x.endsWith('.json'))) {
      const file = join(this.dir, f);
      let rec: ServiceRecord;
      try {
        rec = JSON.parse(readFileSync(file, 'utf8')) as ServiceRecord;
      } catch (e) {
        log.error(`services: ${file} is not a service record, left as it is: ${errorMessage(e)}`);
        continue;
      }
      const name = rec.spec.name;
      if (this.cache.has(name)) {
        log.warn(
          `services: service ${name} of ${file} (this node's before it joined the cluster) is not run: the cluster has a service of that name; push it under another name, or remove the file`,
          { service: name },
        );
        continue;
      }
      const mine = pinStateHere(rec, selfId);
      try {
        await this.store.put(mine);
      } catch (e) {
        log.warn(
          `services: service ${name} of ${file} not moved to the cluster yet (tried again at the next start): ${errorMessage(e)}`,
        );
        continue;
      }
      this.cache.set(name, mine);
      renameSync(file, `${file}.joined`);
      log.info(`services: service ${name}, this node's before it joined the cluster, is now the cluster's`, { service: name });
      this.onChange?.();
    }
  }

  async close(): Promise<void> {
    await this.store?.close();
  }

  private async write(rec: ServiceRecord): Promise<void> {
    if (this.store) {
      await this.store.put(rec);
      this.cache.set(rec.spec.name, rec);
      this.onChange?.();
      return;
    }
    const file = join(this.dir, `${rec.spec.name}.json`);
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
    renameSync(tmp, file);
    this.cache.set(rec.spec.name, rec);
    this.onChange?.();
  }

  /** Start or update a service (its replicas are replaced one at a time); `pkg`: the package it comes from (none: a push drops any). Checks come before anything is kept. */
  async push(spec: ServiceSpec, owner: string, pkg?: PackageRef): Promise<ServiceRecord> {
    await this.caughtUp();
    await this.checkPush(spec, owner);
    // Read again: the record may have changed while the checks ran (a rollback, another push).
    const held = this.cache.get(spec.name);
    return this.newGeneration(held, spec, held?.owner ?? owner, owner, 'push', pkg);
  }

  private async checkPush(spec: ServiceSpec, owner: string): Promise<void> {
    const taken = this.cache.get(spec.name);
    if (taken && !mayUse(owner, taken.owner))
      throw new RealmError('SERVICE_NAME_TAKEN', `the service name "${spec.name}" is taken by another user; pick another name`);
    if (await this.apps.lookup(spec.name))
      throw new RealmError(
        'SERVICE_NAME_TAKEN',
        `"${spec.name}" is a wasm app on this gateway; remove it (realm push rm ${spec.name}) or pick another name`,
      );
    // An unknown image is refused now, not found later by every replica.
    this.engine.sandboxes.resolveImage(spec.image);
    const stopAfter = spec.disconnect?.stopAfter;
    const ttl = stopAfter !== undefined ? await this.leaseTtl?.() : undefined;
    if (stopAfter !== undefined && ttl && stopAfter < ttl.ms)
      throw new RealmError(
        'INVALID_REQUEST',
        `disconnect.stopAfter ${stopAfter} ms is shorter than the lease TTL of node ${ttl.node} of this cluster (${ttl.ms / 1000} s, realm serve --lease-ttl; the longest of its nodes, any of which may run a replica): a node would stop its replicas on a cut the cluster rides out (its lease stands, nothing is placed elsewhere); give at least ${ttl.ms / 1000}s, or leave disconnect out to keep replicas running while a node is cut off`,
      );
  }

  private async newGeneration(
    held: ServiceRecord | undefined,
    spec: ServiceSpec,
    owner: string,
    by: string,
    cause: GenerationEntry['cause'],
    pkg?: PackageRef,
  ): Promise<ServiceRecord> {
    const rec = this.generationOf(held, spec, owner, by, cause, pkg);
    await this.write(rec);
    this.event(rec, 'service.pushed', { generation: rec.generation, cause, replicas: spec.replicas, by });
    return rec;
  }

  private generationOf(
    held: ServiceRecord | undefined,
    spec: ServiceSpec,
    owner: string,
    by: string,
    cause: GenerationEntry['cause'],
    pkg?: PackageRef,
  ): ServiceRecord {
    const now = Date.now();
    const generation = held ? lastGeneration(held) + 1 : 1;
    return {
      spec,
      owner,
      generation,
      createdAt: held?.createdAt ?? now,
      updatedAt: now,
      ...(pkg ? { package: pkg } : {}),
      ...nextGeneration(held, spec, generation, by, cause, now, pkg),
    };
  }

  /** A service's state changed: an event for its owner (and root) on the event stream. */
  event(rec: ServiceRecord, type: string, data: Record<string, unknown>, sandbox?: string): void {
    this.engine.events.emit({ type, owner: rec.owner, ids: { service: rec.spec.name, ...(sandbox ? { sandbox } : {}) }, data });
  }

  /** Generation `g`'s rollout ended well, or failed with nothing to go back to; false when it is not the one rolling out. */
  async finishRollout(name: string, g: number, outcome: 'rolled-out' | 'failed', reason: string | null = null): Promise<boolean> {
    const rec = this.cache.get(name);
    if (!rec?.rollout || rec.generation !== g) return false;
    const now = Date.now();
    await this.write({ ...rec, rollout: undefined, history: settle(rec, g, outcome, reason, now) });
    this.event(rec, outcome === 'rolled-out' ? 'service.rolled-out' : 'service.failed', { generation: g, reason });
    return true;
  }

  /**
   * Generation `g` failed while rolling out: the generation it replaced (its spec and its package,
   * so the static and config trees it mounted) is desired again, so the replicas of it that still
   * run are kept and the missing ones start. False when `g` is not rolling out or has nothing to
   * go back to.
   */
  async rollback(name: string, g: number, reason: string): Promise<boolean> {
    const rec = this.cache.get(name);
    const from = rec?.rollout?.from;
    if (!rec || !from || rec.generation !== g) return false;
    const now = Date.now();
    const { package: _failed, ...kept } = rec;
    await this.write({
      ...kept,
      ...(from.package ? { package: from.package } : {}),
      spec: from.spec,
      generation: from.generation,
      updatedAt: now,
      rollout: undefined,
      history: settle(rec, g, 'rolled-back', reason, now),
    });
    this.event(rec, 'service.rolled-back', { generation: g, to: from.generation, reason });
    return true;
  }

  /** Every service (the reconciler's view). */
  all(): ServiceRecord[] {
    return [...this.cache.values()];
  }

  /** The services a principal may see. */
  list(who: string): ServiceRecord[] {
    return this.all().filter((r) => mayUse(who, r.owner));
  }

  /** The service for the gateway: by name, no owner check (it serves by visibility). */
  lookup(name: string): ServiceRecord | undefined {
    return this.cache.get(name);
  }

  /** One service, or SERVICE_NOT_FOUND (also for another user's: names do not leak). */
  get(name: string, who: string): ServiceRecord {
    const rec = this.cache.get(name);
    if (!rec || !mayUse(who, rec.owner))
      throw new RealmError('SERVICE_NOT_FOUND', `no service "${name}"; \`realm svc ls\` lists them`);
    return rec;
  }

  /** Set the replica count; during a rollout, of the generation it would roll back to as well (a rollback keeps the count set last). */
  async scale(name: string, replicas: number, who: string): Promise<ServiceRecord> {
    await this.caughtUp();
    const next = this.scaled(name, replicas, who);
    await this.write(next);
    this.event(next, 'service.scaled', { replicas, by: who });
    return next;
  }

  private scaled(name: string, replicas: number, who: string): ServiceRecord {
    const rec = this.get(name, who);
    const from = rec.rollout?.from;
    return {
      ...rec,
      spec: { ...rec.spec, replicas },
      updatedAt: Date.now(),
      ...(rec.rollout && from ? { rollout: { ...rec.rollout, from: { ...from, spec: { ...from.spec, replicas } } } } : {}),
    };
  }

  /** What a push would write, its checks passed; nothing is written (`commit` does). */
  async planPush(spec: ServiceSpec, owner: string): Promise<PlannedChange> {
    await this.checkPush(spec, owner);
    const held = this.cache.get(spec.name);
    const rec = this.generationOf(held, spec, held?.owner ?? owner, owner, 'push');
    return {
      kind: 'put',
      rec,
      event: ['service.pushed', { generation: rec.generation, cause: 'push', replicas: spec.replicas, by: owner }],
    };
  }

  planScale(name: string, replicas: number, who: string): PlannedChange {
    return { kind: 'put', rec: this.scaled(name, replicas, who), event: ['service.scaled', { replicas, by: who }] };
  }

  planRemove(name: string, who: string): PlannedChange {
    return { kind: 'delete', rec: this.get(name, who), by: who };
  }

  /**
   * In a cluster: every record as etcd has it now (waits for the watch, at most `ms`). A user's
   * push, scale, restart or removal waits for it first, so it acts on every change answered before
   * it began, on whichever node (not refused as raced by one this node's watch had yet to bring,
   * nor its owner check made on a stale record).
   */
  async caughtUp(ms = 3000): Promise<void> {
    await this.store?.caughtUp?.(ms);
  }

  /**
   * Write planned changes in one etcd transaction with `swap` (a cluster's only): all or none,
   * and none when a record or `swap.key` changed since they were read.
   */
  async commit(changes: PlannedChange[], swap: Swap, also?: KeyWrites): Promise<CommitOutcome> {
    if (!this.store?.commit) throw new Error("commit writes a cluster's desired state; a lone node writes each change");
    const puts = changes.flatMap((c) => (c.kind === 'put' ? [c.rec] : []));
    const deletes = changes.flatMap((c) => (c.kind === 'delete' ? [c.rec.spec.name] : []));
    const r = await this.store.commit(puts, deletes, swap, also);
    if (r.outcome !== 'done') return r;
    for (const c of changes) {
      if (c.kind === 'put') {
        this.cache.set(c.rec.spec.name, c.rec);
        this.event(c.rec, ...c.event);
      } else {
        this.cache.delete(c.rec.spec.name);
        this.event(c.rec, 'service.removed', { by: c.by });
      }
    }
    this.onChange?.();
    return r;
  }

  /** Replace every replica, one at a time: a new generation of the same spec. */
  async restart(name: string, who: string): Promise<ServiceRecord> {
    await this.caughtUp();
    const rec = this.get(name, who);
    return this.newGeneration(rec, rec.spec, rec.owner, who, 'restart', rec.package);
  }

  async remove(name: string, who: string): Promise<void> {
    await this.caughtUp();
    const rec = this.get(name, who);
    if (this.store) await this.store.delete(name);
    else {
      const file = join(this.dir, `${name}.json`);
      if (existsSync(file)) rmSync(file);
    }
    this.cache.delete(name);
    this.event(rec, 'service.removed', { by: who });
    this.onChange?.();
  }
}

/** `rec` with the state volumes of its packages (now and one a rollout would go back to) on node `self`, where they were made. */
function pinStateHere(rec: ServiceRecord, self: string): ServiceRecord {
  const pin = (pkg: PackageRef | undefined): PackageRef | undefined =>
    pkg && { ...pkg, mounts: pkg.mounts.map((m) => (m.kind === 'state' && m.node === undefined ? { ...m, node: self } : m)) };
  const from = rec.rollout?.from;
  return {
    ...rec,
    ...(rec.package ? { package: pin(rec.package) } : {}),
    ...(rec.rollout && from?.package ? { rollout: { ...rec.rollout, from: { ...from, package: pin(from.package) } } } : {}),
  };
}
