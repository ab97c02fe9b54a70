/**
 * Commands in running sandboxes: to completion (exec), interactive (WebSocket), in the
 * background (processes), and realm's file tool — all started the one same way, with the
 * sandbox's environment (base, proxy, its own, the command's).
 */
import type { Driver, DriverName, DriverProcess, ExecSpec } from '../drivers/driver.js';
import type { SandboxRecord } from '../store/store.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { Networks, proxyEnv } from '../net/manager.js';
import { refuseUnservable } from './capabilities.js';
import { collect } from './collect.js';
import { BASE_ENV } from './env.js';
import { recordExec, since } from '../metrics/record.js';
import { type ToolResult, runTool } from './files.js';
import type { ProcessInfo, Processes } from './processes.js';
import type { OutputListener } from './collect.js';
import type { OutputBudget } from './output.js';
import type { ExecOptions, ExecResult, InteractiveOptions, StartProcessOptions } from './schemas.js';
import type { EventBus } from './events.js';
import { traced } from '../telemetry/trace.js';

/** How an exec or run ended, for its span: figures and a verdict, never its output. */
export function resultAttrs(r: ExecResult): Record<string, string | number | undefined> {
  return {
    'realm.verdict': r.verdict,
    'process.exit.code': r.exitCode ?? undefined,
    'realm.signal': r.signal ?? undefined,
    'realm.cpu_ms': r.cpuMs,
    'realm.wall_ms': r.wallMs,
    'realm.memory_bytes': r.memoryBytes,
  };
}

export interface ExecHost {
  getSandbox(idOrName: string): Promise<SandboxRecord>;
  driver(name: DriverName): Driver;
  processes: Processes;
  /** The daemon-wide budget of output held in memory. */
  outputBudget: OutputBudget;
  events?: EventBus;
}

/** `interactive`: its stdin streams in while it runs (a capability of the driver's). */
type SpawnOptions = Omit<ExecSpec, 'argv' | 'env' | 'cwd'> & {
  env?: Record<string, string>;
  cwd?: string;
  interactive?: boolean;
};

export class SandboxExec {
  constructor(private readonly host: ExecHost) {}

  /** Start a command in a running sandbox: the one path every kind of exec takes. */
  private async spawn(
    target: string | SandboxRecord,
    command: string | string[],
    opts: SpawnOptions,
  ): Promise<{ rec: SandboxRecord; proc: DriverProcess; argv: string[] }> {
    const rec = typeof target === 'string' ? await this.host.getSandbox(target) : target;
    if (rec.status !== 'running') {
      throw new RealmError(
        'SANDBOX_NOT_RUNNING',
        `sandbox ${rec.id} is ${rec.status}; start it first (\`realm sandbox start ${rec.id}\`)`,
      );
    }
    // A wasm sandbox has no shell: a command string is the module and its arguments, split on spaces.
    const argv =
      typeof command !== 'string'
        ? command
        : rec.driver === 'wasm' && !opts.toolchain
          ? command.trim().split(/\s+/)
          : ['/bin/sh', '-c', command];
    const env = {
      ...BASE_ENV,
      ...(Networks.filtered(rec) ? proxyEnv(rec) : {}),
      ...(opts.tty ? { TERM: 'xterm-256color' } : {}),
      ...rec.env,
      ...opts.env,
    };
    const driver = this.host.driver(rec.driver);
    const { interactive, ...spec } = opts;
    refuseUnservable(rec.driver, driver.capabilities, {
      tty: spec.tty !== undefined,
      interactive,
      exec: spec,
      sandbox: rec.limits,
    });
    try {
      // A job attempt's sandbox (its label no caller may set) ends with the daemon: the attempt
      // may be placed again elsewhere once this daemon is gone, and must not run twice at once.
      const dieWithDaemon = rec.labels['realm.job-run'] !== undefined;
      const cwd = spec.cwd ?? '/home/user';
      return {
        rec,
        argv,
        proc: driver.exec(rec.driverState, { ...spec, argv, env, cwd, ...(dieWithDaemon ? { dieWithDaemon } : {}) }),
      };
    } catch (e) {
      // A limit the driver cannot give is the caller's to change, not a dead sandbox.
      if (e instanceof RealmError) throw e;
      throw new RealmError('SANDBOX_NOT_RUNNING', `sandbox ${rec.id} cannot run commands: ${errorMessage(e)}`);
    }
  }

