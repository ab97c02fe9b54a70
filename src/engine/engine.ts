/**
 * The engine: sandboxes, execs, one-shot runs, volumes, workspaces and images, over a store and a
 * set of drivers. No HTTP here; the daemon and the tests drive it directly. This file only makes
 * the parts and joins them: the sandbox lifecycle is sandboxes.ts, commands in sandboxes exec.ts,
 * one-shot runs runs.ts, warm sandboxes warm.ts, which root a sandbox gets and every change to
 * the image store images.ts, host uids host-ids.ts, volume views volume-views.ts.
 */
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Driver, DriverInfo, DriverName, DriverProcess, Mount } from '../drivers/driver.js';
import type { SandboxRecord, Store } from '../store/store.js';
import type { BuildOptions, BuildResult, ImageBuilder } from '../images/build/builder.js';
import type { ImageStore } from '../images/store.js';
import type { ImportOptions } from '../images/import.js';
import type { ImportedImage } from '../images/assemble.js';
import type { PullOptions } from '../images/pull.js';
import { Destinations, parseCidr } from '../net/addresses.js';
import { Networks } from '../net/manager.js';
import { type CommandRun, type OutputListener, type RunExtra, Runs } from './runs.js';
import { programAhead } from './run-plan.js';
import { type Language, Languages } from './languages.js';
import { SandboxFiles } from './files.js';
import { Volumes } from './volumes.js';
import { ImageRoots } from './images.js';
import { Capacity } from './capacity.js';
import { Workspaces } from './workspaces.js';
import { OutputBudget, outputBudgetBytes } from './output.js';
import { type ProcessInfo, Processes } from './processes.js';
import { type Recovered, recoverSandboxes } from './recover.js';
import type { EngineConfig } from './config.js';
import { SandboxExec } from './exec.js';
import { HostIds } from './host-ids.js';
import { VolumeViews } from './volume-views.js';
import { DriverSet } from './driver-set.js';
import { SandboxLifecycle } from './sandboxes.js';
import { EventBus } from './events.js';
import { type SandboxStats, sandboxStats } from './stats.js';
import { newId } from './ids.js';
import {
  type CreateSandboxInput,
  type CreateSandboxOptions,
  type ExecOptions,
  type ExecResult,
  type InteractiveOptions,
  type RunOptions,
  type RunResult,
  type StartProcessOptions,
  type UpdateSandboxOptions,
  createSandboxSchema,
  runSchema,
} from './schemas.js';
import { log } from '../logs/log.js';

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
  /** Each sandbox's and run's own host uid, from the operator's range. */
  readonly hostIds: HostIds;
  /** Create, start, stop, destroy: the sandbox lifecycle. */
  readonly sandboxes: SandboxLifecycle;
  /** What happened, in order, for `GET /v1/events` (events.ts). */
  readonly events = new EventBus();
  private readonly drivers: DriverSet;
  /** Which root each sandbox and run gets: the image store, builds, recipes (see images.ts). */
  private readonly imageRoots: ImageRoots;
  private readonly capacity: Capacity;
  private readonly runs: Runs;
  private readonly execs: SandboxExec;
  /** Volumes as each sandbox's own uid sees them (idmapped mounts in its state dir). */
  private readonly views: VolumeViews;
  private reaper: NodeJS.Timeout | undefined;

  constructor(
    readonly config: EngineConfig,
    private readonly store: Store,
    drivers: Map<DriverName, Driver>,
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
    this.drivers = new DriverSet(drivers, config.defaultDriver ?? 'namespace');
    this.views = new VolumeViews(this.hostIds.storage);
    this.imageRoots = new ImageRoots(config, {
      listSandboxes: () => this.store.listSandboxes(),
      dropWarm: async (match) => void (await Promise.all([this.sandboxes.warm.pool.drop(match), this.runs.pool.drop(match)])),
      runInImage: (image, argv, env) => this.runInImage(image, argv, env),
    });
    this.languages = new Languages(languageDirs, this.imageRoots.versionProbe());
    this.capacity = new Capacity(config.maxSandboxes);
    this.outputBudget = new OutputBudget(outputBudgetBytes(config.outputBudget));
    this.processes = new Processes(this.outputBudget);
    this.volumes = new Volumes(store, this.volumesDir, this.hostIds.storage);
    this.networks = new Networks(config.pinnedHosts ?? {}, new Destinations((config.allowPrivate ?? []).map(parseCidr)), {
      caDir: join(config.dataDir, 'proxy-ca'),
      upstreamCaFile: config.proxyUpstreamCa,
    });
    this.sandboxes = new SandboxLifecycle({
      config,
      store,
      drivers: this.drivers,
      capacity: this.capacity,
      hostIds: this.hostIds,
      views: this.views,
      volumes: this.volumes,
      networks: this.networks,
      imageRoots: this.imageRoots,
      processes: this.processes,
      sandboxesDir: this.sandboxesDir,
      events: this.events,
    });
    this.execs = new SandboxExec({
      getSandbox: (id) => this.sandboxes.get(id),
      driver: (n) => this.drivers.get(n),
      processes: this.processes,
      outputBudget: this.outputBudget,
      events: this.events,
    });
    this.files = new SandboxFiles((id, args, stdin) => this.execs.tool(id, args, stdin));
    this.workspaces = new Workspaces(this.volumes, this.sandboxes, this.hostIds.storage);
    this.runs = new Runs(
      {
        config,
        languages: this.languages,
        capacity: this.capacity,
        outputBudget: this.outputBudget,
        imageRoots: this.imageRoots,
        sandboxes: this.sandboxes,
        execs: this.execs,
        hostIds: this.hostIds,
      },
      config.warm,
      config.warmMax,
    );
  }

  get sandboxesDir(): string {
    return join(this.config.dataDir, 'sandboxes');
  }

  get volumesDir(): string {
    return join(this.config.dataDir, 'volumes');
  }

  /** The driver of creates and runs that name none. */
  get defaultDriver(): DriverName {
    return this.drivers.defaultName;
  }

  /** What each driver can do on this host. */
  fingerprint(): Promise<DriverInfo[]> {
    return this.drivers.fingerprint();
  }

  /** After a (re)start: re-attach, stop or clean up what the last run left (see recover.ts). */
  async recover(): Promise<Recovered> {
    const running = async (): Promise<SandboxRecord[]> =>
      (await this.store.listSandboxes()).filter((r) => r.status === 'running');
    const ids = (recs: SandboxRecord[]): Set<string> => new Set(recs.map((r) => r.id));
    // Volume views first: a state dir is removed only once nothing is mounted in it.
    await this.views.sweep(this.sandboxesDir, ids(await running()));
    const counts = await recoverSandboxes(
      this.store,
      this.drivers.byName,
      await this.drivers.availableNames(),
      this.sandboxesDir,
    );
    const live = await running();
    await this.views.sweep(this.sandboxesDir, ids(live));
    for (const name of await this.volumes.adopt(live))
      log.info(`volume ${name} now belongs to the storage uid ${this.hostIds.storage}`, { volume: name });
    await this.imageRoots.recover();
    // Running allow-list sandboxes get their proxies back (the socket's directory is bound in).
    for (const rec of live) await this.sandboxes.startNetwork(rec);
    return counts;
  }

  /** Re-count live sandboxes and their host ids from the store (after recover). */
  loadLive(): Promise<void> {
    return this.sandboxes.loadLive();
  }

  /** Destroy sandboxes whose TTL has passed, every `intervalMs`. */
  startReaper(intervalMs = 1000): void {
    this.reaper = setInterval(() => void this.sandboxes.reap(), intervalMs);
    this.reaper.unref();
  }

  /** Resolves when no one-shot clean-up and no warming is under way. */
  async settled(): Promise<void> {
    await this.capacity.settled();
    await Promise.all([this.runs.pool.settled(), this.sandboxes.warm.pool.settled()]);
  }

  /** Sandboxes ready in the warm pools: one-shot runs' and creates'. */
  warmReady(): { runs: number; sandboxes: number } {
    return { runs: this.runs.pool.items().length, sandboxes: this.sandboxes.warm.pool.items().length };
  }

  /** Ids of the sandboxes waiting in warm pools (they own cgroups and processes too). */
  warmIds(): string[] {
    return [...this.runs.pool.items(), ...this.sandboxes.warm.pool.items()].map((i) => i.id);
  }

  /** Start warming the default shapes: a `realm run` of an interpreted language, a plain create. */
  async warmDefaults(): Promise<void> {
    const driver = this.defaultDriver;
    if (!(await this.drivers.availableNames()).has(driver) || this.config.warm <= 0) return;
    // A python run's: with its interpreter started ahead, where the driver can.
    const run = runSchema.parse({ language: 'python', code: '' });
    const python = this.languages.get('python');
    const ahead = python?.image === 'host' ? programAhead(python, run) : undefined;
    this.runs.warmRun({
      driver,
      rootfs: 'host',
      network: run.network,
      disk: run.disk,
      ...(ahead ? { ahead: { program: ahead, memory: run.memory } } : {}),
    });
    this.sandboxes.warm.take({ ...createSandboxSchema.parse({}), driver });
  }

  /** Stop the reaper, discard warm pools and wait for clean-ups; live sandboxes keep running. */
  async close(): Promise<void> {
    if (this.reaper) clearInterval(this.reaper);
    await Promise.all([
      this.runs.pool.close(),
      this.sandboxes.warm.pool.close(),
      this.networks.closeAll(),
      this.imageRoots.close(),
    ]);
    await this.capacity.settled();
    await this.drivers.close();
  }

  /** Number of live sandboxes, one-shot runs included. */
  get liveCount(): number {
    return this.capacity.size;
  }

  // Sandboxes (sandboxes.ts).

  /**
   * Create and start a sandbox for `owner` (`uid:N`; it may mount only its own volumes).
   * `workspace` (Workspaces only) makes it that workspace's. `binds` (realm's own callers only,
   * never an API input: packages' mounts) are host directories owned by the storage uid, bound
   * like volumes through views of the sandbox's uid.
   */
  createSandbox(
    opts: CreateSandboxOptions,
    ephemeral = false,
    owner?: string,
    workspace?: SandboxRecord['workspace'],
    binds: Mount[] = [],
  ): Promise<SandboxRecord> {
    return this.sandboxes.create(opts, ephemeral, owner, workspace, binds);
  }

  /** Find a sandbox by id or name (SANDBOX_NOT_FOUND otherwise). */
  getSandbox(idOrName: string): Promise<SandboxRecord> {
    return this.sandboxes.get(idOrName);
  }

  /** Record that a person or agent used the sandbox now. */
  touchSandbox(idOrName: string): Promise<SandboxRecord> {
    return this.sandboxes.touch(idOrName);
  }

  listSandboxes(filter: { labels?: Record<string, string>; status?: string } = {}): Promise<SandboxRecord[]> {
    return this.sandboxes.list(filter);
  }

  stopSandbox(idOrName: string, timeoutMs = 5000): Promise<SandboxRecord> {
    return this.sandboxes.stop(idOrName, timeoutMs);
  }

  startSandbox(idOrName: string): Promise<SandboxRecord> {
    return this.sandboxes.start(idOrName);
  }

  /** Set a new TTL (counted from now; 0 for none) or labels. */
  updateSandbox(idOrName: string, changes: UpdateSandboxOptions): Promise<SandboxRecord> {
    return this.sandboxes.update(idOrName, changes);
  }

  /** Send a signal to every process of a running sandbox but its init. */
  signalSandbox(idOrName: string, signal: NodeJS.Signals): Promise<void> {
    return this.sandboxes.signal(idOrName, signal);
  }

  /** A running sandbox's live figures; `prev`: an earlier sample, for CPU % (stats.ts). */
  async sandboxStats(idOrName: string, prev?: SandboxStats): Promise<SandboxStats> {
    const rec = await this.sandboxes.get(idOrName);
    return sandboxStats(rec, this.drivers.get(rec.driver), prev);
  }

  /** Destroy a sandbox: nothing of it is left but its volumes. */
  destroySandbox(idOrName: string): Promise<void> {
    return this.sandboxes.destroy(idOrName);
  }

  // Commands in sandboxes (exec.ts).

  /** Run a command in a running sandbox, to completion. */
  async exec(idOrName: string, opts: ExecOptions, onData?: OutputListener, signal?: AbortSignal): Promise<ExecResult> {
    return this.execs.exec(await this.sandboxes.get(idOrName), opts, onData, signal);
  }

  /** Start an interactive command (WebSocket): stdin, output and resizes flow while it runs. */
  interactive(idOrName: string, opts: InteractiveOptions): Promise<DriverProcess> {
    return this.execs.interactive(idOrName, opts);
  }

  /** Start a command in the background; its output is kept for whoever connects later. */
  startProcess(idOrName: string, opts: StartProcessOptions): Promise<ProcessInfo> {
    return this.execs.startProcess(idOrName, opts);
  }

  /**
   * A sandbox of realm's own for a long-lived helper (the gateway's app runners): ephemeral (not
   * stored, not listed, swept after a crash), counted against capacity, owned by `owner`; `drop`
   * destroys it.
   */
  async ownSandbox(
    input: CreateSandboxInput,
    owner?: string,
  ): Promise<{ record: SandboxRecord; driver: Driver; drop: () => void }> {
    const record = await this.sandboxes.create(createSandboxSchema.parse(input), true, owner);
    return {
      record,
      driver: this.sandboxes.drivers.get(record.driver),
      drop: () => this.capacity.cleanUp(record.id, () => this.sandboxes.destroyState(record)),
    };
  }

  /** Run one command in a throwaway sandbox of `image` (small limits, no network). */
  private async runInImage(image: string, argv: string[], env: Record<string, string>): Promise<string> {
    const sandbox = await this.sandboxes.create(createSandboxSchema.parse({ image, memory: '512m', pids: 128, ttl: 0 }), true);
    try {
      const r = await this.execs.exec(sandbox, { command: argv, env, cwd: '/home/user', timeout: 20_000, output: 64 * 1024 });
      return r.stdout + r.stderr;
    } finally {
      this.capacity.cleanUp(sandbox.id, () => this.sandboxes.destroyState(sandbox));
    }
  }

  // One-shot runs (runs.ts).

  /** The language of this name or alias, or LANGUAGE_NOT_FOUND. */
  language(nameOrAlias: string): Language {
    return this.runs.language(nameOrAlias);
  }

  /** A one-shot run: language + files (+ stdin/args) → output and a verdict, in a throwaway sandbox. */
  async run(opts: RunOptions, onData?: OutputListener, signal?: AbortSignal, extra?: RunExtra): Promise<RunResult> {
    const r = await this.runs.run(opts, onData, signal, extra);
    if (extra?.internal) return r;
    // After the answer (its listeners log it: ~0.2 ms), before the next request is read.
    const data = { language: r.language, driver: opts.driver ?? this.defaultDriver, verdict: r.verdict, wallMs: r.wallMs };
    setImmediate(() => this.events.emit({ type: 'run.finished', owner: extra?.owner, ids: { run: newId('run') }, data }));
    return r;
  }

  /** A command in a one-shot sandbox of an image, with a long-lived sandbox's limits (see CommandRun). */
  command(c: CommandRun, onData?: OutputListener, signal?: AbortSignal): Promise<ExecResult> {
    return this.runs.command(c, onData, signal);
  }

  // Images (images.ts): every change to the store goes through these (one seam for a cluster);
  // after each, warm sandboxes of a root an image name no longer names are discarded.

  /** The content-addressed image store under <data-dir>/images, to read. */
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

  buildImage(name: string, recipe: unknown, o: BuildOptions = {}): Promise<BuildResult> {
    return this.imageRoots.build(name, recipe, o);
  }

  importImage(input: NodeJS.ReadableStream, o: ImportOptions = {}): Promise<ImportedImage[]> {
    return this.imageRoots.import(input, o);
  }

  pullImage(ref: string, o: PullOptions = {}): Promise<ImportedImage> {
    return this.imageRoots.pull(ref, o);
  }

  removeImage(ref: string): Promise<{ removed: string[] }> {
    return this.imageRoots.remove(ref);
  }

  pruneImages(): Promise<{ blobs: number; unpacked: number; bytes: number }> {
    return this.imageRoots.prune();
  }

  exportImage(ref: string): Promise<Readable> {
    return this.imageRoots.export(ref);
  }

  /** Where an image this node lacks comes from (a cluster's other nodes): it imports it here, or says it could not. */
  fetchImagesFrom(elsewhere: (image: string) => Promise<boolean>): void {
    this.imageRoots.elsewhere = elsewhere;
  }
}
