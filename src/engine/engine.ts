/**
 * The engine: sandboxes, execs, one-shot runs and volumes, over a store and a set of drivers.
 * No HTTP here; the daemon and the tests drive it directly.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Driver, DriverInfo, DriverName, DriverProcess, DriverSandboxSpec, ExecSpec, DriverState, Mount } from '../drivers/driver.js';
import { type OutputListener, Runs } from './runs.js';
import { WarmPool } from './pool.js';
import type { SandboxRecord, Store } from '../store/store.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { collect } from './collect.js';
import { newId } from './ids.js';
import { type Language, Languages, imageVersionProbe } from './languages.js';
import { type BuildOptions, type BuildResult, ImageBuilder, imageHash } from '../images/build/builder.js';
import { findRecipe } from '../images/build/recipe.js';
import { IMAGE_RECIPES_DIR } from '../util/paths.js';
import { SandboxFiles, type ToolResult, runTool } from './files.js';
import { Volumes } from './volumes.js';
import { resolveImage } from './images.js';
import { ImageStore } from '../images/store.js';
import { Capacity } from './capacity.js';
import { Workspaces } from './workspaces.js';
import { Networks, PROXY_PORT, proxyEnv } from '../net/manager.js';
import { type ProcessInfo, Processes } from './processes.js';
import { type Recovered, recoverSandboxes } from './recover.js';
import { BASE_ENV } from './env.js';

import { type InteractiveOptions, type StartProcessOptions, type UpdateSandboxOptions, type CreateSandboxOptions, type ExecOptions, type ExecResult, type RunOptions, type RunResult, createSandboxSchema, runSchema } from './schemas.js';

export interface EngineConfig {
  dataDir: string;
  /** Host uid (and gid) sandboxes run as outside their user namespace. */
  sandboxUid: number;
  /** At most this many live sandboxes (one-shot runs included). */
  maxSandboxes: number;
  /** Extra language directories searched after realm's own. */
  languageDirs: string[];
  /** Sandboxes kept ready per shape for creates and for runs (0: build every one on demand). */
  warm: number;
  /** Most sandboxes a busy shape keeps ready: demand raises a shape from `warm` up to this (default 4 × warm). */
  warmMax?: number | undefined;
  /** At most this many one-shot runs at once; more are refused (429), never queued without bound. */
  maxRuns?: number;
  /** Host names the network proxies resolve to these addresses (operator pins). */
  pinnedHosts?: Record<string, string>;
  /** A PEM file of CAs that real hosts may be signed by, besides the usual ones (for HTTPS injection). */
  proxyUpstreamCa?: string | undefined;
  /** Most bytes one image layer may have (compressed or unpacked); default 8 GiB. */
  maxLayerBytes?: number;
  /** The driver of creates and runs that name none (default namespace). */
  defaultDriver?: DriverName;
  /** Where built image tarballs are cached (default `<data-dir>/cache/images`). */
  imageCacheDir?: string;
}

/** A persistent sandbox built ahead of demand. */
interface WarmSandbox {
  id: string;
  state: DriverState;
  alive(): boolean;
  discard(): Promise<void>;
}

export type { OutputListener } from './runs.js';



export class Engine {
  readonly languages: Languages;
  /** The files API over realm-fs in each sandbox. */
  readonly files: SandboxFiles;
  /** Named volumes, and which sandboxes mount them. */
  readonly volumes: Volumes;
  /** Background processes, kept attached for reconnects. */
  readonly processes = new Processes();
  /** Allow-list sandboxes' proxies and what they refused. */
  readonly networks: Networks;
  /** Workspaces: private clones of git repositories in long-lived sandboxes. */
  readonly workspaces: Workspaces;
  /** The content-addressed image store under <data-dir>/images (imports, pulls, exports). */
  readonly images: ImageStore;
  /** The root each sandbox and one-shot run was built on (a name may since point elsewhere). */
  private readonly roots = new Map<string, string>();
  private readonly capacity: Capacity;
  private reaper: NodeJS.Timeout | undefined;
  private fingerprints: Promise<DriverInfo[]> | undefined;
  private readonly runs: Runs;
  private readonly sandboxPool: WarmPool<WarmSandbox>;
  /** Builds images from recipes (`realm image build`). */
  readonly builder: ImageBuilder;