  /**
   * Run a command in a running sandbox, to completion. `toolchain`: a step of realm's own (a
   * compile), run as a program of the driver's host sandbox (see ExecSpec).
   */
  async exec(
    rec: SandboxRecord,
    opts: ExecOptions,
    onData?: OutputListener,
    signal?: AbortSignal,
    toolchain = false,
  ): Promise<ExecResult> {
    // The command line is the caller's (it may hold secrets): the span names the sandbox only.
    return traced(
      toolchain ? 'sandbox.exec.toolchain' : 'sandbox.exec',
      { 'realm.driver': rec.driver, 'realm.sandbox.id': rec.ephemeral ? undefined : rec.id },
      async (span) => {
        const r = await this.execToEnd(rec, opts, onData, signal, toolchain);
        span.set(resultAttrs(r));
        return r;
      },
    );
  }

  private async execToEnd(
    rec: SandboxRecord,
    opts: ExecOptions,
    onData: OutputListener | undefined,
    signal: AbortSignal | undefined,
    toolchain: boolean,
  ): Promise<ExecResult> {
    const start = performance.now();
    const { proc } = await this.spawn(rec, opts.command, {
      env: opts.env,
      cwd: opts.cwd,
      memoryBytes: opts.memory,
      pids: opts.pids,
      cpus: opts.cpus,
      stdin: opts.stdin !== undefined,
      fuel: opts.fuel,
      ...(toolchain ? { toolchain } : {}),
    });
    const result = await collect(proc, {
      timeoutMs: opts.timeout,
      outputBytes: opts.output,
      stdin: opts.stdin,
      onData,
      signal,
      budget: this.host.outputBudget,
    });
    recordExec(rec.driver, result.verdict, since(start));
    if (result.verdict === 'oom' && !rec.ephemeral)
      this.host.events?.emit({
        type: 'sandbox.oom',
        owner: rec.owner,
        ids: { sandbox: rec.id },
        labels: rec.labels,
        data: { command: opts.command, memoryBytes: result.memoryBytes },
      });
    return result;
  }

  /** Run realm's file tool in a sandbox, its output as bytes. */
  async tool(idOrName: string, args: string[], stdin?: Buffer): Promise<ToolResult> {
    const { proc } = await this.spawn(idOrName, ['/.realm/fs', ...args], { stdin: stdin !== undefined, toolchain: true });
    return runTool(proc, stdin);
  }

  /** Start an interactive command: stdin, output and resizes flow while it runs. */
  async interactive(idOrName: string, opts: InteractiveOptions): Promise<DriverProcess> {
    return (
      await this.spawn(idOrName, opts.command, {
        env: opts.env,
        cwd: opts.cwd,
        stdin: true,
        interactive: true,
        ...(opts.tty ? { tty: { rows: opts.rows, cols: opts.cols } } : {}),
      })
    ).proc;
  }

  /** Start a command in the background; its output is kept for whoever connects later. */
  async startProcess(idOrName: string, opts: StartProcessOptions): Promise<ProcessInfo> {
    const tty = opts.tty ? { tty: { rows: opts.rows, cols: opts.cols } } : {};
    const { rec, proc, argv } = await this.spawn(idOrName, opts.command, {
      env: opts.env,
      cwd: opts.cwd,
      memoryBytes: opts.memory,
      pids: opts.pids,
      cpus: opts.cpus,
      stdin: true,
      interactive: true,
      ...tty,
    });
    const info = this.host.processes.add(rec.id, argv, proc, opts.tty);
    // Killed for memory in the background, with no exec to report a verdict: the event says so.
    proc.wait().then(
      (exit) => {
        if (exit.oomKilled && !rec.ephemeral)
          this.host.events?.emit({
            type: 'sandbox.oom',
            owner: rec.owner,
            ids: { sandbox: rec.id },
            labels: rec.labels,
            data: { command: opts.command, process: info.id, memoryBytes: exit.memoryBytes },
          });
      },
      () => undefined,
    );
    return info;
  }
}
