/**
 * A CGI app's runners: realm-wasm in serve mode (the module compiled and linked once; each request
 * a fresh store and instance, with the app's limits), pooled by pool.ts in the app's sandbox.
 */
import type { DriverProcess } from '../drivers/driver.js';
import { FRAME_RESULT, FRAME_STDERR, FRAME_STDOUT, FrameReader, type RunnerResult, rec } from '../drivers/wasm/protocol.js';
import { findRuntime, runnerArgv } from '../drivers/wasm/runtime.js';
import type { Engine } from '../engine/engine.js';
import type { Verdict } from '../engine/schemas.js';
import type { AppRecord } from '../store/store.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { type Box, type PoolRunner, RunnerPool, execRunner } from './pool.js';

const MiB = 1024 ** 2;
/**
 * Requests written to a busy runner of a busy app besides the one it runs: under load a runner goes
 * from one request to the next without waiting for the daemon (a wakeup each way saved). One, so
 * that a request waits behind at most one other, as it would for the next free runner.
 */
const PIPELINE = 1;
/** After its deadline, how long a request may take before its runner is killed (the runner's own alarm comes first). */
const GRACE_MS = 5_000;
/** The most a request's app may write: past it, its runner is killed. */
export const MAX_OUTPUT = 64 * MiB;

export interface AppAnswer {
  verdict: Verdict;
  /** The trap or error message, the program's last stderr. */
  message: string;
  exitCode: number | null;
  /** The instance's memory when it ended (its peak: linear memory never shrinks), as the runner said. */
  memoryBytes?: number | undefined;
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
  resolve: (a: AppAnswer | typeof NOT_RUN) => void;
  stderr: string;
}

/** A request queued on a runner that died before it began: it never ran, and goes to another runner. */
const NOT_RUN = Symbol('not run');

function answerOf(r: RunnerResult, stderr: string): AppAnswer {
  const message = r.message ?? stderr.trim().split('\n').slice(-2).join(' ');
  const memoryBytes = r.memoryBytes;
  if (r.status === 'exit') return { verdict: r.code ? 'runtime-error' : 'ok', message, exitCode: r.code ?? 0, memoryBytes };
  if (r.reason === 'fuel') return { verdict: 'fuel-exhausted', message, exitCode: null, memoryBytes };
  if (r.reason === 'deadline') return { verdict: 'timeout', message, exitCode: null, memoryBytes };
  return { verdict: 'runtime-error', message, exitCode: null, memoryBytes };
}

/**
 * One realm-wasm in serve mode. It answers its requests one at a time, in the order written, so a
 * request may be written while another runs (the pool's `pipeline`): it waits in the runner's stdin
 * and starts as soon as the one before ends, without the runner sleeping in between.
 */
class Runner implements PoolRunner {
  dead = false;
  /** Written requests in order; the first is the one running. */
  private readonly queue: Pending[] = [];
  /** Kills the runner if the running request outlives its deadline by GRACE_MS (the runner's own alarm comes first). */
  private guard: NodeJS.Timeout | undefined;
  /** The request whose sink paused the runner's output, if one did. */
  private pausedBy: Pending | undefined;

  constructor(
    private readonly proc: DriverProcess,
    private readonly timeoutMs: number,
    onDeath: () => void,
  ) {
    const reader = new FrameReader((kind, payload) => {
      const cur = this.queue[0];
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
        this.queue.shift();
        this.arm();
        this.resume(cur);
        cur.resolve(answerOf(r, cur.stderr));
      }
    });
    proc.stdout.on('data', (c: Buffer) => reader.push(c));
    proc.stderr.resume();
    proc.stdin?.on('error', () => undefined);
    void proc.wait().then(() => {
      this.dead = true;
      clearTimeout(this.guard);
      const [cur, ...waiting] = this.queue.splice(0);
      cur?.resolve({ verdict: 'runtime-error', message: "the app's runner ended", exitCode: null });
      for (const w of waiting) w.resolve(NOT_RUN);
      onDeath();
    });
  }

  /** The running request's guard (none when nothing runs). */
  private arm(): void {
    clearTimeout(this.guard);
    this.guard = this.queue.length ? setTimeout(() => this.kill(), this.timeoutMs + GRACE_MS) : undefined;
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

  /** Run one request after those written before it; the answer comes when its result frame does (or the runner dies). */
  request(env: Record<string, string>, body: Buffer, sink: OutputSink): Promise<AppAnswer | typeof NOT_RUN> {
    if (this.dead) return Promise.resolve(NOT_RUN);
    return new Promise((resolve) => {
      this.queue.push({ sink, bytes: 0, stderr: '', resolve });
      if (this.queue.length === 1) this.arm();
      this.send(Buffer.concat([...Object.entries(env).map(([k, v]) => rec('E', `${k}=${v}`)), rec('B', body), rec('X', '')]));
    });
  }

  /** End the runner (its death answers the request it had). */
  kill(): void {
    this.proc.kill().catch(() => undefined);
  }
}

/** The runners of one CGI app (one version of it: its module and limits). */
export class AppPool extends RunnerPool<Runner> {
  constructor(
    engine: Engine,
    app: AppRecord,
    private readonly module: () => Buffer,
  ) {
    super(engine, app, PIPELINE);
  }

  /** A started runner (compiling the module as its first job). */
  protected launch(box: Box, died: () => void): Promise<Runner> {
    let rt;
    try {
      rt = findRuntime();
    } catch (e) {
      throw new RealmError('DRIVER_UNAVAILABLE', `the wasm runner cannot start: ${errorMessage(e)}`);
    }
    const runner = new Runner(execRunner(box, runnerArgv(rt), this.app.memoryBytes), this.app.timeoutMs, died);
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
    return Promise.resolve(runner);
  }

  async request(env: Record<string, string>, body: Buffer, sink: OutputSink): Promise<AppAnswer> {
    // A request queued on a runner that died (the one before it killed it) never ran: it goes again.
    for (let tries = 0; ; tries++) {
      const a = await this.use((runner) => runner.request(env, body, sink));
      if (a !== NOT_RUN) {
        this.ended(a.verdict === 'timeout');
        return a;
      }
      if (tries === 3) return { verdict: 'runtime-error', message: "the app's runners ended", exitCode: null };
    }
  }
}
