/**
 * The sandbox lifecycle: create (or take a warm one), start, stop, update, signal, destroy, and
 * what a driver is given for each (its spec: root, limits, volume views of its own uid, proxy
 * dir). Runs, warm pools and workspaces call it directly; the engine composes it with the rest.
 *
 *   const sandboxes = new SandboxLifecycle(parts);
 *   const rec = await sandboxes.create(createSandboxSchema.parse({ image: 'host' }));
 *   await sandboxes.destroy(rec.id);
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DriverSandboxSpec, Mount } from '../drivers/driver.js';
import type { SandboxRecord, Store, WorkspaceOf } from '../store/store.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { refuseUnguarded } from '../net/addresses.js';
import { refuseUnservable } from './capabilities.js';
import { Networks, PROXY_PORT } from '../net/manager.js';
import type { Capacity } from './capacity.js';
import type { EngineConfig } from './config.js';
import type { DriverSet } from './driver-set.js';
import { HostIds, type SandboxIds } from './host-ids.js';
import type { ImageRoots } from './images.js';
import type { Processes } from './processes.js';
import { type CreateSandboxOptions, type UpdateSandboxOptions, RESERVED_NAME } from './schemas.js';
import type { VolumeViews } from './volume-views.js';
import type { Volumes } from './volumes.js';
import { type WarmSandbox, WarmSandboxes } from './warm.js';
import { workspaceMounts } from './workspaces.js';
import type { EventBus } from './events.js';
import { traced } from '../telemetry/trace.js';

/** What the lifecycle works with (the engine makes each once). */
export interface LifecycleParts {
  config: EngineConfig;
  store: Store;
  drivers: DriverSet;
  capacity: Capacity;
  hostIds: HostIds;
  views: VolumeViews;
  volumes: Volumes;
  networks: Networks;
  imageRoots: ImageRoots;
  processes: Processes;
  /** `<data-dir>/sandboxes`: one state dir per sandbox. */
  sandboxesDir: string;
  events?: EventBus;
}

export class SandboxLifecycle {
  /** Persistent sandboxes built ahead of demand, per shape. */
  readonly warm: WarmSandboxes;
  readonly drivers: DriverSet;
  readonly dir: string;

  constructor(private readonly p: LifecycleParts) {
    this.drivers = p.drivers;
    this.dir = p.sandboxesDir;
    this.warm = new WarmSandboxes(this, p.config.warm, p.config.warmMax);
  }

  /** Tell the event bus (events.ts) what became of a listed sandbox (ephemeral ones are realm's own). */
  private emit(type: string, rec: SandboxRecord, data: Record<string, unknown> = {}): void {
    if (rec.ephemeral) return;
    this.p.events?.emit({ type, owner: rec.owner, ids: { sandbox: rec.id }, labels: rec.labels, data });
  }

  /** Sandbox `id`'s host-side state dir (the driver's, with its volume views in it). */
  private stateDir(id: string): string {
    return join(this.dir, id);
  }

  /** The sandbox of this name, whatever its kind, or null. */
  named(name: string): Promise<SandboxRecord | null> {
    return this.p.store.getSandboxByName(name);
  }

  /** The root an image names now (IMAGE_NOT_FOUND otherwise). */
  resolveImage(image: string): string {
    return this.p.imageRoots.resolve(image);
  }

  /** Ids of its own for a sandbox of the warm pools (given back when it is discarded). */
  get hostIds(): HostIds {
    return this.p.hostIds;
  }

  /** The mounts of a sandbox's volumes; a workspace's clone only in that workspace's sandbox. */
  private resolveVolumes(
    opts: Pick<CreateSandboxOptions, 'volumes'>,
    workspace: WorkspaceOf | undefined,
    owner?: string,
  ): Promise<Mount[]> {
    return this.p.volumes.mounts(opts.volumes, workspace?.name, owner);
  }

  /** The host ids a sandbox runs as (its own; those of every sandbox of an older realm if it has none). */
  idsOf(rec: Pick<SandboxRecord, 'uid'>): SandboxIds {
    return HostIds.of(rec.uid);
  }

