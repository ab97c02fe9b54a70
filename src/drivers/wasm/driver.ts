/**
 * The `wasm` driver: WASI preview 1 modules and preview 2 command components, run by Wasmtime in a
 * runner process inside a sandbox of the host driver (`namespace`: no network, read-only root,
 * seccomp, a cgroup and a host uid of its own), never in the daemon. realm-wasm (C, on Wasmtime's
 * C API) runs modules; a component is handed to runner.py (Wasmtime's Python bindings).
 *
 * Limits are the engine's and hold exactly: the memory cap is the store's (a `memory.grow` past it
 * fails; a module that declares more is refused), fuel is Wasmtime's deterministic instruction
 * budget (verdict `fuel-exhausted`), and the wall-time deadline is the engine's kill (and, when a
 * job names one, an epoch interruption that stops even a loop with no calls). The sandbox's cgroup
 * is a backstop for the runner itself.
 *
 * One-shot runs take a sandbox of the host's warm pool (realm's fast builder) and start the runner
 * in it; a module compiled before is loaded from the compiled cache. The runner is started with
 * the sandbox, ahead of its run (loading Wasmtime and making an engine take ~7 ms), so a small
 * module's run costs its job's trip and an instantiation. The driver is handed its host driver;
 * it imports no other driver's folder.
 */
import { traced } from '../../telemetry/trace.js';
import { posix } from 'node:path';
import type {
  Driver,
  DriverCapabilities,
  DriverInfo,
  DriverProcess,
  DriverSandboxSpec,
  DriverState,
  ExecSpec,
  FileToWrite,
  PreparedRun,
  RecoverResult,
  SandboxLimits,
  SandboxUsage,
} from '../driver.js';
import { RealmError } from '../../util/errors.js';
import { CompiledCache } from './cache.js';
import { type Job, type Preopen, runnerProcess } from './protocol.js';
import { type WasmRuntime, findRuntime, probeRuntime, runnerArgv } from './runtime.js';

export interface WasmDriverOptions {
  /** The driver whose sandboxes the runners live in (the node's `namespace` driver). */
  host: Driver;
  /** Where compiled modules are cached. */
  cacheDir: string;
  /** The Wasmtime Python package's directory (default: REALM_WASMTIME_DIR, else realm's set-up's). */
  wasmtimeDir?: string;
  /** The installed runners' directory (default: REALM_WASM_RUNNER_DIR, else realm's set-up's). */
  runnerDir?: string;
}

export interface WasmState extends DriverState {
  wasm: 1;
  /** The host sandbox's own state. */
  host: DriverState;
  /** The sandbox's memory limit: an exec's cap when it names none. */
  memoryBytes: number;
  /** What a module may open besides the working directory: the sandbox's volumes. */
  dirs: Preopen[];
}

/** The sandbox user's home: a one-shot run's files and working directory. */
const HOME = '/home/user';

/**
 * An exec's working directory, which the module gets as a preopen: the home or a directory in it,
 * or one inside a volume (read-only with it). Anywhere else of the host sandbox's file system
 * (`/`, `/proc`, `/etc`) would hand the module what WASI keeps from it: `/proc/self/mem` of its
 * own runner, the runner's environment, the host's /usr.
 */
function workDir(state: WasmState, cwd: string): Preopen {
  const dir = posix.normalize(cwd).replace(/(.)\/+$/, '$1');
  const inside = (root: string): boolean => dir === root || dir.startsWith(root.endsWith('/') ? root : `${root}/`);
  // The innermost volume first: a volume may be mounted inside the home.
  const vol = [...state.dirs].sort((a, b) => b.guest.length - a.guest.length).find((d) => inside(d.guest));
  if (vol) return { host: dir, guest: '.', readOnly: vol.readOnly };
  if (inside(HOME)) return { host: dir, guest: '.', readOnly: false };
  const roots = [HOME, ...state.dirs.map((d) => d.guest)].join(', ');
  throw new RealmError(
    'INVALID_REQUEST',
    `a wasm exec's working directory is what its module may open, so it must be inside ${roots}; ${cwd} is not`,
  );
}

