/**
 * One-shot runs: language + files (+ stdin/args) → output and a verdict, in a throwaway sandbox.
 * Interpreted languages run in a prepared sandbox from a warm pool whose life is the program's;
 * compiled ones get a sandbox for the compile and then the program.
 */
import { join } from 'node:path';
import {
  type DriverName,
  type ExecSpec,
  type FileToWrite,
  type NetworkMode,
  type PreparedRun,
  type ProgramAhead,
  startWithInput,
} from '../drivers/driver.js';
import { refuseUnguarded } from '../net/addresses.js';
import { RealmError, errorMessage } from '../util/errors.js';
import type { Capacity } from './capacity.js';
import { type OutputListener, collect } from './collect.js';
import { BASE_ENV } from './env.js';
import { newId } from './ids.js';
import type { OutputBudget } from './output.js';
import type { Language, Languages } from './languages.js';
import { WarmPool } from './pool.js';
import type { HostIds } from './host-ids.js';
import type { ImageRoots } from './images.js';
import type { SandboxLifecycle } from './sandboxes.js';
import type { SandboxExec } from './exec.js';
import type { ExecResult, RunOptions, RunResult } from './schemas.js';
import { recordRun, recordWarm, since } from '../metrics/record.js';
import { traced } from '../telemetry/trace.js';
import { resultAttrs } from './exec.js';
import { programAhead, runDriver, runFiles } from './run-plan.js';

/** Size of /tmp in a one-shot run's sandbox (at most its disk). */
export const RUN_TMP_BYTES = 64 * 1024 ** 2;

export type { OutputListener } from './collect.js';

/**
 * What realm's own callers (the gateway) give a run besides its options: environment variables
 * over the language's, and stdin as bytes. Only runs of languages without a compile step take it.
 */
export interface RunExtra {
  env?: Record<string, string>;
  stdin?: Buffer;
  /** Who asked (`uid:N`): who sees its `run.finished` event (none: root). */
  owner?: string;
  /** realm's own run (an app's check on push), not a user's: no `run.finished` event. */
  internal?: boolean;
}

/** What makes two one-shot sandboxes interchangeable. */
export interface RunShape {
  driver: DriverName;
  rootfs: string;
  network: NetworkMode;
  disk: number;
  /** Size of /tmp (at most the disk and RUN_TMP_BYTES unless given). */
  tmp?: number;
  /**
   * The program its sandbox starts while it waits (an interpreter whose main file comes late),
   * and the memory limit it waits with: the run's, so that what a program reads of its limits as
   * it starts is what it would read started with its run.
   */
  ahead?: { program: ProgramAhead; memory: number };
}

/**
 * A command in a one-shot sandbox of an image, with a long-lived sandbox's limits: a job's attempt
 * that places no inputs and collects no artifacts (nothing to do in the sandbox before or after
 * its command), so it needs no sandbox of the store.
 */
export interface CommandRun {
  driver?: DriverName | undefined;
  image: string;
  command: string[];
  env: Record<string, string>;
  cwd: string;
  memory: number;
  pids: number;
  cpus: number;
  disk: number;
  tmp: number;
  network: NetworkMode;
  timeout: number;
  output: number;
}

/** What runs work with (the engine makes each once). */
export interface RunParts {
  config: { maxRuns?: number | undefined; networkAllRefused?: string | undefined };
  languages: Languages;
  capacity: Capacity;
  /** The daemon-wide budget of output held in memory. */
  outputBudget: OutputBudget;
  /** Image roots: which a language runs in, and which are in use (by `run:<id>`) so the store keeps them. */
  imageRoots: ImageRoots;
  /** Sandboxes for compiled languages (ephemeral ones), and the drivers. */
  sandboxes: SandboxLifecycle;
  execs: SandboxExec;
  /** Each run's own host ids. */
  hostIds: HostIds;
}

export class Runs {
  readonly pool: WarmPool<PreparedRun>;
  private inFlight = 0;

  constructor(
    private readonly parts: RunParts,
    warm: number,
    warmMax?: number,
  ) {
    this.pool = new WarmPool<PreparedRun>(warm, undefined, warmMax);
  }

  /** Take a ready one-shot sandbox of this shape (or none), and keep the shape warm. */
  warmRun(shape: RunShape): PreparedRun | undefined {
    const key = JSON.stringify(['run', shape.driver, shape.rootfs, shape.network, shape.disk, shape.tmp, shape.ahead]);
    const ready = this.pool.take(key, () => this.prepareRun(shape));
    queueMicrotask(() => recordWarm('runs', ready !== undefined)); // once the run's request went
    return ready;
  }

