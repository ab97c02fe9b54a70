/**
 * Jobs on this node: submit a spec (a batch job runs once now; a cron job on its schedule), see
 * them and their runs, follow logs, cancel, fetch artifacts, remove. A job is addressed by its
 * name or by one of its runs' ids everywhere. Shaped so a cluster only has to place runs
 * elsewhere: what a run needs (spec, resolved inputs) is in its record.
 *
 * @example
 * const jobs = new Jobs(engine, store, blobs, { dataDir, maxRunning: 2, queueBound: 1000 });
 * await jobs.start();
 * const { run } = await jobs.submit(parseJobToml(text), 'uid:1000');
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { ROOT_OWNER, mayUse, ownerOf } from '../engine/owner.js';
import { RealmError, errorMessage } from '../util/errors.js';
import type { JobBlobs } from './blobs.js';
import { CronScheduler, addEvent } from './cron.js';
import { JobLogs, boundLogs } from './logs.js';
import { type ArtifactRecord, ENDED, type JobRecord, type JobRunRecord, type ResolvedInput, runArtifacts } from './records.js';
import type { JobStore, RunDispatch } from './dispatch.js';
import { JobRunner } from './runner.js';
import type { JobSpec } from './spec.js';
import { log } from '../logs/log.js';

/** How often a waiting client's run is read again when no event of this node's says it changed (a cluster's runs end elsewhere too). */
const WAIT_RECHECK_MS = 250;

export interface JobsOptions {
  dataDir: string;
  /** Most runs at once (default: the cpus this node has). */
  maxRunning?: number;
  /** Most runs waiting (default 1000). */
  queueBound?: number;
  /** Most bytes of job logs this node keeps (default MAX_JOB_LOG_BYTES): the oldest ended runs' go first. */
  maxLogBytes?: number;
  /** This node's tags (as they are now: an operator may change them) and platform, for `[targeting]`. */
  tags?: () => Promise<string[]>;
  platform?: string;
  /**
   * A cluster: where runs go (its scheduler places them) instead of this node's runner, how a
   * spec no node can run is refused, and cron firing only on the node that leads (see lead()).
   */
  cluster?: {
    dispatch: (logs: JobLogs) => RunDispatch;
    refuse: (spec: JobSpec) => Promise<void>;
  };
}

const RUN_ID = /^run-[0-9a-f]{12}$/;
/** Ended runs kept per job (older ones go, with their logs and artifact holds, as new ones come). */
export const KEEP_RUNS = 100;
/** Most bytes of job logs a node keeps by default, all jobs together. */
export const MAX_JOB_LOG_BYTES = 4 * 1024 ** 3;
/** Most bytes of one input (it passes through the daemon's memory once). */
export const MAX_INPUT_BYTES = 256 * 1024 ** 2;

/** A run as shown: a queued one's place in the queue, when its logs were dropped (see boundLogs). */
export type RunView = JobRunRecord & { position?: number; logDroppedAt?: number };

export interface JobView {
  job: JobRecord;
  runs: RunView[];
}

export class Jobs {
  readonly logs: JobLogs;
  private readonly runner: RunDispatch;
  private cron: CronScheduler | undefined;
  private readonly clustered: boolean;
  private readonly tags: () => Promise<string[]>;
  private readonly platform: string;
  private readonly maxLogBytes: number;
  private readonly refuse: (spec: JobSpec) => Promise<void>;
  /** The latest pass removing old runs (see prune). */
  private pruning = Promise.resolve();
  /** Waiters woken by a run that ended on another node of a cluster (seen by its watch of the runs). */
  private readonly endedElsewhereWaiters = new Set<() => void>();