/** The runner's own memory besides the module's (Wasmtime, the compiled code; Python for components). */
const RUNNER_OVERHEAD = 192 * 1024 ** 2;
/** Processes in a runner's cgroup: the runner, its deadline timer thread, Wasmtime's threads. */
const RUNNER_PIDS = 32;

export class WasmDriver implements Driver<WasmState> {
  readonly name = 'wasm' as const;
  private cache: CompiledCache | undefined;

  constructor(private readonly opts: WasmDriverOptions) {}

  get capabilities(): DriverCapabilities {
    const host = this.opts.host.capabilities;
    return {
      networkModes: ['none'],
      maxVolumes: host.maxVolumes,
      perExecMemoryLimit: true,
      perExecCpuLimit: host.perExecCpuLimit,
      perExecPidsLimit: host.perExecPidsLimit,
      tty: false,
      interactive: true,
      stopStart: host.stopStart,
      nativePrograms: false,
    };
  }

  /** The runtime, looked up each time (cheap; set-up may install it while the daemon runs). */
  private rt(): WasmRuntime {
    try {
      return findRuntime(this.opts.wasmtimeDir, this.opts.runnerDir);
    } catch (e) {
      throw new RealmError('DRIVER_UNAVAILABLE', `the wasm driver cannot run: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  async fingerprint(): Promise<DriverInfo> {
    const host = await this.opts.host.fingerprint();
    let rt: WasmRuntime | Error;
    try {
      rt = findRuntime(this.opts.wasmtimeDir, this.opts.runnerDir);
    } catch (e) {
      rt = e as Error;
    }
    const base = { name: this.name, capabilities: this.capabilities };
    if (!host.available)
      return { ...base, available: false, reason: `its host driver ${host.name} cannot run: ${host.reason ?? ''}`, details: {} };
    if (rt instanceof Error) return { ...base, available: false, reason: rt.message, details: {} };
    const problem = await probeRuntime(rt);
    return {
      ...base,
      available: !problem,
      ...(problem ? { reason: problem } : {}),
      details: { engine: `wasmtime ${rt.version}`, runner: `${rt.runner} in a namespace sandbox`, wasmtimeDir: rt.dir },
    };
  }

  decodeState(raw: DriverState): WasmState {
    if (
      raw.wasm !== 1 ||
      typeof raw.host !== 'object' ||
      raw.host === null ||
      typeof raw.memoryBytes !== 'number' ||
      !Array.isArray(raw.dirs)
    ) {
      throw new Error("not a wasm sandbox's state");
    }
    this.opts.host.decodeState(raw.host as DriverState);
    return raw as WasmState;
  }

  create(spec: DriverSandboxSpec): Promise<WasmState> {
    return traced('wasm.create', { 'realm.sandbox.id': spec.id, 'realm.network': spec.network }, () => this.createSandbox(spec));
  }

  private async createSandbox(spec: DriverSandboxSpec): Promise<WasmState> {
    if (spec.rootfs !== 'host') {
      throw new RealmError(
        'INVALID_REQUEST',
        'a wasm sandbox runs modules, not an image: leave `image` out (its files and volumes are what modules see)',
      );
    }
    const host = await this.opts.host.create(spec);
    return {
      wasm: 1,
      host,
      memoryBytes: spec.limits.memoryBytes,
      dirs: spec.mounts.map((m) => ({ host: m.target, guest: m.target, readOnly: m.readOnly })),
    };
  }

  start = async (spec: DriverSandboxSpec, state: WasmState): Promise<WasmState> => {
    state.host = await this.opts.host.start(spec, state.host);
    return state;
  };

  exec = (state: WasmState, spec: ExecSpec): DriverProcess => {
    // realm's own compile steps (c-wasm) are native programs of the host sandbox.
    if (spec.toolchain) return this.opts.host.exec(state.host, { ...spec, toolchain: undefined });
    if (spec.tty) throw new RealmError('DRIVER_UNAVAILABLE', 'the wasm driver has no terminals (tty)');
    const cwd = workDir(state, spec.cwd);
    const proc = runnerProcess(
      this.opts.host.exec(state.host, {
        argv: runnerArgv(this.rt()),
        env: {},
        cwd: cwd.host,
        stdin: true,
        pids: spec.pids ?? RUNNER_PIDS,
        cpus: spec.cpus,
        dieWithDaemon: spec.dieWithDaemon,
        ...(spec.memoryBytes ? { memoryBytes: Math.min(state.memoryBytes, spec.memoryBytes + RUNNER_OVERHEAD) } : {}),
      }),
    );
    proc.send(this.job({ ...spec, cwd: cwd.host }, spec.memoryBytes ?? state.memoryBytes, [cwd, ...state.dirs]));
    return proc;
  };

  /**
   * A sandbox of the host's (realm's fast one-shot builder, from the warm pool) whose program is
   * the runner, started ahead: while the sandbox waits it loads Wasmtime and makes its engine,
   * then blocks reading its job, which (with the module and the run's files) reaches it only
   * when the run starts, after the run's limits are set. Its cgroup gets the run's cap and the
   * runner's own; the cap itself is the store's.
   */
  async prepareRun(spec: DriverSandboxSpec): Promise<PreparedRun> {
    const rt = this.rt();
    const cache = (this.cache ??= new CompiledCache(this.opts.cacheDir, rt.engineKey));
    const runner = { argv: runnerArgv(rt), env: {} };
    const prepared = await this.opts.host.prepareRun({ ...spec, rootfs: 'host', network: 'none' }, runner);
    return {
      id: prepared.id,
      alive: () => prepared.alive(),
      discard: () => prepared.discard(),
      start: (files, exec) => {
        const memoryBytes = exec.memoryBytes ?? spec.limits.memoryBytes;
        const proc = runnerProcess(
          prepared.start(files, {
            ...runner,
            cwd: HOME,
            stdin: true,
            memoryBytes: memoryBytes + RUNNER_OVERHEAD,
            pids: RUNNER_PIDS,
            cpus: exec.cpus,
          }),
        );
        const module = files.find((f) => f.path === exec.argv[0]);
        const bytes = module && (typeof module.content === 'string' ? Buffer.from(module.content) : module.content);
        const key = bytes ? cache.key(bytes, !!exec.fuel) : undefined;
        const compiled = key ? cache.get(key) : undefined;
        proc.send(
          { ...this.job(exec, memoryBytes, [{ host: HOME, guest: '.', readOnly: false }]), compiled },
          key && !compiled ? (c) => cache.put(key, c) : undefined,
        );
        return proc;
      },
    };
  }

  private job(exec: ExecSpec, memoryBytes: number, dirs: Preopen[]): Job {
    return {
      argv: exec.argv,
      env: exec.env,
      cwd: exec.cwd,
      memoryBytes,
      fuel: exec.fuel,
      stdin: exec.stdin,
      // The working directory as `.` and by its own path: C's relative and absolute paths both work.
      dirs: dirs.flatMap((d) => (d.guest === '.' ? [d, { ...d, guest: d.host }] : [d])),
    };
  }

  update = (state: WasmState, limits: Pick<SandboxLimits, 'memoryBytes' | 'pids' | 'cpus'>): Promise<void> => {
    state.memoryBytes = limits.memoryBytes;
    return this.opts.host.update(state.host, limits);
  };

  writeFiles = (state: WasmState, files: FileToWrite[]): Promise<void> => this.opts.host.writeFiles(state.host, files);
  signal = (state: WasmState, sig: NodeJS.Signals): Promise<void> => this.opts.host.signal(state.host, sig);
  stop = (state: WasmState, timeoutMs: number): Promise<void> => this.opts.host.stop(state.host, timeoutMs);
  destroy = (state: WasmState): Promise<void> => this.opts.host.destroy(state.host);
  recover = (state: WasmState): Promise<RecoverResult> => this.opts.host.recover(state.host);
  /** The host sandbox's figures (its runners and their modules). */
  usage = (state: WasmState): Promise<SandboxUsage> => {
    const host = this.opts.host.usage;
    if (!host)
      throw new RealmError(
        'STATS_UNAVAILABLE',
        `the wasm driver's host driver (${this.opts.host.name}) cannot tell a sandbox's usage`,
      );
    return host(state.host);
  };

  /** The host driver sweeps the sandboxes (it sees every record); here only the cache is kept in bounds. */
  sweep(): Promise<string[]> {
    new CompiledCache(this.opts.cacheDir, '').prune();
    return Promise.resolve([]);
  }
}
