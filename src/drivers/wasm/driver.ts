/**
 * The `wasm` driver: WASI preview 1 modules and preview 2 command components, run by Wasmtime in a
 * runner process (runner.py) inside a sandbox of the host driver (`namespace`: no network,
 * read-only root, seccomp, a cgroup and a host uid of its own), never in the daemon.
 *
 * Limits are the engine's and hold exactly: the memory cap is the store's (a `memory.grow` past it
 * fails; a module that declares more is refused), fuel is Wasmtime's deterministic instruction
 * budget (verdict `fuel-exhausted`), and the wall-time deadline is an epoch interruption (a loop
 * with no calls stops too) besides the engine's kill. The sandbox's cgroup is a backstop for the
 * runner itself.
 *
 * One-shot runs take a runner already started and waiting (a warm pool of prepared runs), and a
 * module compiled before is loaded from the compiled cache, so a small module's run costs an
 * instantiation. The driver is handed its host driver; it imports no other driver's folder.
 */
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
} from '../driver.js';
import { RealmError } from '../../util/errors.js';
import { CompiledCache } from './cache.js';
import { type Preopen, type RunnerProcess, runnerProcess } from './protocol.js';
import { type WasmRuntime, findRuntime, probeRuntime, runnerArgv } from './runtime.js';

export interface WasmDriverOptions {
  /** The driver whose sandboxes the runners live in (the node's `namespace` driver). */
  host: Driver;
  /** Where compiled modules are cached. */
  cacheDir: string;
  /** The Wasmtime Python package's directory (default: REALM_WASMTIME_DIR, else realm's set-up's). */
  wasmtimeDir?: string;
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

/** The runner's own memory besides the module's (Python, Wasmtime, the compiled code). */
const RUNNER_OVERHEAD = 192 * 1024 ** 2;
/**
 * A warm runner's cgroup, set before its run's cap is known: 4 GiB (wasm32's largest memory) and
 * the runner's own. The run's cap is the store's.
 */
const WARM_BACKSTOP = 4 * 1024 ** 3 + RUNNER_OVERHEAD;
/** Processes in a runner's cgroup: the runner, its deadline timer thread, Wasmtime's threads. */
const RUNNER_PIDS = 32;

export class WasmDriver implements Driver<WasmState> {
  readonly name = 'wasm' as const;
  private runtime: Promise<WasmRuntime> | undefined;
  /** The runtime once found (a create came after the fingerprint that found it). */
  private found: WasmRuntime | undefined;
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
    };
  }

  private rt(): Promise<WasmRuntime> {
    this.runtime ??= findRuntime(this.opts.wasmtimeDir).then((rt) => (this.found = rt));
    return this.runtime;
  }

  async fingerprint(): Promise<DriverInfo> {
    const host = await this.opts.host.fingerprint();
    const rt = await this.rt().catch((e: unknown) => e as Error);
    const base = { name: this.name, capabilities: this.capabilities };
    if (!host.available)
      return { ...base, available: false, reason: `its host driver ${host.name} cannot run: ${host.reason ?? ''}`, details: {} };
    if (rt instanceof Error) return { ...base, available: false, reason: rt.message, details: {} };
    const problem = await probeRuntime(rt);
    return {
      ...base,
      available: !problem,
      ...(problem ? { reason: problem } : {}),
      details: { engine: `wasmtime ${rt.version}`, runner: 'python3 in a namespace sandbox', wasmtimeDir: rt.dir },
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

  async create(spec: DriverSandboxSpec): Promise<WasmState> {
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
    const cap = spec.memoryBytes ?? state.memoryBytes;
    const rt = this.runtimeNow();
    const proc = runnerProcess(
      this.opts.host.exec(state.host, {
        argv: runnerArgv(rt),
        env: {},
        cwd: spec.cwd,
        stdin: true,
        pids: spec.pids ?? RUNNER_PIDS,
        cpus: spec.cpus,
        ...(spec.memoryBytes ? { memoryBytes: Math.min(state.memoryBytes, spec.memoryBytes + RUNNER_OVERHEAD) } : {}),
      }),
    );
    proc.send(this.job(spec, cap, [{ host: spec.cwd, guest: '.', readOnly: false }, ...state.dirs]), []);
    return proc;
  };

  /**
   * A runner started ahead in a sandbox of its own and waiting for its job (one-shot sandboxes of
   * the host take their program's stdin whole before it starts, so the runner lives in a
   * long-lived host sandbox, used for one run and destroyed after it).
   */
  async prepareRun(spec: DriverSandboxSpec): Promise<PreparedRun> {
    const rt = await this.rt();
    const cache = (this.cache ??= new CompiledCache(this.opts.cacheDir, rt.engineKey));
    const limits = { ...spec.limits, memoryBytes: WARM_BACKSTOP, pids: RUNNER_PIDS };
    const host = await this.opts.host.create({ ...spec, rootfs: 'host', network: 'none', limits });
    const destroy = (): Promise<void> => this.opts.host.destroy(host);
    let proc: RunnerProcess;
    try {
      proc = runnerProcess(
        this.opts.host.exec(host, {
          argv: runnerArgv(rt),
          env: {},
          cwd: HOME,
          stdin: true,
          pids: RUNNER_PIDS,
          cpus: spec.limits.cpus,
        }),
      );
    } catch (e) {
      await destroy();
      throw e;
    }
    try {
      await proc.ready;
    } catch (e) {
      await endRunner(proc).finally(destroy);
      throw new Error(`the wasm runner did not start: ${e instanceof Error ? e.message : String(e)}`);
    }
    let started = false;
    return {
      id: spec.id,
      alive: () => !started && !proc.exited(),
      discard: () => endRunner(proc).finally(destroy),
      start: (files, exec) => {
        started = true;
        const module = files.find((f) => f.path === exec.argv[0]);
        const bytes = module && (typeof module.content === 'string' ? Buffer.from(module.content) : module.content);
        const key = bytes ? cache.key(bytes, !!exec.fuel) : undefined;
        const compiled = key ? cache.get(key) : undefined;
        proc.send(
          this.job(exec, exec.memoryBytes ?? spec.limits.memoryBytes, [{ host: HOME, guest: '.', readOnly: false }]),
          files,
          compiled,
          key && !compiled ? (c) => cache.put(key, c) : undefined,
        );
        return { ...proc, release: () => proc.release().finally(destroy) };
      },
    };
  }

  private job(exec: ExecSpec, memoryBytes: number, dirs: Preopen[]) {
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

  private runtimeNow(): WasmRuntime {
    const rt = this.found;
    if (!rt) throw new RealmError('DRIVER_UNAVAILABLE', 'the wasm driver has not found Wasmtime yet (`realm doctor`)');
    return rt;
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

  /** The host driver sweeps the sandboxes (it sees every record); here only the cache is kept in bounds. */
  sweep(): Promise<string[]> {
    new CompiledCache(this.opts.cacheDir, '').prune();
    return Promise.resolve([]);
  }
}

/** Kill a runner and free its sandbox. */
async function endRunner(proc: RunnerProcess): Promise<void> {
  await proc.kill().catch(() => undefined);
  await proc.wait().catch(() => undefined);
  await proc.release();
}