  private async prepareRun(shape: RunShape): Promise<PreparedRun> {
    const driver = await this.parts.sandboxes.drivers.available(shape.driver);
    const id = newId('run');
    // A run's default limits while it waits (a run that keeps them writes no cgroup file when it
    // starts); a run's own are set when it starts.
    const limits = {
      memoryBytes: shape.ahead?.memory ?? 256 * 1024 ** 2,
      pids: 128,
      cpus: 1,
      diskBytes: shape.disk,
      tmpBytes: shape.tmp ?? Math.min(shape.disk, RUN_TMP_BYTES),
    };
    const ids = this.parts.hostIds.take(id);
    const give = (): void => this.parts.hostIds.give(id);
    let prepared: PreparedRun;
    try {
      prepared = await driver.prepareRun(
        {
          id,
          rootfs: shape.rootfs,
          limits,
          network: shape.network,
          mounts: [],
          env: {},
          hostname: 'sandbox',
          stateDir: join(this.parts.sandboxes.dir, id),
          ...ids,
        },
        shape.ahead?.program,
      );
    } catch (e) {
      give();
      throw e;
    }
    // The run's ids go back once its sandbox is gone, however it goes.
    return {
      id,
      alive: () => prepared.alive(),
      discard: () => prepared.discard().finally(give),
      takesInput: prepared.takesInput,
      start: (files, exec, input) => {
        const proc = prepared.start(files, exec, input);
        return { ...proc, release: () => proc.release().finally(give) };
      },
    };
  }

  /** The language of this name or alias, or LANGUAGE_NOT_FOUND. */
  language(nameOrAlias: string): Language {
    const lang = this.parts.languages.get(nameOrAlias);
    if (!lang) {
      throw new RealmError(
        'LANGUAGE_NOT_FOUND',
        `no language "${nameOrAlias}"; known: ${this.parts.languages.names().join(', ')} (\`realm lang ls\`)`,
      );
    }
    return lang;
  }

  /** A one-shot run: language + files (+ stdin/args) → output and a verdict, in a throwaway sandbox. */
  async run(opts: RunOptions, onData?: OutputListener, signal?: AbortSignal, extra?: RunExtra): Promise<RunResult> {
    const lang = this.language(opts.language);
    const maxRuns = this.parts.config.maxRuns ?? 64;
    if (this.inFlight >= maxRuns) {
      throw new RealmError(
        'CAPACITY_EXCEEDED',
        `this node already runs ${this.inFlight} one-shot runs (limit ${maxRuns}); retry shortly or raise --max-runs`,
      );
    }
    this.inFlight++;
    const start = performance.now();
    let verdict = 'error';
    try {
      // Its language and how it ended; never its code, stdin or arguments.
      const result = await traced(
        'run',
        { 'realm.language': lang.name, 'realm.driver': opts.driver ?? lang.driver ?? this.parts.sandboxes.drivers.defaultName },
        async (span) => {
          const r = await this.runLanguage(lang, opts, onData, signal, extra);
          span.set({ ...resultAttrs(r), 'realm.compile.verdict': r.compile?.verdict });
          return r;
        },
      );
      verdict = result.verdict;
      return result;
    } finally {
      this.inFlight--;
      const seconds = since(start);
      setImmediate(() => recordRun(lang.name, verdict, seconds)); // after the answer
    }
  }

  /**
   * A command in a one-shot sandbox of an image (see CommandRun). Not counted against --max-runs:
   * jobs have their own bound (the runs at once of the job runner).
   */
  async command(c: CommandRun, onData?: OutputListener, signal?: AbortSignal): Promise<ExecResult> {
    const driver = c.driver ?? this.parts.sandboxes.drivers.defaultName;
    refuseUnguarded(this.parts.config, c.network);
    await this.parts.imageRoots.ensure(c.image);
    const rootfs = this.parts.imageRoots.resolve(c.image);
    return this.oneShot(
      { driver, rootfs, network: c.network, disk: c.disk, tmp: c.tmp },
      [],
      {
        argv: c.command,
        env: { ...BASE_ENV, ...c.env },
        cwd: c.cwd,
        memoryBytes: c.memory,
        pids: c.pids,
        cpus: c.cpus,
        stdin: false,
      },
      { timeoutMs: c.timeout, outputBytes: c.output },
      onData,
      signal,
    );
  }

  /** One program in a sandbox whose life is the program's, from the warm pool when it has one. */
  private async oneShot(
    shape: RunShape,
    files: FileToWrite[],
    exec: ExecSpec,
    limits: { timeoutMs: number; outputBytes: number; stdin?: string | Buffer | undefined },
    onData?: OutputListener,
    signal?: AbortSignal,
  ): Promise<ExecResult> {
    this.parts.capacity.check();
    let prepared: PreparedRun;
    try {
      prepared =
        this.warmRun(shape) ??
        (await traced('run.prepare', { 'realm.driver': shape.driver, 'realm.warm': false }, () => this.prepareRun(shape)));
    } catch (e) {
      if (e instanceof RealmError) throw e;
      throw new RealmError('SANDBOX_START_FAILED', `the run's sandbox could not start: ${errorMessage(e)}`);
    }
    this.parts.capacity.add(prepared.id);
    this.parts.imageRoots.roots.set(`run:${prepared.id}`, shape.rootfs);
    try {
      return await traced('run.exec', { 'realm.driver': shape.driver }, async (span) => {
        // A program with stdin gets it whole as it starts: its request goes at once.
        const input = exec.stdin ? Buffer.from(limits.stdin ?? '') : undefined;
        const proc = input ? startWithInput(prepared, files, exec, input) : prepared.start(files, exec);
        try {
          const r = await collect(proc, { ...limits, stdin: undefined, onData, signal, budget: this.parts.outputBudget });
          span.set(resultAttrs(r));
          return r;
        } finally {
          this.parts.capacity.cleanUp(prepared.id, () => proc.release());
        }
      });
    } finally {
      this.parts.imageRoots.roots.delete(`run:${prepared.id}`);
    }
  }