  constructor(
    readonly config: EngineConfig,
    private readonly store: Store,
    private readonly drivers: Map<DriverName, Driver>,
    languageDirs: string[],
  ) {
    this.languages = new Languages(languageDirs, imageVersionProbe({
      resolve: (image) => this.image(image),
      hash: (image) => imageHash(config.dataDir, image),
      run: async (image, argv, env) => {
        const r = await this.runInImage(image, argv, env);
        return r.stdout + r.stderr;
      },
    }));
    this.builder = new ImageBuilder({ dataDir: config.dataDir, ...(config.imageCacheDir ? { cacheDir: config.imageCacheDir } : {}) });
    this.capacity = new Capacity(config.maxSandboxes);
    this.files = new SandboxFiles((id, args, stdin) => this.tool(id, args, stdin));
    this.volumes = new Volumes(store, this.volumesDir, config.sandboxUid);
    this.networks = new Networks(config.sandboxUid, config.pinnedHosts ?? {}, { caDir: join(config.dataDir, 'proxy-ca'), upstreamCaFile: config.proxyUpstreamCa });
    this.workspaces = new Workspaces({
      volumesDir: this.volumesDir,
      sandboxesDir: this.sandboxesDir,
      sandboxUid: config.sandboxUid,
      touch: (id) => this.touchSandbox(id),
      getSandbox: (id) => this.getSandbox(id),
      listSandboxes: (f) => this.listSandboxes(f),
      createSandbox: (o) => this.createSandbox(o),
      startSandbox: (id) => this.startSandbox(id),
      destroySandbox: (id) => this.destroySandbox(id),
      removeVolume: (n) => this.volumes.remove(n),
    });
    this.runs = new Runs({
      config,
      defaultDriver: this.defaultDriver,
      sandboxesDir: this.sandboxesDir,
      languages: this.languages,
      capacity: this.capacity,
      roots: this.roots,
      driver: (n) => this.driver(n),
      availableDriver: (n) => this.availableDriver(n),
      languageImage: (l) => this.languageImage(l),
      createSandbox: (o, e) => this.createSandbox(o, e),
      execIn: (r, o, d, sig) => this.execIn(r, o, d, sig),
    }, config.warm, config.warmMax);
    this.sandboxPool = new WarmPool<WarmSandbox>(config.warm, undefined, config.warmMax);
    for (const d of [config.dataDir, this.sandboxesDir, this.volumesDir]) {
      mkdirSync(d, { recursive: true, mode: 0o711 });
      chmodSync(d, 0o711);
    }
    this.images = new ImageStore({
      dir: join(config.dataDir, 'images'),
      ...(config.maxLayerBytes ? { maxLayerBytes: config.maxLayerBytes } : {}),
      sandboxImages: async () => (await this.store.listSandboxes()).map((r) => r.image),
      rootsInUse: async () => {
        const recs = new Map((await this.store.listSandboxes()).map((r) => [r.id, r]));
        const out: string[] = [];
        for (const [id, root] of this.roots) {
          const rec = recs.get(id);
          if (id.startsWith('run:') || (rec && rec.status !== 'stopped')) out.push(root);
          else if (!rec) this.roots.delete(id);
        }
        return out;
      },
      // Warm sandboxes of an image about to be deleted go first.
      releaseRootfs: async (dir) => {
        const match = (key: string): boolean => key.includes(JSON.stringify(dir));
        await Promise.all([this.sandboxPool.drop(match), this.runs.pool.drop(match)]);
      },
    });
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
    const counts = await recoverSandboxes(this.store, this.drivers, available, this.sandboxesDir);
    this.builder.recover();
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
    await Promise.all([this.runs.pool.settled(), this.sandboxPool.settled()]);
  }