  constructor(
    private readonly engine: Engine,
    private readonly store: JobStore,
    private readonly blobs: JobBlobs,
    opts: JobsOptions,
  ) {
    this.logs = new JobLogs(join(opts.dataDir, 'jobs', 'logs'));
    this.clustered = opts.cluster !== undefined;
    this.runner = opts.cluster
      ? opts.cluster.dispatch(this.logs)
      : new JobRunner(engine, store, blobs, this.logs, {
          maxRunning: opts.maxRunning ?? Math.max(1, availableParallelism()),
          queueBound: opts.queueBound ?? 1000,
        });
    this.refuse = opts.cluster?.refuse ?? ((spec) => this.refuseUntargetable(spec));
    // A run that ends may take its job past the bound: the oldest ended ones go then, not at the next submission.
    this.runner.onChange = (run) => {
      if (ENDED.includes(run.state)) void this.prune(run.job);
    };
    if (!this.clustered) this.cron = this.newCron();
    this.maxLogBytes = opts.maxLogBytes ?? MAX_JOB_LOG_BYTES;
    this.tags = opts.tags ?? (() => Promise.resolve([]));
    this.platform = opts.platform ?? `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`;
  }

  /** After a (re)start: lost attempts retried, the queue refilled, missed firings handled. */
  async start(): Promise<void> {
    await this.runner.recover();
    await this.cron?.recover();
    await this.boundLogs();
  }

  /**
   * Cluster: cron jobs fire on one node, the one whose scheduler leads (told here when it gains or
   * loses the lead); its catch-up of missed firings runs when it takes over.
   */
  async lead(leading: boolean): Promise<void> {
    if (!this.clustered || leading === (this.cron !== undefined)) return;
    this.cron?.close();
    this.cron = leading ? this.newCron() : undefined;
    await this.cron?.recover();
  }

  /** A job changed elsewhere in the cluster (a cron job submitted on another node). */
  jobsChanged(): void {
    this.cron?.changed();
  }

  private newCron(): CronScheduler {
    return new CronScheduler({
      store: this.store,
      fire: (job, firing, after) => this.newRun(job, job.spec, [], firing, after),
    });
  }

  async close(): Promise<void> {
    this.cron?.close();
    await this.runner.close();
    await this.pruning;
    await this.logs.settled();
  }

  /**
   * Submit a spec for `owner`. A batch job gets a run, queued now; a cron job is (re)scheduled.
   * `extraInputs` are inputs added by the client (e.g. files uploaded by `--input`).
   */
  async submit(spec: JobSpec, owner: string): Promise<{ job: JobRecord; run?: JobRunRecord }> {
    await this.refuse(spec);
    const existing = await this.store.getJob(spec.name);
    if (existing && !mayUse(owner, existing.owner))
      throw new RealmError('JOB_NAME_TAKEN', `another user has a job named ${spec.name}; pick another name`);
    // Inputs resolve before anything is kept: a missing one refuses the whole submission.
    const inputs = await this.resolveInputs(spec, owner);
    const now = Date.now();
    const job: JobRecord = existing
      ? { ...existing, spec, updatedAt: now }
      : {
          name: spec.name,
          ...(owner !== ROOT_OWNER ? { owner } : {}),
          spec,
          createdAt: now,
          updatedAt: now,
          runs: 0,
          events: [],
        };
    if (spec.type === 'cron') {
      job.lastFiring = now; // from now on: nothing before the submission is "missed"
      addEvent(job, {
        at: now,
        type: 'submitted',
        reason: `scheduled: ${spec.schedule?.cron.join(', ')} (${spec.schedule?.timezone})`,
      });
      await this.store.putJob(job);
      this.cron?.changed();
      return { job };
    }
    const run = await this.newRun(job, spec, inputs);
    return { job, run };
  }

