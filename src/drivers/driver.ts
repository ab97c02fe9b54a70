/**
 * The driver interface: one isolation technology behind a small set of verbs, in the spirit of
 * Nomad's task drivers (fingerprint, start, exec, signal, stop, destroy, recover). Drivers know
 * nothing of the engine, the store or HTTP; the engine persists each sandbox's `DriverState`.
 */
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';

/** The isolation drivers this version has. */
export type DriverName = 'namespace' | 'gvisor' | 'microvm' | 'wasm';

/** A sandbox's network: loopback only, `all` (NAT out, slirp4netns), or an allow-list through the daemon's proxy. */
export type NetworkCapability = 'none' | 'all' | 'allowlist';

/**
 * What a driver can be asked for, as it really is on this host. The engine refuses a request
 * outside these before anything is made (`DRIVER_UNAVAILABLE`, naming the capability); the
 * conformance suite skips a case by them.
 */
export interface DriverCapabilities {
  /** The network modes a sandbox may have here (`all` needs slirp4netns on the host). */
  networkModes: NetworkCapability[];
  /** Volumes one sandbox may mount; null: no limit of the driver's own. */
  maxVolumes: number | null;
  /** An exec may have a memory limit tighter than its sandbox's. */
  perExecMemoryLimit: boolean;
  /** An exec may have a cpu limit tighter than its sandbox's. */
  perExecCpuLimit: boolean;
  /** An exec may have a process limit of its own. */
  perExecPidsLimit: boolean;
  /** Execs on a pseudo-terminal (a shell attached over WebSocket, a terminal background process). */
  tty: boolean;
  /** Execs whose stdin streams in while they run (interactive execs, background processes). */
  interactive: boolean;
  /** A sandbox can be stopped and started again, keeping its files. */
  stopStart: boolean;
  /**
   * An exec runs a native program of the sandbox's file system (a shell, /usr/bin's tools, a
   * language's interpreter); without it (wasm) an exec runs a WebAssembly module only.
   */
  nativePrograms: boolean;
}

/** What a driver's probe found on this host (its fingerprint without the capabilities). */
export interface DriverProbe {
  name: DriverName;
  available: boolean;
  /** Why the driver cannot run here, in words that say what to install or change. */
  reason?: string | undefined;
  /** What the probe found, for `realm doctor`. */
  details: Record<string, string | number | boolean>;
}

export interface DriverInfo extends DriverProbe {
  capabilities: DriverCapabilities;
}

export interface Mount {
  /** Absolute host path. */
  source: string;
  /** Absolute path inside the sandbox. */
  target: string;
  readOnly: boolean;
}

export interface SandboxLimits {
  memoryBytes: number;
  pids: number;
  cpus: number;
  diskBytes: number;
  tmpBytes: number;
}

/**
 * A running sandbox's new limits. `cpuShare`: its CPU weight under contention relative to its
 * `cpus` (1, the default: in proportion), for drivers whose sandboxes are cgroups of their own.
 */
export type LimitsUpdate = Pick<SandboxLimits, 'memoryBytes' | 'pids' | 'cpus'> & { cpuShare?: number };

export type NetworkMode = 'none' | 'all';

/** What a driver needs to build a sandbox. Everything is already validated and resolved. */
export interface DriverSandboxSpec {
  id: string;
  /** Host directory holding the image's root filesystem, or 'host' for the host's read-only root. */
  rootfs: string;
  limits: SandboxLimits;
  network: NetworkMode;
  mounts: Mount[];
  env: Record<string, string>;
  hostname: string;
  /** Directory the driver owns for this sandbox's host-side state (writable layer, logs). */
  stateDir: string;
  /** Host uid (and gid) this sandbox's programs run as outside their user namespace: its own, never 0. */
  uid: number;
  /** Host uid (and gid) this sandbox's VMM drops to (microvm): its own, never 0 nor `uid`. */
  vmmUid: number;
  /** An allow-list sandbox: the host directory holding its proxy's socket, and the port the
   * forwarder inside listens on (the sandbox's own loopback; its only way out). */
  proxy?: { dir: string; port: number } | undefined;
}

/** Opaque to the engine; persisted so `recover` can find the sandbox after a restart. */
export type DriverState = Record<string, unknown>;

export interface ExecSpec {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** Per-exec limits, within the sandbox's. */
  memoryBytes?: number | undefined;
  pids?: number | undefined;
  cpus?: number | undefined;
  stdin: boolean;
  /** Run on a new pseudo-terminal of this size (stdout and stderr are then one stream). */
  tty?: { rows: number; cols: number } | undefined;
  /** wasm: the instruction budget (Wasmtime fuel); none: unlimited. */
  fuel?: number | undefined;
  /**
   * A step of realm's own (a compile) run as a program of the driver's host sandbox rather than
   * as the driver's kind of program (wasm: a native compiler, not a module). Never from a request.
   */
  toolchain?: boolean | undefined;
  /**
   * End the whole sandbox if the daemon dies while this runs (even by kill -9): for work that
   * may be run again elsewhere once the daemon is gone (a job's attempt). Never from a request.
   */
  dieWithDaemon?: boolean | undefined;
}

