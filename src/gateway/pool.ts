/**
 * The runners of one app, whatever they run: CGI modules (runners.ts, realm-wasm in serve mode) or
 * wasi:http components (http-component-pool.ts). `replicas` runners at most, in one namespace
 * sandbox of the app's own (no network, read-only root, its cgroup and uid), never in the daemon.
 * A request takes an idle runner, else starts one while there are fewer than the replicas, else
 * waits in line for the next one freed. A runner that died is replaced at the next request;
 * `close` destroys the sandbox. Subclasses say how a runner starts and how a request talks to it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { DriverProcess } from '../drivers/driver.js';
import type { Engine } from '../engine/engine.js';
import type { AppRecord } from '../store/store.js';
import { log } from '../logs/log.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { DEFAULT_REPLICAS } from './apps.js';

const MiB = 1024 ** 2;
/** A runner's own memory besides the app's (Wasmtime, the compiled code, Python for components). */
const RUNNER_OVERHEAD = 192 * MiB;
/** Requests waiting for a runner of one app before more are refused. */
const MAX_WAITING = 512;
/** One core at most per app: an app that loops cannot starve the others (or the daemon). */
const APP_CPUS = 1;
/** How long an app yields CPU after a request of it ran into its deadline (see `ended`). */
const YIELD_MS = 10_000;
/** Its CPU weight meanwhile, relative to an app whose requests end in time. */
const YIELD_SHARE = 1 / 16;
/** A retiring pool looks this often whether its requests are done, and waits this long past the app's deadline. */
const RETIRE_POLL_MS = 50;
const RETIRE_SLACK_MS = 1000;

export type Box = Awaited<ReturnType<Engine['ownSandbox']>>;

/** What the pool needs of a runner. */
export interface PoolRunner {
  /** Its process ended: never handed out again. */
  readonly dead: boolean;
  kill(): void;
}

/** The cgroup memory of one runner running requests capped at `memoryBytes`. */
function runnerMemory(memoryBytes: number): number {
  return Math.max(memoryBytes, 16 * MiB) + RUNNER_OVERHEAD;
}

/** The limits of an app's sandbox, for `runners` runners whose requests are capped at `memoryBytes`. */
function appLimits(memoryBytes: number, runners: number): { memoryBytes: number; pids: number; cpus: number } {
  return { memoryBytes: runners * runnerMemory(memoryBytes), pids: runners * 64, cpus: APP_CPUS };
}

/** An app's sandbox, for `runners` runners whose requests are capped at `memoryBytes`. */
export function appSandbox(engine: Engine, memoryBytes: number, runners: number, owner: string | undefined): Promise<Box> {
  const limits = appLimits(memoryBytes, runners);
  return engine.ownSandbox(
    {
      driver: 'namespace',
      network: 'none',
      memory: limits.memoryBytes,
      pids: limits.pids,
      cpus: limits.cpus,
      disk: '64m',
      tmp: '16m',
      ttl: 0,
    },
    owner,
  );
}

/** Start `argv` as a runner in the app's sandbox: its stdin takes records, its stdout gives frames. */
export function execRunner(box: Box, argv: string[], memoryBytes: number): DriverProcess {
  return box.driver.exec(box.record.driverState, {
    argv,
    env: {},
    cwd: '/',
    stdin: true,
    pids: 32,
    memoryBytes: runnerMemory(memoryBytes),
  });
}

/** The runners of one app (one version of it: its bytes and limits). */
export abstract class RunnerPool<R extends PoolRunner> {
  private sandbox: Promise<Box> | undefined;
  /** Started runners, and placeholders (no process yet) for those starting. */
  private readonly runners: (R | PoolRunner)[] = [];
  private readonly starting = new Set<PoolRunner>();
  /** Requests each runner has (a placeholder: 1, the request that starts it). */
  private readonly load = new Map<PoolRunner, number>();
  private readonly waiting: (() => void)[] = [];
  private closed = false;
  private closing: Promise<void> | undefined;
  /** When a request last came or ended (Date.now()): idle pools are closed (see startGateway). */
  lastUsed = Date.now();
  /** While the app yields CPU (see `ended`): until when; 0 when it does not. */
  private yieldingUntil = 0;

  /**
   * `pipeline`: requests a runner may be given while it runs one, once every runner is busy (for
   * runners that answer their requests in order, one after the other).
   */
  constructor(
    protected readonly engine: Engine,
    readonly app: AppRecord,
    private readonly pipeline = 0,
  ) {}

  /** Runners at most: requests of the app run this many at once. */
  private get replicas(): number {
    return this.app.replicas ?? DEFAULT_REPLICAS;
  }

  /** Start a runner in the sandbox, ready for its first request; call `died` when its process ends. */
  protected abstract launch(box: Box, died: () => void): Promise<R>;

  private box(): Promise<Box> {
    this.sandbox ??= appSandbox(this.engine, this.app.memoryBytes, this.replicas, this.app.owner).catch((e: unknown) => {
      this.sandbox = undefined;
      throw e;
    });
    return this.sandbox;
  }

  private gone(): RealmError {
    return new RealmError('APP_NOT_FOUND', `app ${this.app.name} was removed`);
  }