  private async newRun(
    job: JobRecord,
    spec: JobSpec,
    inputs: ResolvedInput[],
    firing?: number,
    after?: string,
  ): Promise<JobRunRecord> {
    // A cron firing resolves its inputs when it fires (an artifact input is the latest then).
    const resolved = firing !== undefined ? await this.resolveInputs(spec, ownerOf(job)) : inputs;
    const run: JobRunRecord = {
      id: `run-${randomBytes(6).toString('hex')}`,
      job: job.name,
      n: job.runs + 1,
      ...(job.owner ? { owner: job.owner } : {}),
      state: 'queued',
      spec,
      inputs: resolved,
      createdAt: Date.now(),
      ...(firing !== undefined ? { firing } : {}),
      attempts: [],
    };
    for (const i of resolved) await this.blobs.addRef(i.sha256, ownerOf(job), `job-run:${run.id}`);
    try {
      await this.runner.enqueue(run, { ...job, runs: run.n }, after);
    } catch (e) {
      await this.dropRefs(run);
      throw e;
    }
    job.runs = run.n;
    // Old runs go after the answer (one pass at a time; a run's end prunes too).
    void this.prune(job.name);
    return run;
  }

  /**
   * Keep a job's latest KEEP_RUNS ended runs (a cron job firing every minute makes 1,440 a day).
   * One pass at a time, so no run is removed (and its holds given back) twice.
   */
  private prune(job: string): Promise<void> {
    this.pruning = this.pruning
      .then(() => this.pruneNow(job))
      .then(() => this.boundLogs())
      .catch((e: unknown) => log.warn(`job ${job}: old runs not removed: ${errorMessage(e)}`, { job }));
    return this.pruning;
  }

  /** The node's job logs back under their bound: the oldest ended runs' dropped, each run marked. */
  private async boundLogs(): Promise<void> {
    if (this.logs.total <= this.maxLogBytes) return;
    boundLogs(this.logs, await this.store.listJobRuns(), this.maxLogBytes);
  }

  private async pruneNow(job: string): Promise<void> {
    const ended = (await this.store.listJobRuns(job)).filter((r) => ENDED.includes(r.state));
    for (const r of ended.slice(0, Math.max(0, ended.length - KEEP_RUNS))) {
      await this.store.deleteJobRun(r.id);
      this.logs.remove(r.id);
      await this.dropRefs(r);
    }
  }

  private async refuseUntargetable(spec: JobSpec): Promise<void> {
    const t = spec.targeting;
    const why: string[] = [];
    const tags = t.tags.length ? await this.tags() : [];
    const missing = t.tags.filter((tag) => !tags.includes(tag));
    if (missing.length) why.push(`it has no tag ${missing.join(', ')} (its tags: ${tags.join(', ') || 'none'})`);
    if (t.platform && t.platform !== this.platform) why.push(`it is ${this.platform}, not ${t.platform}`);
    const driver = t.driver ?? spec.run.driver;
    if (t.driver && spec.run.driver && t.driver !== spec.run.driver)
      why.push(`[targeting] asks for the ${t.driver} driver and [run] for ${spec.run.driver}`);
    if (driver) {
      const info = (await this.engine.fingerprint()).find((d) => d.name === driver);
      if (!info?.available) why.push(`the ${driver} driver is not available${info?.reason ? ` (${info.reason})` : ''}`);
    }
    if (why.length) throw new RealmError('JOB_UNPLACEABLE', `no node can run job ${spec.name}: this node: ${why.join('; ')}`);
  }

