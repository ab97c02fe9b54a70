/**
 * Runs go from the queue to a slot, attempt by attempt: a failed attempt is retried per the
 * spec's policy (after its delay, constant or doubling up to max_delay), an ended run is written
 * once and never runs again. After a daemon restart — even one killed with -9 — an attempt that
 * was running is marked lost and its sandbox destroyed before any retry starts, so an attempt
 * never runs twice at once.
 */
import type { Engine } from '../engine/engine.js';
import { ownerOf } from '../engine/owner.js';
import { errorMessage } from '../util/errors.js';
import { runAttempt } from './attempt.js';
import type { JobStore, RunDispatch } from './dispatch.js';
import type { JobBlobs } from './blobs.js';
import type { JobLogs } from './logs.js';
import { FairQueue } from './queue.js';
import { type AttemptRecord, ENDED, type JobRecord, type JobRunRecord } from './records.js';
import { afterAttempt, applyAfter } from './retry.js';
import { emitJobEvent } from './events.js';
import { log } from '../logs/log.js';

const STOPPING = 'the daemon is stopping';

export interface RunnerOptions {
  /** Most runs at once on this node. */
  maxRunning: number;
  /** Most runs waiting for a slot. */
  queueBound: number;
}

export class JobRunner implements RunDispatch {
  readonly queue: FairQueue;
  /** Runs in a slot now, with what cancels them. */
  private readonly active = new Map<string, AbortController>();
  private readonly starts = new Set<Promise<void>>();
  private readonly retryTimers = new Map<string, NodeJS.Timeout>();
  /** Runs of a job with `overlap = "queue"` waiting for the job's running one to end. */
  private readonly held = new Map<string, string>();
  private closed = false;
  /** Called after every change of a run's state (Jobs removes old ended runs when one ends). */
  onChange: (run: JobRunRecord) => void = () => undefined;

  constructor(
    private readonly engine: Engine,
    private readonly store: JobStore,
    private readonly blobs: JobBlobs,
    private readonly logs: JobLogs,
    private readonly opts: RunnerOptions,
  ) {
    this.queue = new FairQueue(opts.queueBound);
  }

  get running(): number {
    return this.active.size;
  }

  position(id: string): number | undefined {
    return this.queue.position(id);
  }

  /** Queue a new run (refused when the queue is full). `after`: a run of the same job to wait for. */
  async enqueue(run: JobRunRecord, job: JobRecord, after?: string): Promise<void> {
    // The run waited for may have ended meanwhile: then this one queues as any other.
    const waitFor = after ? await this.store.getJobRun(after) : null;
    if (after && waitFor && !ENDED.includes(waitFor.state)) this.held.set(after, run.id);
    else this.queue.push(run.id, ownerOf(run));
    await this.store.putJobRun(run);
    await this.store.putJob(job);
    this.told(run);
    this.pump();
  }

  /** After a restart: what was running is lost (and retried per policy), what waited waits again. */
  async recover(): Promise<void> {
    const runs = await this.store.listJobRuns();
    // Sandboxes of attempts that ended (their clean-up cut short by a crash) or of runs gone.
    const live = new Set(runs.flatMap((r) => (r.state === 'running' ? [r.attempts.at(-1)?.sandbox] : [])));
    for (const sb of await this.engine.listSandboxes()) {
      if (sb.labels['realm.job-run'] !== undefined && !live.has(sb.id))
        await this.engine.destroySandbox(sb.id).catch(() => undefined);
    }
    for (const run of runs) {
      if (run.state === 'queued') this.queue.requeue(run.id, ownerOf(run));
      else if (run.state === 'retrying') this.armRetry(run);
      else if (run.state === 'running') {
        const last = run.attempts.at(-1);
        if (last && last.state === 'running') {
          // Its sandbox goes before anything else may run the attempt again.
          if (last.sandbox) await this.engine.destroySandbox(last.sandbox).catch(() => undefined);
          Object.assign(last, {
            state: 'lost',
            endedAt: Date.now(),
            error: 'the daemon stopped while this attempt ran; it was lost',
          } satisfies Partial<AttemptRecord>);
        }
        await this.afterAttempt(run);
      }
    }
    this.pump();
  }

  /** Start what the free slots allow. */
  private pump(): void {
    while (!this.closed && this.active.size < this.opts.maxRunning) {
      const id = this.queue.next();
      if (!id) return;
      const ctl = new AbortController();
      this.active.set(id, ctl);
      const done = this.start(id, ctl)
        .catch((e: unknown) => log.error(`job run ${id}: ${errorMessage(e)}`, { runId: id, err: e }))
        .finally(() => {
          this.active.delete(id);
          this.starts.delete(done);
          this.pump();
        });
      this.starts.add(done);
    }
  }