  /** What the driver gets: `mounts` are the sandbox's volumes, bound through views of its own uid. */
  private async specWithViews(rec: SandboxRecord, mounts: Mount[], proxyDir?: string): Promise<DriverSandboxSpec> {
    const views = await this.p.views.attach(this.stateDir(rec.id), this.idsOf(rec).uid, mounts);
    return this.spec(rec, views, proxyDir);
  }

  /** What the driver gets for `rec`, `mounts` bound as given (warm sandboxes have none). */
  spec(rec: SandboxRecord, mounts: Mount[], proxyDir?: string): DriverSandboxSpec {
    return {
      ...(proxyDir ? { proxy: { dir: proxyDir, port: PROXY_PORT } } : {}),
      ...this.idsOf(rec),
      id: rec.id,
      rootfs: this.p.imageRoots.rootOf(rec.id, rec.image),
      limits: rec.limits,
      network: rec.network,
      mounts: [...mounts, ...workspaceMounts(this.dir, rec)],
      env: rec.env,
      hostname: 'sandbox',
      stateDir: this.stateDir(rec.id),
    };
  }

  /** For an allow-list sandbox, start its proxy; the directory the driver binds in. */
  async startNetwork(rec: SandboxRecord): Promise<string | undefined> {
    if (!Networks.filtered(rec)) return undefined;
    // The state dir root's alone until its driver opens it as far as it needs (see makeWritableLayer).
    mkdirSync(this.stateDir(rec.id), { recursive: true, mode: 0o700 });
    const dir = join(this.stateDir(rec.id), 'net');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    await this.p.networks.start(rec, dir, this.idsOf(rec).uid);
    return dir;
  }

  /**
   * Create and start a sandbox for `owner` (`uid:N`; it may mount only its own volumes).
   * `workspace` (Workspaces only) makes it that workspace's: the record's kind, which no API
   * input sets.
   */
  create(
    given: CreateSandboxOptions,
    ephemeral = false,
    owner?: string,
    workspace?: SandboxRecord['workspace'],
    binds: Mount[] = [],
  ): Promise<SandboxRecord> {
    const driver = given.driver ?? this.drivers.defaultName;
    return traced(
      'sandbox.create',
      { 'realm.driver': driver, 'realm.image': given.image, 'realm.network': given.network, 'realm.ephemeral': ephemeral },
      async (span) => {
        const rec = await this.make(given, ephemeral, owner, workspace, binds, (warm) => span.set({ 'realm.warm': warm }));
        span.set({ 'realm.sandbox.id': rec.id });
        return rec;
      },
    );
  }