  private async runLanguage(
    lang: Language,
    opts: RunOptions,
    onData?: OutputListener,
    signal?: AbortSignal,
    extra?: RunExtra,
  ): Promise<RunResult> {
    const driverName = runDriver(lang, opts.driver, this.parts.sandboxes.drivers.defaultName);
    refuseUnguarded(this.parts.config, opts.network);
    const toWrite = runFiles(lang, opts);
    await this.parts.imageRoots.ensure(lang.image);
    const rootfs = this.parts.imageRoots.languageImage(lang);
    const limits = {
      memoryBytes: Math.max(opts.memory, opts.compileMemory),
      pids: lang.compile ? Math.max(opts.pids, opts.compilePids) : opts.pids,
      cpus: opts.cpus,
      diskBytes: opts.disk,
      tmpBytes: Math.min(opts.disk, RUN_TMP_BYTES),
    };
    const run = {
      env: lang.env,
      cwd: '/home/user',
      pids: opts.pids,
      cpus: opts.cpus,
      output: opts.output,
      command: [...lang.run, ...opts.args],
      timeout: opts.timeout,
      memory: opts.memory,
      stdin: opts.stdin,
      fuel: opts.fuel,
    };
    if (!lang.compile) {
      // Interpreted: one sandbox whose life is the program's, from the warm pool when it has one.
      const ahead = programAhead(lang, opts, extra);
      const result = await this.oneShot(
        {
          driver: driverName,
          rootfs,
          network: opts.network,
          disk: opts.disk,
          ...(ahead ? { ahead: { program: ahead, memory: opts.memory } } : {}),
        },
        toWrite,
        {
          argv: ahead?.argv ?? run.command,
          env: ahead?.env ?? { ...BASE_ENV, ...lang.env, ...extra?.env },
          cwd: run.cwd,
          memoryBytes: opts.memory,
          pids: opts.pids,
          cpus: opts.cpus,
          stdin: true,
          fuel: opts.fuel,
        },
        { timeoutMs: opts.timeout, outputBytes: opts.output, stdin: extra?.stdin ?? opts.stdin },
        onData,
        signal,
      );
      return { ...result, language: lang.name };
    }
    const sandbox = await this.parts.sandboxes.create(
      {
        image: lang.image,
        driver: driverName,
        memory: limits.memoryBytes,
        cpus: opts.cpus,
        pids: limits.pids,
        disk: opts.disk,
        tmp: limits.tmpBytes,
        network: opts.network,
        allow: [],
        deny: [],
        inject: [],
        volumes: [],
        env: {},
        labels: {},
        ttl: 0,
      },
      true,
    );
    const driver = this.parts.sandboxes.drivers.get(sandbox.driver);
    try {
      await driver.writeFiles(sandbox.driverState, toWrite);
      const compile = await this.parts.execs.exec(
        sandbox,
        {
          ...run,
          command: lang.compile,
          timeout: opts.compileTimeout,
          memory: opts.compileMemory,
          pids: opts.compilePids,
          stdin: undefined,
          fuel: undefined,
        },
        undefined,
        signal,
        true,
      );
      if (compile.verdict !== 'ok') {
        const verdict = compile.verdict === 'runtime-error' ? 'compile-error' : compile.verdict;
        return { ...compile, verdict, language: lang.name, compile };
      }
      // The compiler had the larger limits (compilers start many threads and need memory); the
      // program gets its own, set on the sandbox as a whole (its only user now), so a driver
      // without per-exec memory limits (gvisor) holds the program to them too.
      if (limits.memoryBytes > opts.memory || limits.pids !== opts.pids) {
        await driver
          .update(sandbox.driverState, { memoryBytes: opts.memory, pids: opts.pids, cpus: opts.cpus })
          .catch((e: unknown) => {
            throw new RealmError(
              'SANDBOX_START_FAILED',
              `the program's limits could not be set after compiling: ${errorMessage(e)}`,
            );
          });
        sandbox.limits = { ...sandbox.limits, memoryBytes: opts.memory, pids: opts.pids, cpus: opts.cpus }; // what the exec's are checked against
      }
      const result = await this.parts.execs.exec(sandbox, run, onData, signal);
      return { ...result, language: lang.name, compile };
    } finally {
      this.parts.capacity.cleanUp(sandbox.id, () => this.parts.sandboxes.destroyState(sandbox));
    }
  }
}
