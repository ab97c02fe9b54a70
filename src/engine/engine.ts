/**
 * The engine: sandboxes, execs, one-shot runs and volumes, over a store and a set of drivers.
 * No HTTP here; the daemon and the tests drive it directly. Which root a sandbox or run gets
 * (and image builds) is in images.ts, commands in sandboxes in exec.ts, one-shot runs in
 * runs.ts, warm sandboxes in warm.ts.
 */
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Driver, DriverInfo, DriverName, DriverProcess, DriverSandboxSpec, Mount } from '../drivers/driver.js';
import { type OutputListener, Runs } from './runs.js';
import { type WarmSandbox, WarmSandboxes } from './warm.js';
import type { SandboxRecord, Store, WorkspaceOf } from '../store/store.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { type Language, Languages } from './languages.js';
import type { BuildOptions, BuildResult, ImageBuilder } from '../images/build/builder.js';
import { SandboxFiles } from './files.js';
import { Volumes } from './volumes.js';
import { ImageRoots } from './images.js';
import type { ImageStore } from '../images/store.js';
import { Capacity } from './capacity.js';
import { Workspaces } from './workspaces.js';
import { Destinations, parseCidr, refuseUnguarded } from '../net/addresses.js';
import { refuseUnservable } from './capabilities.js';
import { Networks, PROXY_PORT } from '../net/manager.js';
import { OutputBudget, outputBudgetBytes } from './output.js';
import { type ProcessInfo, Processes } from './processes.js';
import { type Recovered, recoverSandboxes } from './recover.js';
import type { EngineConfig } from './config.js';
import { SandboxExec } from './exec.js';
import { HostIds, type SandboxIds } from './host-ids.js';
import { VolumeViews } from './volume-views.js';

import { type InteractiveOptions, type StartProcessOptions, type UpdateSandboxOptions, type CreateSandboxOptions, type ExecOptions, type ExecResult, type RunOptions, type RunResult, RESERVED_NAME, createSandboxSchema, runSchema } from './schemas.js';

export type { OutputListener } from './runs.js';
export type { EngineConfig } from './config.js';

export class Engine {
  readonly languages: Languages;
  /** The files API over realm-fs in each sandbox. */
  readonly files: SandboxFiles;
  /** Named volumes, and which sandboxes mount them. */
  readonly volumes: Volumes;
  /** The daemon-wide budget of program output held in memory (execs, runs, background processes). */
  readonly outputBudget: OutputBudget;
  /** Background processes, kept attached for reconnects. */
  readonly processes: Processes;
  /** Allow-list sandboxes' proxies and what they refused. */
  readonly networks: Networks;
  /** Workspaces: private clones of git repositories in long-lived sandboxes. */
  readonly workspaces: Workspaces;
  /** Which root each sandbox and run gets: the image store, builds, recipes (see images.ts). */
  private readonly imageRoots: ImageRoots;
  private readonly capacity: Capacity;
  private reaper: NodeJS.Timeout | undefined;
  private fingerprints: Promise<DriverInfo[]> | undefined;
  private readonly runs: Runs;
  private readonly warmSandboxes: WarmSandboxes;
  private readonly execs: SandboxExec;
  /** Each sandbox's and run's own host uid, from the operator's range. */
  readonly hostIds: HostIds;
  /** Volumes as each sandbox's own uid sees them (idmapped mounts in its state dir). */
  private readonly views: VolumeViews;