  private async make(
    given: CreateSandboxOptions,
    ephemeral: boolean,
    owner: string | undefined,
    workspace: SandboxRecord['workspace'] | undefined,
    binds: Mount[],
    tookWarm: (warm: boolean) => void,
  ): Promise<SandboxRecord> {
    const opts = { ...given, driver: given.driver ?? this.drivers.defaultName };
    const driver = await this.drivers.available(opts.driver);
    if (!workspace && opts.name && RESERVED_NAME.test(opts.name)) {
      throw new RealmError('INVALID_REQUEST', `sandbox names starting with ws- are kept for workspaces; pick another name`);
    }
    refuseUnguarded(this.p.config, opts.network);
    refuseUnservable(opts.driver, driver.capabilities, {
      network: opts.allow.length ? 'allowlist' : opts.network,
      volumes: opts.volumes.length,
    });
    if (opts.name && (await this.p.store.getSandboxByName(opts.name))) {
      throw new RealmError('SANDBOX_NAME_TAKEN', `a sandbox named "${opts.name}" exists; pick another name or remove it first`);
    }
    await this.p.imageRoots.ensure(opts.image); // in a cluster, brought from a node that has it
    this.p.imageRoots.resolve(opts.image); // refuse an unknown image before anything is made
    const mounts = [...(await this.resolveVolumes(opts, workspace, owner)), ...binds];
    const now = Date.now();
    const rec: SandboxRecord = {
      id: this.p.capacity.reserve('sb'),
      name: opts.name ?? null,
      driver: opts.driver,
      image: opts.image,
      status: 'creating',
      limits: { memoryBytes: opts.memory, pids: opts.pids, cpus: opts.cpus, diskBytes: opts.disk, tmpBytes: opts.tmp },
      network: opts.network,
      allow: opts.allow,
      deny: opts.deny,
      inject: opts.inject,
      volumes: opts.volumes.map((v) => ({ volume: v.volume, path: v.path, readOnly: v.readOnly })),
      env: opts.env,
      labels: opts.labels,
      expiresAt: opts.ttl > 0 ? now + opts.ttl : null,
      createdAt: now,
      ephemeral,
      ...(workspace ? { workspace } : {}),
      ...(owner ? { owner } : {}),
      ...(binds.length ? { binds } : {}),
      driverState: {},
    };
    let warm: WarmSandbox | undefined;
    try {
      warm = ephemeral || mounts.length || Networks.filtered(rec) ? undefined : this.warm.take(opts);
      tookWarm(warm !== undefined);
      if (warm) {
        this.p.capacity.release(rec.id);
        rec.id = warm.id;
        rec.uid = warm.uid;
        this.p.capacity.add(rec.id);
        rec.driverState = warm.state;
        await driver.update(rec.driverState, rec.limits);
      } else {
        rec.uid = this.p.hostIds.take(rec.id).uid;
        if (!ephemeral) await this.p.store.putSandbox(rec);
        rec.driverState = await driver.create(await this.specWithViews(rec, mounts, await this.startNetwork(rec)));
      }
      rec.status = 'running';
      if (!ephemeral) await this.p.store.putSandbox(rec);
      this.emit('sandbox.created', rec, { driver: rec.driver, image: rec.image, name: rec.name });
      this.emit('sandbox.started', rec);
      return rec;
    } catch (e) {
      // A warm sandbox taken for this create (its limits refused by the driver) is ours to remove.
      if (warm && rec.id === warm.id) await warm.discard().catch(() => undefined);
      else {
        // The driver removed what it made; the views (mounted before it ran) are ours.
        await this.p.views.detach(this.stateDir(rec.id)).catch(() => undefined);
        this.p.hostIds.give(rec.id);
      }
      this.p.capacity.release(rec.id);
      await this.p.networks.stop(rec.id);
      if (!ephemeral) await this.p.store.deleteSandbox(rec.id);
      if (e instanceof RealmError) throw e;
      throw new RealmError('SANDBOX_START_FAILED', `the sandbox could not start: ${errorMessage(e)}`);
    }
  }

  /** Find a sandbox by id or name. */
  async get(idOrName: string): Promise<SandboxRecord> {
    const rec = (await this.p.store.getSandbox(idOrName)) ?? (await this.p.store.getSandboxByName(idOrName));
    if (!rec) throw new RealmError('SANDBOX_NOT_FOUND', `no sandbox "${idOrName}"; \`realm sandbox ls\` lists them`);
    return rec;
  }

  /** Record that a person or agent used the sandbox now. */
  async touch(idOrName: string): Promise<SandboxRecord> {
    const rec = await this.get(idOrName);
    rec.usedAt = Date.now();
    await this.p.store.putSandbox(rec);
    return rec;
  }

  async list(filter: { labels?: Record<string, string>; status?: string } = {}): Promise<SandboxRecord[]> {
    return (await this.p.store.listSandboxes()).filter(
      (r) =>
        (!filter.status || r.status === filter.status) &&
        Object.entries(filter.labels ?? {}).every(([k, v]) => r.labels[k] === v),
    );
  }

  async stop(idOrName: string, timeoutMs = 5000): Promise<SandboxRecord> {
    const rec = await this.get(idOrName);
    if (rec.status !== 'running') return rec;
    const driver = this.drivers.get(rec.driver);
    refuseUnservable(rec.driver, driver.capabilities, { stopStart: true });
    await driver.stop(rec.driverState, timeoutMs);
    await this.p.views.detach(this.stateDir(rec.id));
    await this.p.networks.stop(rec.id);
    rec.status = 'stopped';
    await this.p.store.putSandbox(rec);
    this.emit('sandbox.stopped', rec);
    return rec;
  }

