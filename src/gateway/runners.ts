/**
 * Each app's runners: realm-wasm in serve mode (the module compiled and linked once; each request a
 * fresh store and instance, with the app's limits), `replicas` per app in one namespace
 * sandbox of the app's own (realm's ephemeral kind: no network, read-only root, its cgroup and
 * uid) — never in the daemon. Requests go to a free runner, wait in line otherwise; a runner that
 * died is replaced at the next request; `close` destroys the sandbox.
 */
import type { DriverProcess } from '../drivers/driver.js';
import { FRAME_RESULT, FRAME_STDERR, FRAME_STDOUT, FrameReader, type RunnerResult, rec } from '../drivers/wasm/protocol.js';
import { findRuntime, runnerArgv } from '../drivers/wasm/runtime.js';
import type { Engine } from '../engine/engine.js';
import type { Verdict } from '../engine/schemas.js';
import type { AppRecord } from '../store/store.js';
import { DEFAULT_REPLICAS } from './apps.js';
import { RealmError, errorMessage } from '../util/errors.js';

const MiB = 1024 ** 2;
/** A runner's own memory besides the module's (Wasmtime, the compiled code, a request's child). */
const RUNNER_OVERHEAD = 192 * MiB;
/** Requests waiting for a runner of one app before more are refused. */
const MAX_WAITING = 512;
/** After its deadline, how long a request may take before its runner is killed (the runner's own alarm comes first). */
const GRACE_MS = 5_000;
/** The most a request's app may write: past it, its runner is killed. */
export const MAX_OUTPUT = 64 * MiB;

export interface AppAnswer {
  verdict: Verdict;
  /** The trap or error message, the program's last stderr. */
  message: string;
  exitCode: number | null;
}

/**
 * Where a request's stdout goes, with backpressure: when `write` says false, the runner's output
 * stops being read (the app blocks in its write) until the sink calls what `onDrain` was given.
 */
export interface OutputSink {
  write(chunk: Buffer): boolean;
  /** Call `resume` once the client has taken what was written, or is gone. */
  onDrain(resume: () => void): void;
}

interface Pending {
  sink: OutputSink;
  bytes: number;
  resolve: (a: AppAnswer) => void;
  stderr: string;
}

function answerOf(r: RunnerResult, stderr: string): AppAnswer {
  const message = r.message ?? stderr.trim().split('\n').slice(-2).join(' ');
  if (r.status === 'exit') return { verdict: r.code ? 'runtime-error' : 'ok', message, exitCode: r.code ?? 0 };
  if (r.reason === 'fuel') return { verdict: 'fuel-exhausted', message, exitCode: null };
  if (r.reason === 'deadline') return { verdict: 'timeout', message, exitCode: null };
  return { verdict: 'runtime-error', message, exitCode: null };
}

/** One realm-wasm in serve mode. */
class Runner {
  busy = false;
  dead = false;
  private current: Pending | undefined;
  /** The request whose sink paused the runner's output, if one did. */
  private pausedBy: Pending | undefined;

  constructor(
    private readonly proc: DriverProcess,
    private readonly timeoutMs: number,
    onDeath: () => void,
  ) {
    const reader = new FrameReader((kind, payload) => {
      const cur = this.current;
      if (!cur) return;
      if (kind === FRAME_STDOUT) {
        cur.bytes += payload.length;
        if (cur.bytes > MAX_OUTPUT) this.kill();
        else if (!cur.sink.write(Buffer.from(payload)) && !this.pausedBy) {
          this.pausedBy = cur;
          proc.stdout.pause();
          cur.sink.onDrain(() => this.resume(cur));
        }
      } else if (kind === FRAME_STDERR) cur.stderr = (cur.stderr + payload.toString('utf8')).slice(-4000);
      else if (kind === FRAME_RESULT) {
        let r: RunnerResult;
        try {
          r = JSON.parse(payload.toString('utf8')) as RunnerResult;
        } catch {
          r = { status: 'error', message: 'the runner sent a result that is not JSON' };
        }
        this.current = undefined;
        this.resume(cur);
        cur.resolve(answerOf(r, cur.stderr));
      }
    });
    proc.stdout.on('data', (c: Buffer) => reader.push(c));
    proc.stderr.resume();
    proc.stdin?.on('error', () => undefined);
    void proc.wait().then(() => {
      this.dead = true;
      const cur = this.current;
      this.current = undefined;
      cur?.resolve({ verdict: 'runtime-error', message: "the app's runner ended", exitCode: null });
      onDeath();
    });
  }

  /** Read the runner's output again, if `cur` had paused it. */
  private resume(cur: Pending): void {
    if (this.pausedBy !== cur) return;
    this.pausedBy = undefined;
    this.proc.stdout.resume();
  }

  send(job: Buffer): void {
    this.proc.stdin?.write(job);
  }