export interface ExitInfo {
  exitCode: number | null;
  signal: string | null;
  oomKilled: boolean;
  cpuMs: number;
  memoryBytes: number;
  /** An end the driver saw itself (wasm: the fuel ran out, the deadline passed). */
  reason?: 'fuel-exhausted' | 'timeout' | undefined;
}

/** A running exec. Output streams end when the process and anything holding its pipes are gone. */
export interface DriverProcess {
  stdin: Writable | null;
  stdout: Readable;
  stderr: Readable;
  /** Send a signal to the exec's main process. */
  signal(sig: NodeJS.Signals): void;
  /** A terminal exec's new window size. */
  resize?(rows: number, cols: number): void;
  /** Kill the whole process tree of this exec, daemonized and setsid'd children included. */
  kill(): Promise<void>;
  /** Resolves once the main process exited; figures are read from the exec's cgroup. */
  wait(): Promise<ExitInfo>;
  /**
   * Where the driver can tell: the exec's memory limit, the bytes it has refaulted so far (pages
   * evicted while in use and read back in) and its major faults, which the engine watches for thrashing.
   */
  memoryStall?(): { limitBytes: number; bytes: number; majorFaults: number };
  /** After `wait`: free what the process held (a one-shot sandbox: all of it). */
  release(): Promise<void>;
}

export interface FileToWrite {
  /** Relative to the sandbox user's home directory; no `..`. */
  path: string;
  content: string | Buffer;
  mode?: number;
}

/** A one-shot sandbox's program, started before its run comes (see `prepareRun`). */
export interface ProgramAhead {
  argv: string[];
  env: Record<string, string>;
  /**
   * An interpreter's main file (a name in the home directory), which it opens once it has
   * started: the program then starts ahead and waits on that file, its run's request comes
   * whole (files, stdin) and the file is put in place last. Without it the program must do
   * nothing of the run's before reading its stdin, which is then a stream (a pipe) rather than
   * a file.
   */
  lateFile?: string;
}

export interface PreparedRun {
  readonly id: string;
  /** False once the waiting sandbox died (it is then only good for `discard`). */
  alive(): boolean;
  /**
   * Start the program. `input`: its whole stdin, known as it starts (`exec.stdin` is then false
   * and the process has no stdin stream); only a prepared run that `takesInput` is given one
   * (see `startWithInput`).
   */
  start(files: FileToWrite[], exec: ExecSpec, input?: Buffer): DriverProcess;
  /** `start` takes a program's whole stdin with it (it goes in the program's request). */
  readonly takesInput?: boolean;
  discard(): Promise<void>;
}

/**
 * Start a prepared run's program with its whole stdin: given to `start` where the run takes it
 * (no stream to set up and end before the program's request goes), else written to the
 * program's stdin stream and ended at once. The process returned has no stdin stream.
 */
export function startWithInput(run: PreparedRun, files: FileToWrite[], exec: ExecSpec, input: Buffer): DriverProcess {
  if (run.takesInput) return run.start(files, { ...exec, stdin: false }, input);
  const proc = run.start(files, { ...exec, stdin: true });
  proc.stdin?.on('error', () => undefined); // the program may end without reading it
  proc.stdin?.end(input);
  return { ...proc, stdin: null };
}

export type RecoverResult = 'running' | 'stopped';

/** What a running sandbox uses now (its cgroup, its writable layer, its network namespace). */
export interface SandboxUsage {
  /** CPU time used since it started, in ns. */
  cpuNs: number;
  memoryBytes: number;
  /** null: the host's cgroups keep no peak. */
  memoryPeakBytes: number | null;
  pids: number;
  /** Bytes used in its writable layer; null: the driver cannot tell. */
  diskBytes: number | null;
  /** Bytes through its network interfaces but loopback; null: the driver cannot tell. */
  netRxBytes: number | null;
  netTxBytes: number | null;
}

/**
 * One driver, over its own state type `S`: what `create` and `start` return is what every other
 * verb is given back. The engine sees drivers as `Driver` (state opaque, `DriverState`): `opaque`
 * makes one, decoding each state it is handed with the driver's `decodeState`.
 *
 * The state-taking verbs are properties, not methods, so TypeScript checks their parameters
 * strictly: a `Driver<NsState>` is not a `Driver` without `opaque`.
 */