  async start(idOrName: string): Promise<SandboxRecord> {
    const rec = await this.get(idOrName);
    if (rec.status === 'running') return rec;
    const driver = await this.drivers.available(rec.driver);
    try {
      rec.driverState = await driver.start(
        await this.specWithViews(
          rec,
          [...(await this.resolveVolumes(rec, rec.workspace)), ...(rec.binds ?? [])],
          await this.startNetwork(rec),
        ),
        rec.driverState,
      );
    } catch (e) {
      await this.p.views.detach(this.stateDir(rec.id)).catch(() => undefined);
      throw new RealmError('SANDBOX_START_FAILED', `sandbox ${rec.id} could not start: ${errorMessage(e)}`);
    }
    rec.status = 'running';
    await this.p.store.putSandbox(rec);
    this.emit('sandbox.started', rec);
    return rec;
  }

  /** Set a new TTL (counted from now; 0 for none) or labels. */
  async update(idOrName: string, changes: UpdateSandboxOptions): Promise<SandboxRecord> {
    const rec = await this.get(idOrName);
    if (changes.ttl !== undefined) {
      // A service's replica or a job attempt's sandbox lives as long as its owner wants it: at a
      // TTL of its own it would be destroyed, then made again (a replica) or its attempt lost.
      const service = rec.labels['realm.service'];
      const run = rec.labels['realm.job-run'];
      if (service !== undefined || run !== undefined)
        throw new RealmError(
          'INVALID_REQUEST',
          service !== undefined
            ? `sandbox ${rec.id} is a replica of service ${service}, which decides its life: no TTL of its own (realm svc scale, restart or rm ${service})`
            : `sandbox ${rec.id} runs an attempt of job run ${run}, which decides its life: no TTL of its own (realm job cancel ${run})`,
        );
      rec.expiresAt = changes.ttl > 0 ? Date.now() + changes.ttl : null;
    }
    // Labels realm keeps (realm.job-run: a job attempt's sandbox, which dies with the daemon and
    // goes at its next start) stay: a caller replaces only its own.
    if (changes.labels)
      rec.labels = {
        ...Object.fromEntries(Object.entries(rec.labels).filter(([k]) => /^realm\./i.test(k))),
        ...changes.labels,
      };
    await this.p.store.putSandbox(rec);
    return rec;
  }

  /** Send a signal to every process of a running sandbox but its init. */
  async signal(idOrName: string, signal: NodeJS.Signals): Promise<void> {
    const rec = await this.get(idOrName);
    if (rec.status !== 'running')
      throw new RealmError('SANDBOX_NOT_RUNNING', `sandbox ${rec.id} is ${rec.status}; nothing runs in it`);
    await this.drivers.get(rec.driver).signal(rec.driverState, signal);
  }

  /** Destroy a sandbox: nothing of it is left but its volumes. */
  async destroy(idOrName: string): Promise<void> {
    const rec = await this.get(idOrName);
    await traced('sandbox.destroy', { 'realm.driver': rec.driver, 'realm.sandbox.id': rec.id }, () => this.remove(rec));
  }

  private async remove(rec: SandboxRecord): Promise<void> {
    rec.status = 'destroying';
    await this.p.store.putSandbox(rec);
    await this.destroyState(rec);
    this.p.processes.forget(rec.id);
    await this.p.networks.stop(rec.id);
    this.p.networks.forget(rec.id);
    await this.p.store.deleteSandbox(rec.id);
    this.p.capacity.release(rec.id);
    this.emit('sandbox.destroyed', rec);
  }

  /** Remove what the driver made of a sandbox, its volume views first (the driver removes the state dir); its ids go back. */
  async destroyState(rec: SandboxRecord): Promise<void> {
    await this.p.views.detach(this.stateDir(rec.id));
    await this.drivers.get(rec.driver).destroy(rec.driverState);
    this.p.hostIds.give(rec.id);
  }

  /** Re-count live sandboxes from the store (after recover). */
  async loadLive(): Promise<void> {
    for (const r of await this.p.store.listSandboxes()) {
      this.p.capacity.add(r.id);
      this.p.hostIds.adopt(r.id, r.uid);
    }
  }

  async reap(): Promise<void> {
    const now = Date.now();
    for (const rec of await this.p.store.listSandboxes()) {
      if (rec.expiresAt !== null && rec.expiresAt <= now && rec.status !== 'destroying') {
        await this.destroy(rec.id).catch(() => undefined);
      }
    }
  }
}