  constructor(
    readonly config: EngineConfig,
    private readonly store: Store,
    private readonly drivers: Map<DriverName, Driver>,
    languageDirs: string[],
  ) {
    this.hostIds = new HostIds(config.uidRange);
    // The data dir holds the daemon's secrets: root's, closed to every other local user. Its
    // group is the one every sandbox uid carries, which may pass through (never list) down to
    // what the namespace driver's bwrap, running as a sandbox's uid, binds in: images, and in the
    // sandbox's own state dir (root's and that uid's alone) its home, volumes and proxy dir.
    for (const d of [config.dataDir, this.sandboxesDir]) {
      mkdirSync(d, { recursive: true, mode: 0o700 });
      chownSync(d, process.getuid?.() ?? 0, this.hostIds.group);
      chmodSync(d, 0o710);
    }
    // Volumes at rest: root's alone; a sandbox reaches one only through its view (volume-views.ts).
    mkdirSync(this.volumesDir, { recursive: true, mode: 0o700 });
    chownSync(this.volumesDir, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
    chmodSync(this.volumesDir, 0o700);
    this.views = new VolumeViews(this.hostIds.storage);
    this.imageRoots = new ImageRoots(config, {
      listSandboxes: () => this.store.listSandboxes(),
      dropWarm: async (match) => void (await Promise.all([this.warmSandboxes.pool.drop(match), this.runs.pool.drop(match)])),
      runInImage: (image, argv, env) => this.runInImage(image, argv, env),
    });
    this.languages = new Languages(languageDirs, this.imageRoots.versionProbe());
    this.capacity = new Capacity(config.maxSandboxes);
    this.outputBudget = new OutputBudget(outputBudgetBytes(config.outputBudget));
    this.processes = new Processes(this.outputBudget);
    this.execs = new SandboxExec({ getSandbox: (id) => this.getSandbox(id), driver: (n) => this.driver(n), processes: this.processes, outputBudget: this.outputBudget });
    this.files = new SandboxFiles((id, args, stdin) => this.execs.tool(id, args, stdin));
    this.volumes = new Volumes(store, this.volumesDir, this.hostIds.storage);
    this.networks = new Networks(config.pinnedHosts ?? {}, new Destinations((config.allowPrivate ?? []).map(parseCidr)), { caDir: join(config.dataDir, 'proxy-ca'), upstreamCaFile: config.proxyUpstreamCa });
    this.workspaces = new Workspaces({
      volumesDir: this.volumesDir,
      sandboxesDir: this.sandboxesDir,
      storageUid: this.hostIds.storage,
      touch: (id) => this.touchSandbox(id),
      sandboxNamed: (name) => this.store.getSandboxByName(name),
      listSandboxes: () => this.store.listSandboxes(),
      createSandbox: (o, w) => this.createSandbox(o, false, w.owner, w),
      startSandbox: (id) => this.startSandbox(id),
      destroySandbox: (id) => this.destroySandbox(id),
      volume: (n) => this.volumes.record(n),
      createVolume: (n, w) => this.volumes.createForWorkspace(n, w),
      removeVolume: (n, w) => this.volumes.remove(n, w),
    });
    this.runs = new Runs({
      config,
      defaultDriver: this.defaultDriver,
      sandboxesDir: this.sandboxesDir,
      languages: this.languages,
      capacity: this.capacity,
      outputBudget: this.outputBudget,
      roots: this.imageRoots.roots,
      driver: (n) => this.driver(n),
      availableDriver: (n) => this.availableDriver(n),
      languageImage: (l: Language) => this.imageRoots.languageImage(l),
      createSandbox: (o, e) => this.createSandbox(o, e),
      destroyEphemeral: (r) => this.destroyState(r),
      hostIds: this.hostIds,
      execIn: (r, o, d, sig) => this.execs.exec(r, o, d, sig),
    }, config.warm, config.warmMax);
    this.warmSandboxes = new WarmSandboxes({ resolve: (i) => this.imageRoots.resolve(i), availableDriver: (n) => this.availableDriver(n), spec: (r, m) => this.spec(r, m), hostIds: this.hostIds }, config.warm, config.warmMax);
  }

  /** The content-addressed image store under <data-dir>/images (imports, pulls, exports, builds). */
  get images(): ImageStore {
    return this.imageRoots.store;
  }

  /** Builds images from recipes (`realm image build`) into the store. */
  get builder(): ImageBuilder {
    return this.imageRoots.builder;
  }

  /** Directories holding named image recipes: the operator's first, then realm's. */
  get recipeDirs(): string[] {
    return this.imageRoots.recipeDirs;
  }

  /** Build image `name` into the store (see ImageBuilder.build); warm sandboxes of the old root go. */
  buildImage(name: string, recipe: unknown, o: BuildOptions = {}): Promise<BuildResult> {
    return this.imageRoots.build(name, recipe, o);
  }

  get sandboxesDir(): string {
    return join(this.config.dataDir, 'sandboxes');
  }
  get volumesDir(): string {
    return join(this.config.dataDir, 'volumes');
  }

  /** What each driver can do on this host. */
  fingerprint(): Promise<DriverInfo[]> {
    this.fingerprints ??= Promise.all([...this.drivers.values()].map((d) => d.fingerprint()));
    return this.fingerprints;
  }

  /** After a (re)start: re-attach, stop or clean up what the last run left (see recover.ts). */
  async recover(): Promise<Recovered> {
    const available = new Set((await this.fingerprint()).filter((f) => f.available).map((f) => f.name));
    const running = async (): Promise<SandboxRecord[]> => (await this.store.listSandboxes()).filter((r) => r.status === 'running');
    const ids = (recs: SandboxRecord[]): Set<string> => new Set(recs.map((r) => r.id));
    // Volume views first: a state dir is removed only once nothing is mounted in it.
    await this.views.sweep(this.sandboxesDir, ids(await running()));
    const counts = await recoverSandboxes(this.store, this.drivers, available, this.sandboxesDir);
    const live = await running();
    await this.views.sweep(this.sandboxesDir, ids(live));
    for (const name of await this.volumes.adopt(live)) console.error(`realm: volume ${name} now belongs to the storage uid ${this.hostIds.storage}`);
    await this.imageRoots.recover();
    // Running allow-list sandboxes get their proxies back (the socket's directory is bound in).
    for (const rec of await this.store.listSandboxes()) if (rec.status === 'running') await this.startNetwork(rec);
    return counts;
  }

  /** Destroy sandboxes whose TTL has passed, every `intervalMs`. */
  startReaper(intervalMs = 1000): void {
    this.reaper = setInterval(() => void this.reap(), intervalMs);
    this.reaper.unref();
  }

  private async reap(): Promise<void> {
    const now = Date.now();
    for (const rec of await this.store.listSandboxes()) {
      if (rec.expiresAt !== null && rec.expiresAt <= now && rec.status !== 'destroying') {
        await this.destroySandbox(rec.id).catch(() => undefined);
      }
    }
  }

  /** Resolves when no one-shot clean-up and no warming is under way. */
  async settled(): Promise<void> {
    await this.capacity.settled();
    await Promise.all([this.runs.pool.settled(), this.warmSandboxes.pool.settled()]);
  }

  /** Ids of the sandboxes waiting in warm pools (they own cgroups and processes too). */
  warmIds(): string[] {
    return [...this.runs.pool.items(), ...this.warmSandboxes.pool.items()].map((i) => i.id);
  }

  /** Start warming the default shapes: a `realm run` of an interpreted language, a plain create. */
  async warmDefaults(): Promise<void> {
    const driver = this.defaultDriver;
    const info = (await this.fingerprint()).find((f) => f.name === driver);
    if (!info?.available || this.config.warm <= 0) return;
    const run = runSchema.parse({ language: 'python', code: '' });
    this.runs.warmRun({ driver, rootfs: 'host', network: run.network, disk: run.disk });
    this.warmSandboxes.take({ ...createSandboxSchema.parse({}), driver });
  }

  /** Stop the reaper, discard warm pools and wait for clean-ups; live sandboxes keep running. */
  async close(): Promise<void> {
    if (this.reaper) clearInterval(this.reaper);
    await Promise.all([this.runs.pool.close(), this.warmSandboxes.pool.close(), this.networks.closeAll(), this.imageRoots.close()]);
    await this.capacity.settled();
    await Promise.all([...this.drivers.values()].map((d) => d.close?.() ?? Promise.resolve()));
  }

  /** The driver of creates and runs that name none. */
  get defaultDriver(): DriverName {
    return this.config.defaultDriver ?? 'namespace';
  }

  private driver(name: DriverName): Driver {
    const d = this.drivers.get(name);
    if (!d) throw new RealmError('DRIVER_UNAVAILABLE', `driver "${name}" is not offered by this node; run \`realm doctor\` to see which drivers are`);
    return d;
  }

  private async availableDriver(name: DriverName): Promise<Driver> {
    const d = this.driver(name);
    const info = (await this.fingerprint()).find((f) => f.name === name);
    if (!info?.available) throw new RealmError('DRIVER_UNAVAILABLE', `driver "${name}" cannot run on this host: ${info?.reason ?? 'unknown'}`);
    return d;
  }

  /** Run one command in a throwaway sandbox of `image` (small limits, no network). */
  private async runInImage(image: string, argv: string[], env: Record<string, string>): Promise<string> {
    const sandbox = await this.createSandbox(createSandboxSchema.parse({ image, memory: '512m', pids: 128, ttl: 0 }), true);
    try {
      const r = await this.execs.exec(sandbox, { command: argv, env, cwd: '/home/user', timeout: 20_000, output: 64 * 1024 });
      return r.stdout + r.stderr;
    } finally {
      this.capacity.cleanUp(sandbox.id, () => this.destroyState(sandbox));
    }
  }

  /** The mounts of a sandbox's volumes; a workspace's clone only in that workspace's sandbox. */
  private resolveVolumes(opts: Pick<CreateSandboxOptions, 'volumes'>, workspace: WorkspaceOf | undefined, owner?: string): Promise<Mount[]> {
    return this.volumes.mounts(opts.volumes, workspace?.name, owner);
  }

  /** The host ids a sandbox runs as (its own; those of every sandbox of an older realm if it has none). */
  idsOf(rec: Pick<SandboxRecord, 'uid'>): SandboxIds {
    return HostIds.of(rec.uid);
  }

  /** What the driver gets: `mounts` are the sandbox's volumes, bound through views of its own uid. */
  private async specWithViews(rec: SandboxRecord, mounts: Mount[], proxyDir?: string): Promise<DriverSandboxSpec> {
    const views = await this.views.attach(join(this.sandboxesDir, rec.id), this.idsOf(rec).uid, mounts);
    return this.spec(rec, views, proxyDir);
  }

  private spec(rec: SandboxRecord, mounts: Mount[], proxyDir?: string): DriverSandboxSpec {
    return {
      ...(proxyDir ? { proxy: { dir: proxyDir, port: PROXY_PORT } } : {}),
      ...this.idsOf(rec),
      id: rec.id,
      rootfs: this.imageRoots.rootOf(rec.id, rec.image),
      limits: rec.limits,
      network: rec.network,
      mounts: [...mounts, ...this.workspaces.mounts(rec)],
      env: rec.env,
      hostname: 'sandbox',
      stateDir: join(this.sandboxesDir, rec.id),
    };
  }

  /** For an allow-list sandbox, start its proxy; the directory the driver binds in. */
  private async startNetwork(rec: SandboxRecord): Promise<string | undefined> {
    if (!Networks.filtered(rec)) return undefined;
    // The state dir root's alone until its driver opens it as far as it needs (see makeWritableLayer).
    mkdirSync(join(this.sandboxesDir, rec.id), { recursive: true, mode: 0o700 });
    const dir = join(this.sandboxesDir, rec.id, 'net');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    await this.networks.start(rec, dir, this.idsOf(rec).uid);
    return dir;
  }

  /**
   * Create and start a sandbox for `owner` (`uid:N`; it may mount only its own volumes).
   * `workspace` (Workspaces only) makes it that workspace's: the record's kind, which no API
   * input sets.
   */
  async createSandbox(given: CreateSandboxOptions, ephemeral = false, owner?: string, workspace?: SandboxRecord['workspace']): Promise<SandboxRecord> {
    const opts = { ...given, driver: given.driver ?? this.defaultDriver };
    const driver = await this.availableDriver(opts.driver);
    if (!workspace && opts.name && RESERVED_NAME.test(opts.name)) {
      throw new RealmError('INVALID_REQUEST', `sandbox names starting with ws- are kept for workspaces; pick another name`);
    }
    refuseUnguarded(this.config, opts.network);
    refuseUnservable(opts.driver, driver.capabilities, { network: opts.allow.length ? 'allowlist' : opts.network, volumes: opts.volumes.length });
    if (opts.name && (await this.store.getSandboxByName(opts.name))) {
      throw new RealmError('SANDBOX_NAME_TAKEN', `a sandbox named "${opts.name}" exists; pick another name or remove it first`);
    }
    this.imageRoots.resolve(opts.image); // refuse an unknown image before anything is made
    const mounts = await this.resolveVolumes(opts, workspace, owner);
    const now = Date.now();
    const rec: SandboxRecord = {
      id: this.capacity.reserve('sb'),
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
      driverState: {},
    };
    let warm: WarmSandbox | undefined;
    try {
      warm = ephemeral || mounts.length || Networks.filtered(rec) ? undefined : this.warmSandboxes.take(opts);
      if (warm) {
        this.capacity.release(rec.id);
        rec.id = warm.id;
        rec.uid = warm.uid;
        this.capacity.add(rec.id);
        rec.driverState = warm.state;
        await driver.update(rec.driverState, rec.limits);
      } else {
        rec.uid = this.hostIds.take(rec.id).uid;
        if (!ephemeral) await this.store.putSandbox(rec);
        rec.driverState = await driver.create(await this.specWithViews(rec, mounts, await this.startNetwork(rec)));
      }
      rec.status = 'running';
      if (!ephemeral) await this.store.putSandbox(rec);
      return rec;
    } catch (e) {
      // A warm sandbox taken for this create (its limits refused by the driver) is ours to remove.
      if (warm && rec.id === warm.id) await warm.discard().catch(() => undefined);
      else {
        // The driver removed what it made; the views (mounted before it ran) are ours.
        await this.views.detach(join(this.sandboxesDir, rec.id)).catch(() => undefined);
        this.hostIds.give(rec.id);
      }
      this.capacity.release(rec.id);
      await this.networks.stop(rec.id);
      if (!ephemeral) await this.store.deleteSandbox(rec.id);
      if (e instanceof RealmError) throw e;
      throw new RealmError('SANDBOX_START_FAILED', `the sandbox could not start: ${errorMessage(e)}`);
    }
  }

  /** Find a sandbox by id or name. */
  async getSandbox(idOrName: string): Promise<SandboxRecord> {
    const rec = (await this.store.getSandbox(idOrName)) ?? (await this.store.getSandboxByName(idOrName));
    if (!rec) throw new RealmError('SANDBOX_NOT_FOUND', `no sandbox "${idOrName}"; \`realm sandbox ls\` lists them`);
    return rec;
  }

  /** Record that a person or agent used the sandbox now. */
  async touchSandbox(idOrName: string): Promise<SandboxRecord> {
    const rec = await this.getSandbox(idOrName);
    rec.usedAt = Date.now();
    await this.store.putSandbox(rec);
    return rec;
  }

  async listSandboxes(filter: { labels?: Record<string, string>; status?: string } = {}): Promise<SandboxRecord[]> {
    return (await this.store.listSandboxes()).filter(
      (r) => (!filter.status || r.status === filter.status) && Object.entries(filter.labels ?? {}).every(([k, v]) => r.labels[k] === v),
    );
  }

  /** Run a command in a running sandbox, to completion. */
  async exec(idOrName: string, opts: ExecOptions, onData?: OutputListener, signal?: AbortSignal): Promise<ExecResult> {
    return this.execs.exec(await this.getSandbox(idOrName), opts, onData, signal);
  }

  /** Start an interactive command (WebSocket): stdin, output and resizes flow while it runs. */
  interactive(idOrName: string, opts: InteractiveOptions): Promise<DriverProcess> {
    return this.execs.interactive(idOrName, opts);
  }

  /** Start a command in the background; its output is kept for whoever connects later. */
  startProcess(idOrName: string, opts: StartProcessOptions): Promise<ProcessInfo> {
    return this.execs.startProcess(idOrName, opts);
  }

  async stopSandbox(idOrName: string, timeoutMs = 5000): Promise<SandboxRecord> {
    const rec = await this.getSandbox(idOrName);
    if (rec.status !== 'running') return rec;
    const driver = this.driver(rec.driver);
    refuseUnservable(rec.driver, driver.capabilities, { stopStart: true });
    await driver.stop(rec.driverState, timeoutMs);
    await this.views.detach(join(this.sandboxesDir, rec.id));
    await this.networks.stop(rec.id);
    rec.status = 'stopped';
    await this.store.putSandbox(rec);
    return rec;
  }

  async startSandbox(idOrName: string): Promise<SandboxRecord> {
    const rec = await this.getSandbox(idOrName);
    if (rec.status === 'running') return rec;
    const driver = await this.availableDriver(rec.driver);
    try {
      rec.driverState = await driver.start(await this.specWithViews(rec, await this.resolveVolumes(rec, rec.workspace), await this.startNetwork(rec)), rec.driverState);
    } catch (e) {
      await this.views.detach(join(this.sandboxesDir, rec.id)).catch(() => undefined);
      throw new RealmError('SANDBOX_START_FAILED', `sandbox ${rec.id} could not start: ${errorMessage(e)}`);
    }
    rec.status = 'running';
    await this.store.putSandbox(rec);
    return rec;
  }

  /** Set a new TTL (counted from now; 0 for none) or labels. */
  async updateSandbox(idOrName: string, changes: UpdateSandboxOptions): Promise<SandboxRecord> {
    const rec = await this.getSandbox(idOrName);
    if (changes.ttl !== undefined) rec.expiresAt = changes.ttl > 0 ? Date.now() + changes.ttl : null;
    if (changes.labels) rec.labels = changes.labels;
    await this.store.putSandbox(rec);
    return rec;
  }

  /** Send a signal to every process of a running sandbox but its init. */
  async signalSandbox(idOrName: string, signal: NodeJS.Signals): Promise<void> {
    const rec = await this.getSandbox(idOrName);
    if (rec.status !== 'running') throw new RealmError('SANDBOX_NOT_RUNNING', `sandbox ${rec.id} is ${rec.status}; nothing runs in it`);
    await this.driver(rec.driver).signal(rec.driverState, signal);
  }

  /** Destroy a sandbox: nothing of it is left but its volumes. */
  async destroySandbox(idOrName: string): Promise<void> {
    const rec = await this.getSandbox(idOrName);
    rec.status = 'destroying';
    await this.store.putSandbox(rec);
    await this.destroyState(rec);
    this.processes.forget(rec.id);
    await this.networks.stop(rec.id);
    this.networks.forget(rec.id);
    await this.store.deleteSandbox(rec.id);
    this.capacity.release(rec.id);
  }

  /** Remove what the driver made of a sandbox, its volume views first (the driver removes the state dir); its ids go back. */
  private async destroyState(rec: SandboxRecord): Promise<void> {
    await this.views.detach(join(this.sandboxesDir, rec.id));
    await this.driver(rec.driver).destroy(rec.driverState);
    this.hostIds.give(rec.id);
  }

  /** Number of live sandboxes, one-shot runs included. */
  get liveCount(): number {
    return this.capacity.size;
  }

  /** Re-count live sandboxes from the store (after recover). */
  async loadLive(): Promise<void> {
    for (const r of await this.store.listSandboxes()) {
      this.capacity.add(r.id);
      this.hostIds.adopt(r.id, r.uid);
    }
  }

  /** The language of this name or alias, or LANGUAGE_NOT_FOUND. */
  language(nameOrAlias: string): Language {
    return this.runs.language(nameOrAlias);
  }

  /** A one-shot run: language + files (+ stdin/args) → output and a verdict, in a throwaway sandbox. */
  run(opts: RunOptions, onData?: OutputListener, signal?: AbortSignal): Promise<RunResult> {
    return this.runs.run(opts, onData, signal);
  }
}