export interface Driver<S extends DriverState = DriverState> {
  readonly name: DriverName;
  /** What it can be asked for here (also in its fingerprint). */
  readonly capabilities: DriverCapabilities;
  fingerprint(): Promise<DriverInfo>;
  /**
   * Check that a state read back (from the store, or handed over by the engine) is this driver's,
   * and give it its type: the same object, so what the verbs change in it is what the engine saves.
   * Throws when it is not.
   */
  decodeState(raw: DriverState): S;
  /** Build the sandbox and start it; resolves when it is ready for exec. */
  create(spec: DriverSandboxSpec): Promise<S>;
  /** Start a stopped sandbox again, keeping its writable layer. */
  start: (spec: DriverSandboxSpec, state: S) => Promise<S>;
  exec: (state: S, spec: ExecSpec) => DriverProcess;
  /**
   * Build a one-shot sandbox and leave it waiting (so runs can be served from a warm pool):
   * `start` puts `files` in its home directory (a tmpfs of `spec.limits.diskBytes`) and runs one
   * command, with which the sandbox lives and dies; `release()` of that process, or `discard()`
   * of an unused one, removes every trace.
   *
   * `ahead`: the command `start` will be given, to be started now, while the sandbox waits, with
   * the run's files and stdin streamed to it when the run starts (its limits set before any of
   * them). A driver that cannot start a program ahead starts it with the run, as without it.
   */
  prepareRun(spec: DriverSandboxSpec, ahead?: ProgramAhead): Promise<PreparedRun>;
  /** Change a running sandbox's memory, pids and cpu limits (and its CPU share, where cgroups give it). */
  update: (state: S, limits: LimitsUpdate) => Promise<void>;
  /** Put files into the sandbox's home directory (never following links planted inside). */
  writeFiles: (state: S, files: FileToWrite[]) => Promise<void>;
  /** Signal every process of the sandbox. */
  signal: (state: S, sig: NodeJS.Signals) => Promise<void>;
  /** SIGTERM, then SIGKILL after `timeoutMs`; the writable layer stays. */
  stop: (state: S, timeoutMs: number) => Promise<void>;
  /** Remove every trace: processes, mounts, cgroups, files of the sandbox. Idempotent. */
  destroy: (state: S) => Promise<void>;
  /** After a daemon restart: is this sandbox still alive? A half-alive one is stopped. */
  recover: (state: S) => Promise<RecoverResult>;
  /**
   * A connection to 127.0.0.1:`port` on the running sandbox's own loopback (preview URLs), so a
   * server bound to localhost inside is reached. A driver without it cannot serve preview URLs.
   */
  dialPort?: (state: S, port: number) => Promise<Socket>;
  /** What a running sandbox uses now; absent: this driver cannot tell (the engine says so). */
  usage?: (state: S) => Promise<SandboxUsage>;
  /** Let go of what the driver holds for the daemon (helper processes, agent connections); sandboxes keep running. */
  close?(): Promise<void>;
  /** Remove whatever this driver left behind (processes, cgroups, mounts, state under `stateRoot`) that no known sandbox owns. */
  sweep(known: Set<string>, stateRoot: string): Promise<string[]>;
}

/**
 * The driver as the engine holds it: a state is decoded once — where it is read back from the
 * store (the store's `decodeState` hook is this `decodeState`), or when `create`/`start` make it —
 * and remembered, so the verbs take it typed without decoding it again. A state never seen decoded
 * goes through `decodeState` on its first use, so a record of another driver (or a damaged one) is
 * refused rather than misread (a rejection where the verb returns a promise).
 */
export function opaque<S extends DriverState>(d: Driver<S>): Driver {
  const close = d.close?.bind(d);
  const dial = d.dialPort;
  const usage = d.usage?.bind(d);
  // The raw object to its typed self (decodeState gives back the same object).
  const typed = new WeakMap<DriverState, S>();
  const remember = (s: S): S => (typed.set(s, s), s);
  const decode = (raw: DriverState): S => typed.get(raw) ?? remember(d.decodeState(raw));
  return {
    name: d.name,
    get capabilities() {
      return d.capabilities;
    },
    fingerprint: () => d.fingerprint(),
    decodeState: decode,
    create: async (spec) => remember(await d.create(spec)),
    start: async (spec, state) => remember(await d.start(spec, decode(state))),
    exec: (state, spec) => d.exec(decode(state), spec),
    prepareRun: (spec, ahead) => d.prepareRun(spec, ahead),
    update: async (state, limits) => d.update(decode(state), limits),
    writeFiles: async (state, files) => d.writeFiles(decode(state), files),
    signal: async (state, sig) => d.signal(decode(state), sig),
    stop: async (state, timeoutMs) => d.stop(decode(state), timeoutMs),
    destroy: async (state) => d.destroy(decode(state)),
    recover: async (state) => d.recover(decode(state)),
    ...(close ? { close } : {}),
    ...(dial ? { dialPort: async (state: DriverState, port: number) => dial.call(d, decode(state), port) } : {}),
    ...(usage ? { usage: async (state: DriverState) => usage(decode(state)) } : {}),
    sweep: (known, stateRoot) => d.sweep(known, stateRoot),
  };
}
