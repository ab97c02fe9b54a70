/**
 * The driver interface: one isolation technology behind a small set of verbs, in the spirit of
 * Nomad's task drivers (fingerprint, start, exec, signal, stop, destroy, recover). Drivers know
 * nothing of the engine, the store or HTTP; the engine persists each sandbox's `DriverState`.
 */
import type { Readable, Writable } from 'node:stream';

/** The isolation drivers this version has ('wasm' joins when its driver exists). */
export type DriverName = 'namespace' | 'gvisor' | 'microvm';

export interface DriverInfo {
  name: DriverName;
  available: boolean;
  /** Why the driver cannot run here, in words that say what to install or change. */
  reason?: string | undefined;
  /** What the probe found, for `realm doctor`. */
  details: Record<string, string | number | boolean>;
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
}

export interface ExitInfo {
  exitCode: number | null;
  signal: string | null;
  oomKilled: boolean;
  cpuMs: number;
  memoryBytes: number;
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

export interface PreparedRun {
  readonly id: string;
  /** False once the waiting sandbox died (it is then only good for `discard`). */
  alive(): boolean;
  start(files: FileToWrite[], exec: ExecSpec): DriverProcess;
  discard(): Promise<void>;
}

export type RecoverResult = 'running' | 'stopped';

export interface Driver {
  readonly name: DriverName;
  fingerprint(): Promise<DriverInfo>;
  /** Build the sandbox and start it; resolves when it is ready for exec. */
  create(spec: DriverSandboxSpec): Promise<DriverState>;
  /** Start a stopped sandbox again, keeping its writable layer. */
  start(spec: DriverSandboxSpec, state: DriverState): Promise<DriverState>;
  exec(state: DriverState, spec: ExecSpec): DriverProcess;
  /**
   * Build a one-shot sandbox and leave it waiting (so runs can be served from a warm pool):
   * `start` puts `files` in its home directory (a tmpfs of `spec.limits.diskBytes`) and runs one
   * command, with which the sandbox lives and dies; `release()` of that process, or `discard()`
   * of an unused one, removes every trace.
   */
  prepareRun(spec: DriverSandboxSpec): Promise<PreparedRun>;
  /** Change a running sandbox's memory, pids and cpu limits. */
  update(state: DriverState, limits: Pick<SandboxLimits, 'memoryBytes' | 'pids' | 'cpus'>): Promise<void>;
  /** Put files into the sandbox's home directory (never following links planted inside). */
  writeFiles(state: DriverState, files: FileToWrite[]): Promise<void>;
  /** Signal every process of the sandbox. */
  signal(state: DriverState, sig: NodeJS.Signals): Promise<void>;
  /** SIGTERM, then SIGKILL after `timeoutMs`; the writable layer stays. */
  stop(state: DriverState, timeoutMs: number): Promise<void>;
  /** Remove every trace: processes, mounts, cgroups, files of the sandbox. Idempotent. */
  destroy(state: DriverState): Promise<void>;
  /** After a daemon restart: is this sandbox still alive? A half-alive one is stopped. */
  recover(state: DriverState): Promise<RecoverResult>;
  /** Let go of what the driver holds for the daemon (helper processes); sandboxes keep running. */
  close?(): Promise<void>;
  /** Remove whatever this driver left behind (processes, cgroups, mounts, state under `stateRoot`) that no known sandbox owns. */
  sweep(known: Set<string>, stateRoot: string): Promise<string[]>;
}
