/**
 * A node's side of the cluster's jobs: it watches its own assignments (`assign/SELF/…`) and runs
 * each attempt as a lone node would (same sandbox, limits, log, artifacts), its log kept here.
 * It reports the outcome in one transaction that creates `results/RUN/N` (once), writes the run
 * (ended, or queued again for a retry) and deletes the assignment — guarded by the assignment, so
 * an attempt re-placed meanwhile (this node's lease ended) cannot complete a second time.
 *
 * Stop after a lost connection (Nomad's stop_after_client_disconnect, on): a node that has had
 * no answer from etcd for nearly its lease TTL ends its attempts (their lease may be gone and the
 * scheduler placing them elsewhere); each is reported lost when etcd answers again, if its
 * assignment still stands. An attempt whose assignment goes (cancelled, re-placed) is stopped.
 * A report that etcd does not take yet is retried until it is taken or refused.
 */
import type { Etcd3 } from 'etcd3';
import type { Engine } from '../engine/engine.js';
import { runAttempt } from '../jobs/attempt.js';
import type { JobBlobs } from '../jobs/blobs.js';
import type { JobLogs } from '../jobs/logs.js';
import type { AttemptRecord, JobRunRecord } from '../jobs/records.js';
import { afterAttempt, applyAfter } from '../jobs/retry.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { answered } from './etcd.js';
import { LastingWatch } from './lasting-watch.js';
import { ASSIGN, type Assignment, CALL_MS, type EtcdJobStore, resultKey, retryPuts } from './job-store.js';
import { log as logLine } from '../logs/log.js';

const STOPPING = 'the daemon is stopping';
const REVOKED = 'its assignment was withdrawn';
const CUT_OFF = 'cut off from etcd';
/** Ends its attempts this far into its TTL without an answer (before the lease can end). */
const STOP_AT = 0.8;

export interface ExecutorOptions {
  selfId: string;
  ttlMs: number;
  /** How long etcd has been silent (see EtcdNodes.silentMs). */
  silentMs: () => number;
  /** A run ended or changed here (jobs prune old runs). */
  onChange: (run: JobRunRecord) => void;
  /** A run's state as an event on this node's bus (an attempt began or was reported here). */
  told: (run: JobRunRecord) => void;
}

interface Active {
  run: string;
  attempt: number;
  /** The assignment's create revision: the report compares it. */
  rev: string;
  ctl: AbortController;
  done: Promise<void>;
}