  private wake(): void {
    this.waiting.shift()?.();
  }

  /** A runner died: those waiting look again (one may start its replacement, others queue on it). */
  private wakeAll(): void {
    for (const w of this.waiting.splice(0)) w();
  }

  private async start(): Promise<R> {
    const box = await this.box();
    if (this.closed) throw this.gone();
    // Known once launched: a runner that dies while it loads was never listed.
    const known: { runner?: R } = {};
    const started = await this.launch(box, () => {
      const i = known.runner ? this.runners.indexOf(known.runner) : -1;
      if (i >= 0) this.runners.splice(i, 1);
      this.wakeAll();
    });
    known.runner = started;
    if (this.closed) {
      started.kill();
      throw this.gone();
    }
    return started;
  }

  /**
   * A runner for one more request: an idle one, a new one while there are fewer than the replicas,
   * a busy one with room in its pipeline, else the next freed.
   */
  private async take(): Promise<R> {
    for (;;) {
      if (this.closed) throw this.gone();
      let best: R | undefined;
      let bestLoad = Infinity;
      for (const r of this.runners) {
        const n = this.load.get(r) ?? 0;
        if (!r.dead && n < bestLoad && !this.starting.has(r)) {
          best = r as R;
          bestLoad = n;
        }
      }
      if (best && bestLoad === 0) {
        this.load.set(best, 1);
        return best;
      }
      if (this.runners.length < this.replicas) {
        const placeholder: PoolRunner = { dead: false, kill: () => undefined };
        this.runners.push(placeholder);
        this.starting.add(placeholder);
        this.load.set(placeholder, 1);
        try {
          const r = await this.start();
          this.runners[this.runners.indexOf(placeholder)] = r;
          this.load.set(r, (this.load.get(r) ?? 0) + 1);
          return r;
        } catch (e) {
          const i = this.runners.indexOf(placeholder);
          if (i >= 0) this.runners.splice(i, 1);
          this.wake();
          throw e;
        } finally {
          this.starting.delete(placeholder);
          this.load.delete(placeholder);
        }
      }
      if (best && bestLoad <= this.pipeline) {
        this.load.set(best, bestLoad + 1);
        return best;
      }
      if (this.waiting.length >= MAX_WAITING)
        throw new RealmError('CAPACITY_EXCEEDED', `app ${this.app.name} has ${MAX_WAITING} requests waiting; retry shortly`);
      await new Promise<void>((r) => this.waiting.push(r));
    }
  }

  /** Run `fn` with a runner of the app's (to itself, or with a request before it in its pipeline). */
  protected async use<T>(fn: (runner: R) => Promise<T>): Promise<T> {
    this.lastUsed = Date.now();
    const runner = await this.take();
    try {
      return await fn(runner);
    } finally {
      const n = (this.load.get(runner) ?? 1) - 1;
      if (n > 0) this.load.set(runner, n);
      else this.load.delete(runner);
      this.lastUsed = Date.now();
      this.wake();
    }
  }

  /**
   * A request ended; `overran`: it ran into its deadline. An app whose requests do is a loop that
   * burns its core until each deadline: its sandbox then yields CPU to everyone else (its cgroup's
   * weight at YIELD_SHARE of its quota's, the quota unchanged, so it still takes what no one else
   * wants; the deadline is wall time, so its requests end as soon) until a request ends in time
   * YIELD_MS or more after the last that did not.
   */
  protected ended(overran: boolean): void {
    const now = Date.now();
    if (overran) {
      if (!this.yieldingUntil) {
        log.warn(
          `gateway: app ${this.app.name} runs into its deadline: its CPU share is lowered while it does (others come first)`,
          { service: this.app.name },
        );
        this.share(YIELD_SHARE);
      }
      this.yieldingUntil = now + YIELD_MS;
    } else if (this.yieldingUntil && now >= this.yieldingUntil) {
      this.yieldingUntil = 0;
      this.share(1);
    }
  }

  private share(cpuShare: number): void {
    const limits = { ...appLimits(this.app.memoryBytes, this.replicas), cpuShare };
    void this.sandbox
      ?.then((box) => box.driver.update(box.record.driverState, limits))
      .catch((e: unknown) => log.warn(`gateway: app ${this.app.name}: its CPU share stays: ${errorMessage(e)}`));
  }

  /** Whether no request is running or waiting. */
  get idle(): boolean {
    return !this.waiting.length && this.load.size === 0;
  }

  /**
   * Close once the requests it has (running, or waiting for a runner) are done, and at the
   * latest once the app's deadline has passed for them all: a replaced or removed app lets
   * what it was serving finish. Its caller sends new requests elsewhere meanwhile.
   */
  async retire(): Promise<void> {
    const until = Date.now() + this.app.timeoutMs + RETIRE_SLACK_MS;
    while (!this.closed && !this.idle && Date.now() < until) await sleep(RETIRE_POLL_MS);
    await this.close();
  }

  /** Stop every runner and destroy the sandbox (once, however many ask). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w();
      for (const r of this.runners) r.kill();
      const box = await this.sandbox?.catch(() => undefined);
      box?.drop();
    })();
    return this.closing;
  }
}