  private async resolveInputs(spec: JobSpec, owner: string): Promise<ResolvedInput[]> {
    const out: ResolvedInput[] = [];
    for (const i of spec.inputs) {
      if (i.source) {
        const sha = i.source.slice('cas:sha256:'.length);
        const size = await this.blobs.size(sha, owner);
        if (size === undefined)
          throw new RealmError(
            'JOB_INPUT_NOT_FOUND',
            `input ${i.dest}: no blob ${sha} of yours in the store; upload it first (\`realm blob put FILE\`)`,
          );
        // An input passes through the daemon's memory once on its way into the sandbox.
        if (size > MAX_INPUT_BYTES)
          throw new RealmError(
            'FILE_TOO_LARGE',
            `input ${i.dest}: blob ${sha} is ${size} bytes; a job's input is at most ${MAX_INPUT_BYTES} bytes today (split it, or fetch it from the job over an allowed network)`,
          );
        out.push({ dest: i.dest, sha256: sha, size, unpack: i.unpack, mode: 0o644, from: i.source });
        continue;
      }
      const ref = i.artifact ?? '';
      const m = /^([^#:]+)(?:#([^:]+))?:(.+)$/.exec(ref);
      const [, jobOrRun = '', which, name = ''] = m ?? [];
      const run = await this.findRun(jobOrRun, which, owner);
      const art = runArtifacts(run).find((a) => a.name === name);
      if (!art)
        throw new RealmError(
          'JOB_INPUT_NOT_FOUND',
          `input ${i.dest}: run ${run.id} of ${run.job} has no artifact ${name} (it has: ${
            runArtifacts(run)
              .map((a) => a.name)
              .join(', ') || 'none'
          })`,
        );
      out.push({
        dest: i.dest,
        sha256: art.sha256,
        size: art.size,
        unpack: i.unpack,
        mode: art.mode & 0o777,
        from: `${run.job}#${run.n}:${name}`,
      });
    }
    return out;
  }

  /** JOB (its latest successful run), JOB#N or JOB#RUN-ID, or a run id. */
  private async findRun(jobOrRun: string, which: string | undefined, owner: string): Promise<JobRunRecord> {
    let run: JobRunRecord | null | undefined;
    if (RUN_ID.test(jobOrRun)) run = await this.store.getJobRun(jobOrRun);
    else {
      const runs = await this.store.listJobRuns(jobOrRun);
      run =
        which === undefined
          ? runs.filter((r) => r.state === 'succeeded').at(-1)
          : runs.find((r) => String(r.n) === which || r.id === which);
    }
    if (!run || !mayUse(owner, run.owner))
      throw new RealmError(
        'JOB_INPUT_NOT_FOUND',
        which === undefined && !RUN_ID.test(jobOrRun)
          ? `job ${jobOrRun} has no successful run of yours to take an artifact from`
          : `no run ${jobOrRun}${which ? `#${which}` : ''} of yours`,
      );
    return run;
  }

  /** A job by name, or the job of a run id, with its runs (queued ones with their position). */
  async get(ref: string, principal: string): Promise<JobView> {
    const run = RUN_ID.test(ref) ? await this.store.getJobRun(ref) : null;
    const job = await this.store.getJob(run ? run.job : ref);
    if (!job || !mayUse(principal, job.owner))
      throw new RealmError('JOB_NOT_FOUND', `no job or run ${ref}; see \`realm job ls\``);
    const runs = (await this.store.listJobRuns(job.name)).map((r) => this.view(r));
    return { job, runs };
  }

  /** The run a reference means: a run id, or a job's latest run. */
  async run(ref: string, principal: string): Promise<JobRunRecord> {
    const { runs } = await this.get(ref, principal);
    const run = RUN_ID.test(ref) ? runs.find((r) => r.id === ref) : runs.at(-1);
    if (!run) throw new RealmError('JOB_NOT_FOUND', `job ${ref} has not run yet`);
    return run;
  }

  /**
   * The run a reference means once it has ended, or as it is after `timeoutMs` (a client asks
   * again). A run that ends on this node is answered at once (its event on the bus); one that
   * ends on another node of a cluster as soon as this node's watch of the runs brings it
   * (endedElsewhere), and within WAIT_RECHECK_MS whatever happens.
   */
  async waitEnded(ref: string, principal: string, timeoutMs: number): Promise<RunView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let wake = (): void => undefined;
      const woken = new Promise<void>((r) => (wake = r));
      // Listen before reading: an end between the read and the wait is not missed.
      const offBus = this.engine.events.subscribe((e) => {
        if (e.type.startsWith('job.') && (ENDED as readonly string[]).includes(e.type.slice(4))) wake();
      });
      this.endedElsewhereWaiters.add(wake);
      const off = (): void => {
        offBus();
        this.endedElsewhereWaiters.delete(wake);
      };
      try {
        const run = await this.run(ref, principal);
        const left = deadline - Date.now();
        if (ENDED.includes(run.state) || left <= 0) return run;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([woken, new Promise<void>((r) => (timer = setTimeout(r, Math.min(left, WAIT_RECHECK_MS))))]);
        clearTimeout(timer);
      } finally {
        off();
      }
    }
  }