  /** Run one request; the answer comes when its result frame does (or the runner dies). */
  request(env: Record<string, string>, body: Buffer, sink: OutputSink): Promise<AppAnswer> {
    this.busy = true;
    return new Promise<AppAnswer>((resolve) => {
      const guard = setTimeout(() => this.kill(), this.timeoutMs + GRACE_MS);
      this.current = {
        sink,
        bytes: 0,
        stderr: '',
        resolve: (a) => {
          clearTimeout(guard);
          this.busy = false;
          resolve(a);
        },
      };
      this.send(Buffer.concat([...Object.entries(env).map(([k, v]) => rec('E', `${k}=${v}`)), rec('B', body), rec('X', '')]));
    });
  }

  /** End the runner (its death answers the request it had). */
  kill(): void {
    this.proc.kill().catch(() => undefined);
  }
}

/** The runners of one app (one version of it: its module and limits). */
export class AppPool {
  private sandbox: Promise<Awaited<ReturnType<Engine['ownSandbox']>>> | undefined;
  private readonly runners: Runner[] = [];
  private readonly waiting: (() => void)[] = [];
  private closed = false;
  /** When a request last came (Date.now()): idle pools are closed (see startGateway). */
  lastUsed = Date.now();
  /** Runners at most: requests of the app run this many at once. */
  private readonly replicas: number;

  constructor(
    private readonly engine: Engine,
    readonly app: AppRecord,
    private readonly module: () => Buffer,
  ) {
    this.replicas = app.replicas ?? DEFAULT_REPLICAS;
  }

  private box(): Promise<Awaited<ReturnType<Engine['ownSandbox']>>> {
    this.sandbox ??= this.engine
      .ownSandbox(
        {
          driver: 'namespace',
          network: 'none',
          memory: this.replicas * (Math.max(this.app.memoryBytes, 16 * MiB) + RUNNER_OVERHEAD),
          pids: this.replicas * 64,
          // One core at most per app: an app that loops cannot starve the others (or the daemon).
          cpus: 1,
          disk: '64m',
          tmp: '16m',
          ttl: 0,
        },
        this.app.owner,
      )
      .catch((e: unknown) => {
        this.sandbox = undefined;
        throw e;
      });
    return this.sandbox;
  }

  /** A started runner (compiling the module as its first job). */
  private async start(): Promise<Runner> {
    const { record, driver } = await this.box();
    if (this.closed) throw new RealmError('APP_NOT_FOUND', `app ${this.app.name} was removed`);
    let rt;
    try {
      rt = findRuntime();
    } catch (e) {
      throw new RealmError('DRIVER_UNAVAILABLE', `the wasm runner cannot start: ${errorMessage(e)}`);
    }
    const proc = driver.exec(record.driverState, {
      argv: runnerArgv(rt),
      env: {},
      cwd: '/',
      stdin: true,
      pids: 32,
      memoryBytes: Math.max(this.app.memoryBytes, 16 * MiB) + RUNNER_OVERHEAD,
    });
    const runner = new Runner(proc, this.app.timeoutMs, () => {
      const i = this.runners.indexOf(runner);
      if (i >= 0) this.runners.splice(i, 1);
      this.wake();
    });
    runner.send(
      Buffer.concat([
        rec('A', 'main.wasm'),
        rec('W', this.module()),
        rec('M', String(this.app.memoryBytes)),
        ...(this.app.fuel ? [rec('F', String(this.app.fuel))] : []),
        rec('T', String(this.app.timeoutMs)),
        rec('V', ''),
        rec('X', ''),
      ]),
    );
    return runner;
  }

  private wake(): void {
    this.waiting.shift()?.();
  }

  /** A free runner: an idle one, a new one while there are fewer than the app's replicas, else the next to be freed. */
  private async take(): Promise<Runner> {
    for (;;) {
      if (this.closed) throw new RealmError('APP_NOT_FOUND', `app ${this.app.name} was removed`);
      const idle = this.runners.find((r) => !r.busy && !r.dead);
      if (idle) {
        idle.busy = true;
        return idle;
      }
      if (this.runners.length < this.replicas) {
        const placeholder = { busy: true, dead: false } as Runner;
        this.runners.push(placeholder);
        try {
          const r = await this.start();
          this.runners[this.runners.indexOf(placeholder)] = r;
          r.busy = true;
          return r;
        } catch (e) {
          this.runners.splice(this.runners.indexOf(placeholder), 1);
          this.wake();
          throw e;
        }
      }
      if (this.waiting.length >= MAX_WAITING)
        throw new RealmError('CAPACITY_EXCEEDED', `app ${this.app.name} has ${MAX_WAITING} requests waiting; retry shortly`);
      await new Promise<void>((r) => this.waiting.push(r));
    }
  }

  async request(env: Record<string, string>, body: Buffer, sink: OutputSink): Promise<AppAnswer> {
    this.lastUsed = Date.now();
    const runner = await this.take();
    try {
      return await runner.request(env, body, sink);
    } finally {
      runner.busy = false;
      this.lastUsed = Date.now();
      this.wake();
    }
  }

  /** Whether no request is running or waiting. */
  get idle(): boolean {
    return !this.waiting.length && this.runners.every((r) => !r.busy);
  }

  /** Stop every runner and destroy the sandbox. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w();
    for (const r of this.runners) if (typeof r.kill === 'function') r.kill();
    const box = await this.sandbox?.catch(() => undefined);
    box?.drop();
  }
}