  /** Ids of the sandboxes waiting in warm pools (they own cgroups and processes too). */
  warmIds(): string[] {
    return [...this.runs.pool.items(), ...this.sandboxPool.items()].map((i) => i.id);
  }

  /** Start warming the default shapes: a `realm run` of an interpreted language, a plain create. */
  async warmDefaults(): Promise<void> {
    const driver = this.defaultDriver;
    const info = (await this.fingerprint()).find((f) => f.name === driver);
    if (!info?.available || this.config.warm <= 0) return;
    const run = runSchema.parse({ language: 'python', code: '' });
    this.runs.warmRun({ driver, rootfs: 'host', network: run.network, disk: run.disk });
    this.warmSandbox({ ...createSandboxSchema.parse({}), driver });
  }

  /** Stop the reaper, discard warm pools and wait for clean-ups; live sandboxes keep running. */
  async close(): Promise<void> {
    if (this.reaper) clearInterval(this.reaper);
    await Promise.all([this.runs.pool.close(), this.sandboxPool.close(), this.networks.closeAll(), this.builder.close()]);
    await this.capacity.settled();
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

  /** Resolve `image` for sandbox or run `id`, remembering the root it was built on. */
  private rootOf(id: string, image: string): string {
    const root = this.image(image);
    this.roots.set(id, root);
    return root;
  }

  private image(image: string): string {
    try {
      return resolveImage(image, this.config.dataDir, this.config.sandboxUid, this.images);
    } catch (e) {
      if (e instanceof RealmError && e.code === 'IMAGE_NOT_FOUND' && !existsSync(join(this.config.dataDir, 'images', image)) && findRecipe(image, this.recipeDirs)) {
        throw new RealmError('IMAGE_NOT_FOUND', `image "${image}" is not built on this node; build it once with: realm image build ${image}`);
      }
      throw e;
    }
  }

  /**
   * Build image `name` (see ImageBuilder.build). When it replaced an installed tree, warm
   * sandboxes of the old one are discarded: they would see its files vanish.
   */
  async buildImage(name: string, recipe: unknown, o: BuildOptions = {}): Promise<BuildResult> {
    const r = await this.builder.build(name, recipe, o);
    if (r.cache !== 'installed') {
      const marks = [JSON.stringify(r.rootfs), JSON.stringify(name)];
      const match = (key: string): boolean => marks.some((m) => key.includes(m));
      await Promise.all([this.runs.pool.drop(match), this.sandboxPool.drop(match)]);
    }
    return r;
  }

  /** Directories holding named image recipes: the operator's first, then realm's. */
  get recipeDirs(): string[] {
    return [join(this.config.dataDir, 'recipes'), IMAGE_RECIPES_DIR];
  }

  /** The image a language runs in; a missing one is IMAGE_NOT_FOUND with the command that builds it. */
  private languageImage(lang: Language): string {
    try {
      return this.image(lang.image);
    } catch (e) {
      if (!(e instanceof RealmError) || e.code !== 'IMAGE_NOT_FOUND' || !findRecipe(lang.image, this.recipeDirs)) throw e;
      // Not built on demand: a build downloads hundreds of megabytes and takes minutes, far
      // beyond a run's deadline; the operator builds it once.
      throw new RealmError('IMAGE_NOT_FOUND', `language "${lang.name}" runs in image "${lang.image}", which is not built on this node; build it once with: realm image build ${lang.image}`);
    }
  }

  /** Run one command in a throwaway sandbox of `image` (small limits, no network). */
  private async runInImage(image: string, argv: string[], env: Record<string, string>): Promise<ExecResult> {
    const sandbox = await this.createSandbox(createSandboxSchema.parse({ image, memory: '512m', pids: 128, ttl: 0 }), true);
    const driver = this.driver(sandbox.driver);
    try {
      return await this.execIn(sandbox, { command: argv, env, cwd: '/home/user', timeout: 20_000, output: 64 * 1024 });
    } finally {
      this.capacity.cleanUp(sandbox.id, () => driver.destroy(sandbox.driverState));
    }
  }

  private resolveVolumes(opts: Pick<CreateSandboxOptions, 'volumes'>): Promise<Mount[]> {
    return this.volumes.mounts(opts.volumes);
  }

  private spec(rec: SandboxRecord, mounts: Mount[], proxyDir?: string): DriverSandboxSpec {
    return {
      ...(proxyDir ? { proxy: { dir: proxyDir, port: PROXY_PORT } } : {}),
      id: rec.id,
      rootfs: this.rootOf(rec.id, rec.image),
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
    const dir = join(this.sandboxesDir, rec.id, 'net');
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    await this.networks.start(rec, dir);
    return dir;
  }

  /** Take a ready sandbox of this shape (or none), and keep the shape warm. */
  private warmSandbox(opts: CreateSandboxOptions & { driver: DriverName }): WarmSandbox | undefined {
    // The resolved root is part of the shape: a name moved to a new image gets new sandboxes.
    const key = JSON.stringify(['sb', opts.driver, opts.image, this.image(opts.image), opts.network, opts.disk, opts.tmp]);
    return this.sandboxPool.take(key, async () => {
      const driver = await this.availableDriver(opts.driver);
      const id = newId('sb');
      const rec = { id, image: opts.image, network: opts.network, env: {}, labels: {}, limits: { memoryBytes: opts.memory, pids: opts.pids, cpus: opts.cpus, diskBytes: opts.disk, tmpBytes: opts.tmp } } as SandboxRecord;
      const state = await driver.create(this.spec(rec, []));
      return { id, state, alive: () => true, discard: () => driver.destroy(state) };
    });
  }

  /** Create and start a sandbox. */
  async createSandbox(given: CreateSandboxOptions, ephemeral = false): Promise<SandboxRecord> {
    const opts = { ...given, driver: given.driver ?? this.defaultDriver };
    const driver = await this.availableDriver(opts.driver);
    if (opts.name && (await this.store.getSandboxByName(opts.name))) {
      throw new RealmError('SANDBOX_NAME_TAKEN', `a sandbox named "${opts.name}" exists; pick another name or remove it first`);
    }
    this.image(opts.image); // refuse an unknown image before anything is made
    const mounts = await this.resolveVolumes(opts);
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
      driverState: {},
    };
    let warm: WarmSandbox | undefined;
    try {
      warm = ephemeral || mounts.length || Networks.filtered(rec) ? undefined : this.warmSandbox(opts);
      if (warm) {
        this.capacity.release(rec.id);
        rec.id = warm.id;
        this.capacity.add(rec.id);
        rec.driverState = warm.state;
        await driver.update(rec.driverState, rec.limits);
      } else {
        if (!ephemeral) await this.store.putSandbox(rec);
        rec.driverState = await driver.create(this.spec(rec, mounts, await this.startNetwork(rec)));
      }
      rec.status = 'running';
      if (!ephemeral) await this.store.putSandbox(rec);
      return rec;
    } catch (e) {
      // A warm sandbox taken for this create (its limits refused by the driver) is ours to remove.
      if (warm && rec.id === warm.id) await warm.discard().catch(() => undefined);
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

  /** Start a command in a running sandbox: the one path every kind of exec takes. */
  private async spawnIn(target: string | SandboxRecord, command: string | string[], opts: Omit<ExecSpec, 'argv' | 'env' | 'cwd'> & { env?: Record<string, string>; cwd?: string }): Promise<{ rec: SandboxRecord; proc: DriverProcess; argv: string[] }> {
    const rec = typeof target === 'string' ? await this.getSandbox(target) : target;
    if (rec.status !== 'running') {
      throw new RealmError('SANDBOX_NOT_RUNNING', `sandbox ${rec.id} is ${rec.status}; start it first (\`realm sandbox start ${rec.id}\`)`);
    }
    const argv = typeof command === 'string' ? ['/bin/sh', '-c', command] : command;
    const env = { ...BASE_ENV, ...(Networks.filtered(rec) ? proxyEnv(rec) : {}), ...(opts.tty ? { TERM: 'xterm-256color' } : {}), ...rec.env, ...opts.env };
    try {
      return { rec, argv, proc: this.driver(rec.driver).exec(rec.driverState, { ...opts, argv, env, cwd: opts.cwd ?? '/home/user' }) };
    } catch (e) {
      // A limit the driver cannot give is the caller's to change, not a dead sandbox.
      if (e instanceof RealmError) throw e;
      throw new RealmError('SANDBOX_NOT_RUNNING', `sandbox ${rec.id} cannot run commands: ${errorMessage(e)}`);
    }
  }

  /** Run a command in a running sandbox, to completion. */
  async exec(idOrName: string, opts: ExecOptions, onData?: OutputListener, signal?: AbortSignal): Promise<ExecResult> {
    return this.execIn(await this.getSandbox(idOrName), opts, onData, signal);
  }

  private async execIn(rec: SandboxRecord, opts: ExecOptions, onData?: OutputListener, signal?: AbortSignal): Promise<ExecResult> {
    const { proc } = await this.spawnIn(rec, opts.command, { env: opts.env, cwd: opts.cwd, memoryBytes: opts.memory, pids: opts.pids, cpus: opts.cpus, stdin: opts.stdin !== undefined });
    return collect(proc, { timeoutMs: opts.timeout, outputBytes: opts.output, stdin: opts.stdin, onData, signal });
  }

  /** Run realm's file tool in a sandbox, its output as bytes. */
  private async tool(idOrName: string, args: string[], stdin?: Buffer): Promise<ToolResult> {
    const { proc } = await this.spawnIn(idOrName, ['/.realm/fs', ...args], { stdin: stdin !== undefined });
    return runTool(proc, stdin);
  }

  /** Start an interactive command (WebSocket): stdin, output and resizes flow while it runs. */
  async interactive(idOrName: string, opts: InteractiveOptions): Promise<DriverProcess> {
    return (await this.spawnIn(idOrName, opts.command, { env: opts.env, cwd: opts.cwd, stdin: true, ...(opts.tty ? { tty: { rows: opts.rows, cols: opts.cols } } : {}) })).proc;
  }

  /** Start a command in the background; its output is kept for whoever connects later. */
  async startProcess(idOrName: string, opts: StartProcessOptions): Promise<ProcessInfo> {
    const tty = opts.tty ? { tty: { rows: opts.rows, cols: opts.cols } } : {};
    const { rec, proc, argv } = await this.spawnIn(idOrName, opts.command, { env: opts.env, cwd: opts.cwd, memoryBytes: opts.memory, pids: opts.pids, cpus: opts.cpus, stdin: true, ...tty });
    return this.processes.add(rec.id, argv, proc, opts.tty);
  }

  async stopSandbox(idOrName: string, timeoutMs = 5000): Promise<SandboxRecord> {
    const rec = await this.getSandbox(idOrName);
    if (rec.status !== 'running') return rec;
    await this.driver(rec.driver).stop(rec.driverState, timeoutMs);
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
      rec.driverState = await driver.start(this.spec(rec, await this.resolveVolumes(rec), await this.startNetwork(rec)), rec.driverState);
    } catch (e) {
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
    await this.driver(rec.driver).destroy(rec.driverState);
    this.processes.forget(rec.id);
    await this.networks.stop(rec.id);
    this.networks.forget(rec.id);
    await this.store.deleteSandbox(rec.id);
    this.capacity.release(rec.id);
  }

  /** Number of live sandboxes, one-shot runs included. */
  get liveCount(): number {
    return this.capacity.size;
  }

  /** Re-count live sandboxes from the store (after recover). */
  async loadLive(): Promise<void> {
    for (const r of await this.store.listSandboxes()) this.capacity.add(r.id);
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