  /** A cluster's run ended on another node (this node's watch of the runs saw it): its waiters look again. */
  endedElsewhere(): void {
    for (const wake of this.endedElsewhereWaiters) wake();
  }

  async list(principal: string): Promise<JobView[]> {
    const jobs = (await this.store.listJobs()).filter((j) => mayUse(principal, j.owner));
    const runs = await this.store.listJobRuns();
    return jobs.map((job) => ({ job, runs: runs.filter((r) => r.job === job.name).map((r) => this.view(r)) }));
  }

  private view(r: JobRunRecord): RunView {
    const position = r.state === 'queued' ? this.runner.position(r.id) : undefined;
    const logDroppedAt = this.logs.dropped(r.id);
    return { ...r, ...(position ? { position } : {}), ...(logDroppedAt !== undefined ? { logDroppedAt } : {}) };
  }

  /** Cancel a run (a run id), or every active run of a job and its schedule (a name). */
  async cancel(ref: string, principal: string): Promise<JobRunRecord[]> {
    const { job, runs } = await this.get(ref, principal);
    const targets = runs.filter((r) => (RUN_ID.test(ref) ? r.id === ref : true) && !ENDED.includes(r.state));
    if (!targets.length && RUN_ID.test(ref)) throw new RealmError('JOB_NOT_ACTIVE', `run ${ref} has already ended`);
    for (const r of targets) await this.runner.cancel(r.id);
    if (!RUN_ID.test(ref) && job.spec.type === 'cron') {
      // A cancelled cron job stops firing (submit it again to resume).
      job.spec = { ...job.spec, type: 'batch' };
      delete job.spec.schedule;
      addEvent(job, { at: Date.now(), type: 'skipped', reason: 'cancelled: the schedule is off' });
      await this.store.putJob(job);
      this.cron?.changed();
    }
    return Promise.all(targets.map(async (r) => (await this.store.getJobRun(r.id)) ?? r));
  }

  /** Remove a job (with every run, log and artifact hold) or one ended run; refused while active. */
  async remove(ref: string, principal: string): Promise<void> {
    const { job, runs } = await this.get(ref, principal);
    const gone = RUN_ID.test(ref) ? runs.filter((r) => r.id === ref) : runs;
    const active = gone.filter((r) => !ENDED.includes(r.state));
    if (active.length)
      throw new RealmError(
        'JOB_BUSY',
        `${active.map((r) => r.id).join(', ')} has not ended; cancel it first (\`realm job cancel ${ref}\`)`,
      );
    for (const r of gone) {
      await this.store.deleteJobRun(r.id);
      this.logs.remove(r.id);
      await this.dropRefs(r);
    }
    if (!RUN_ID.test(ref)) {
      await this.store.deleteJob(job.name);
      // Only a schedule's removal changes when the next firing is (it re-reads every cron job).
      if (job.spec.type === 'cron') this.cron?.changed();
    }
  }

  /** Give back what a run held: its inputs and every attempt's artifacts. */
  private async dropRefs(run: JobRunRecord): Promise<void> {
    const shas = new Set([...run.inputs.map((i) => i.sha256), ...run.attempts.flatMap((a) => a.artifacts.map((x) => x.sha256))]);
    for (const sha of shas) await this.blobs.dropRef(sha, ownerOf(run), `job-run:${run.id}`);
  }

  /** An artifact's bytes (verified against its digest by the store). */
  artifact(art: ArtifactRecord, run: JobRunRecord): Promise<Buffer> {
    return this.blobs.read(art.sha256, ownerOf(run));
  }

  get running(): number {
    return this.runner.running;
  }
}