  private async start(id: string, ctl: AbortController): Promise<void> {
    const run = await this.store.getJobRun(id);
    if (!run || ENDED.includes(run.state)) return;
    const attempt: AttemptRecord = {
      n: run.attempts.length + 1,
      state: 'running',
      startedAt: Date.now(),
      artifacts: [],
      logBytes: 0,
    };
    run.attempts.push(attempt);
    run.state = 'running';
    run.startedAt ??= attempt.startedAt;
    delete run.nextAttemptAt;
    await this.save(run);
    const log = this.logs.open(run.id, attempt.n);
    try {
      await runAttempt(run, attempt, {
        engine: this.engine,
        blobs: this.blobs,
        log,
        signal: ctl.signal,
        onSandbox: () => this.save(run),
      });
    } finally {
      // The run is recorded once its log is whole on disk: its last lines (realm's, on artifacts)
      // come after up to the output bound of the program's, still on their way to the file.
      await log.end();
    }
    const sandbox = attempt.sandbox;
    const destroyed = sandbox ? this.engine.destroySandbox(sandbox).catch(() => undefined) : Promise.resolve();
    // The daemon stops: the attempt stays `running` in the store, found lost at the next start.
    if (ctl.signal.reason === STOPPING) return destroyed;
    // A retry never overlaps what this attempt left running; an ended run's result is recorded
    // first, its clean-up after (the next start sweeps a sandbox a crash left in between).
    if (attempt.state === 'failed') await destroyed;
    else this.track(destroyed);
    await this.afterAttempt(run);
  }

  /** Work the daemon's stop waits for. */
  private track(p: Promise<void>): void {
    this.starts.add(p);
    void p.finally(() => this.starts.delete(p));
  }

  /** The run after its latest attempt: ended, or retrying after its delay. */
  private async afterAttempt(run: JobRunRecord): Promise<void> {
    const next = afterAttempt(run);
    if (next.state !== 'retrying') return this.end(run, next.state, next.reason);
    applyAfter(run, next);
    await this.save(run);
    this.armRetry(run);
  }

  private armRetry(run: JobRunRecord): void {
    const t = setTimeout(
      () => {
        this.retryTimers.delete(run.id);
        void this.store.getJobRun(run.id).then(async (r) => {
          if (!r || r.state !== 'retrying') return;
          r.state = 'queued';
          await this.save(r);
          this.queue.requeue(r.id, ownerOf(r));
          this.pump();
        });
      },
      Math.max(0, (run.nextAttemptAt ?? 0) - Date.now()),
    );
    t.unref();
    this.retryTimers.set(run.id, t);
  }

  private async end(run: JobRunRecord, state: 'succeeded' | 'failed' | 'cancelled', reason: string): Promise<void> {
    run.state = state;
    run.reason = reason;
    run.endedAt = Date.now();
    delete run.nextAttemptAt;
    await this.save(run);
    const next = this.held.get(run.id);
    if (next) {
      this.held.delete(run.id);
      this.queue.requeue(next, ownerOf(run));
      this.pump();
    }
  }

  private async save(run: JobRunRecord): Promise<void> {
    if (!(await this.store.putJobRun(run))) return; // ended already: written once
    this.told(run);
    this.onChange(run);
  }

  /** The state each run was last announced in (events.ts), so a save that changed no state says nothing. */
  private readonly announced = new Map<string, string>();
  private told(run: JobRunRecord): void {
    if (this.announced.get(run.id) === run.state) return;
    if (ENDED.includes(run.state)) this.announced.delete(run.id);
    else this.announced.set(run.id, run.state);
    emitJobEvent(this.engine.events, run);
  }

  /** Cancel a run that has not ended; false when it has. */
  async cancel(id: string): Promise<boolean> {
    const run = await this.store.getJobRun(id);
    if (!run || ENDED.includes(run.state)) return false;
    const ctl = this.active.get(id);
    if (ctl) {
      ctl.abort('cancelled');
      return true; // the attempt ends as cancelled, then the run
    }
    this.queue.remove(id);
    for (const [after, held] of this.held) if (held === id) this.held.delete(after);
    clearTimeout(this.retryTimers.get(id));
    this.retryTimers.delete(id);
    await this.end(run, 'cancelled', 'cancelled before it ran');
    return true;
  }

  /**
   * Stop: no run starts any more, and running attempts are stopped and their sandboxes destroyed;
   * their records still say running, so the next start finds them lost and retries them per policy.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.retryTimers.values()) clearTimeout(t);
    this.retryTimers.clear();
    for (const ctl of this.active.values()) ctl.abort(STOPPING);
    await Promise.all(this.starts);
  }
}