export class Executor {
  private readonly active = new Map<string, Active>();
  private watch: LastingWatch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly etcd: Etcd3,
    private readonly store: EtcdJobStore,
    private readonly engine: Engine,
    private readonly blobs: JobBlobs,
    private readonly logs: JobLogs,
    private readonly opts: ExecutorOptions,
  ) {}

  get running(): number {
    return this.active.size;
  }

  /** Runs with an attempt here now. */
  runs(): Set<string> {
    return new Set([...this.active.values()].map((a) => a.run));
  }

  private get prefix(): string {
    return `${ASSIGN}${this.opts.selfId}/`;
  }

  async start(): Promise<void> {
    // No assignment outlives this node's previous lease: an attempt's sandbox left by a crash goes.
    for (const sb of await this.engine.listSandboxes())
      if (sb.labels['realm.job-run'] !== undefined) await this.engine.destroySandbox(sb.id).catch(() => undefined);
    this.watch = new LastingWatch(
      'assignments',
      () => this.etcd.watch().prefix(this.prefix),
      (w) => {
        w.on('put', (kv) => this.assigned(kv.key.toString(), kv.value.toString(), kv.create_revision));
        w.on('delete', (kv) => this.withdrawn(kv.key.toString()));
      },
      () => this.reread(),
    );
    // Read, then watch from the revision after: nothing between is lost, nothing older comes after.
    await this.watch.start(await this.reread());
    this.timer = setInterval(() => {
      if (this.opts.silentMs() < this.opts.ttlMs * STOP_AT) return;
      for (const a of this.active.values()) if (!a.ctl.signal.aborted) a.ctl.abort(CUT_OFF);
    }, 200);
    this.timer.unref();
  }

  /** Stop: attempts end and their sandboxes go; leaving the cluster ends the assignments (re-placed). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.watch?.close();
    for (const a of this.active.values()) a.ctl.abort(STOPPING);
    await Promise.all([...this.active.values()].map((a) => a.done));
  }

  /**
   * Attempts are told apart by number: a new one of a run may be placed here while an older one
   * still reports (it was cut off, and its lease ended meanwhile).
   */
  private assigned(key: string, value: string, rev: string): void {
    const run = key.slice(this.prefix.length);
    const { attempt } = JSON.parse(value) as Assignment;
    const at = `${run}#${attempt}`;
    if (this.closed || this.active.has(at)) return;
    const ctl = new AbortController();
    const entry: Active = { run, attempt, rev, ctl, done: Promise.resolve() };
    this.active.set(at, entry);
    entry.done = this.run(run, entry)
      .catch((e: unknown) => logLine.error(`job run ${run} attempt ${attempt}: ${errorMessage(e)}`, { runId: run, err: e }))
      .finally(() => this.active.delete(at));
  }

  /** This node's assignments as etcd has them: each new one runs, an attempt whose assignment is gone stops. */
  private async reread(): Promise<string> {
    const now = await answered(this.etcd.getAll().prefix(this.prefix).exec(), CALL_MS, 'reading assignments');
    const held = new Set(now.kvs.map((kv) => kv.key.toString()));
    for (const a of [...this.active.values()]) if (!held.has(this.prefix + a.run)) this.withdrawn(this.prefix + a.run);
    for (const kv of now.kvs) this.assigned(kv.key.toString(), kv.value.toString(), kv.create_revision);
    return now.header.revision;
  }

  /** An assignment deleted: every attempt of that run here stops (a newer one is put after). */
  private withdrawn(key: string): void {
    const run = key.slice(this.prefix.length);
    for (const a of this.active.values()) if (a.run === run && !a.ctl.signal.aborted) a.ctl.abort(REVOKED);
  }

  private async run(id: string, a: Active): Promise<void> {
    const run = await this.store.getJobRun(id);
    const attempt = run?.attempts.find((x) => x.n === a.attempt);
    if (!run || !attempt || attempt.state !== 'running') return;
    this.opts.told(run);
    const log = this.logs.open(run.id, attempt.n);
    try {
      await runAttempt(run, attempt, {
        engine: this.engine,
        blobs: this.blobs,
        log,
        signal: a.ctl.signal,
        onSandbox: (sb) => this.noteSandbox(id, a, sb),
      });
    } finally {
      // Reported once its log is whole on disk (see JobRunner.start).
      await log.end();
    }
    const sandbox = attempt.sandbox;
    const destroy = (): Promise<void> =>
      sandbox ? this.engine.destroySandbox(sandbox).catch(() => undefined) : Promise.resolve();
    const why: unknown = a.ctl.signal.reason;
    if (why === REVOKED)
      logLine.warn(
        `job run ${id} attempt ${a.attempt}: stopped: its assignment was withdrawn (cancelled, or re-placed after this node's lease ended)`,
        { runId: id },
      );
    if (why === STOPPING || why === REVOKED) return destroy();
    if (why === CUT_OFF)
      Object.assign(attempt, {
        state: 'lost',
        verdict: undefined,
        error: `node ${this.opts.selfId} was cut off from etcd for ${Math.round(this.opts.silentMs() / 100) / 10} s and stopped it (its lease could end meanwhile)`,
      } satisfies Partial<AttemptRecord>);
    // A failed attempt's sandbox goes before its retry can be placed; a run's end is told first.
    if ((attempt.state as AttemptRecord['state']) !== 'succeeded') await destroy();
    await this.report(id, a, attempt);
    await destroy();
  }

  /** The sandbox an attempt runs in, noted while its assignment stands (best effort: the label says it too). */
  private async noteSandbox(id: string, a: Active, sandbox: string): Promise<void> {
    await this.store
      .update(id, (run) => {
        const at = run.attempts.find((x) => x.n === a.attempt);
        if (!at || at.state !== 'running') return null;
        at.sandbox = sandbox;
        return { run, guards: [[this.prefix + id, 'Create', '==', a.rev]] };
      })
      .catch(() => undefined);
  }

  /** The attempt's outcome, until etcd takes it (or refuses it: the attempt is not ours any more). */
  private async report(id: string, a: Active, outcome: AttemptRecord): Promise<void> {
    for (;;) {
      try {
        const res = await this.store.update(id, (run) => {
          const at = run.attempts.find((x) => x.n === a.attempt);
          if (!at || at.state !== 'running' || run.attempts.at(-1) !== at) return null;
          Object.assign(at, { ...outcome, node: this.opts.selfId, endedAt: outcome.endedAt ?? Date.now() });
          applyAfter(run, afterAttempt(run));
          return {
            run,
            guards: [
              [this.prefix + id, 'Create', '==', a.rev],
              [resultKey(id, a.attempt), 'Create', '==', 0],
            ],
            puts: [
              {
                key: resultKey(id, a.attempt),
                value: JSON.stringify({ node: this.opts.selfId, state: at.state, at: at.endedAt }),
              },
              ...retryPuts(run),
            ],
            deletes: [this.prefix + id],
          };
        });
        if (res.done) {
          this.opts.told(res.run);
          this.opts.onChange(res.run);
        } else
          logLine.warn(
            `job run ${id} attempt ${a.attempt}: its outcome (${outcome.state}) was not recorded: the attempt was cancelled or re-placed meanwhile`,
            { runId: id },
          );
        return;
      } catch (e) {
        if (this.closed || !(e instanceof RealmError && e.code === 'CLUSTER_UNAVAILABLE')) throw e;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
}
