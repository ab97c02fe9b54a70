/**
 * Jobs in a cluster: runs are written to etcd and queued there for the scheduler (whichever node
 * leads), which places each attempt on a node that fits; this node's executor runs what is placed
 * here. Cancelling a run that runs elsewhere withdraws its assignment, which stops it there.
 */
import type { Engine } from '../engine/engine.js';
import { ownerOf } from '../engine/owner.js';
import type { JobBlobs } from '../jobs/blobs.js';
import type { RunDispatch } from '../jobs/dispatch.js';
import type { Jobs } from '../jobs/jobs.js';
import type { JobLogs } from '../jobs/logs.js';
import { ENDED, type JobRecord, type JobRunRecord } from '../jobs/records.js';
import type { JobSpec } from '../jobs/spec.js';
import { emitJobEvent } from '../jobs/events.js';
import { RealmError } from '../util/errors.js';
import { Executor } from './executor.js';
import { refuseNowhere } from './job-placement.js';
import { EtcdJobStore, type Guard, QUEUE, type QueueEntry, assignKey } from './job-store.js';
import type { EtcdNodes } from './membership.js';
import { Scheduler } from './scheduler.js';
import { JobSweep } from './job-sweep.js';
import type { BlobStore } from '../blobs/store.js';

export class ClusterRuns implements RunDispatch {
  onChange: (run: JobRunRecord) => void = () => undefined;
  private executor: Executor | undefined;
  private scheduler: Scheduler | undefined;
  private sweep: JobSweep | undefined;
  /** Told when this node gains or loses the lead, besides the jobs (the services' placement uses the same election). */
  readonly leadListeners = new Set<(leading: boolean) => void>();

  constructor(
    private readonly nodes: EtcdNodes,
    private readonly store: EtcdJobStore,
    private readonly engine: Engine,
    private readonly blobs: JobBlobs,
    private readonly logs: JobLogs,
    private readonly blobStore: BlobStore,
    private readonly queueBound: number,
  ) {}

  /** Once the node has joined: run what is placed here, and campaign to schedule. */
  async join(jobs: Jobs): Promise<void> {
    this.executor = new Executor(this.nodes.client, this.store, this.engine, this.blobs, this.logs, {
      selfId: this.nodes.selfId,
      ttlMs: this.nodes.ttlMs,
      silentMs: () => this.nodes.silentMs(),
      onChange: (run) => this.onChange(run),
      told: (run) => this.told(run),
    });
    await this.executor.start();
    const executor = this.executor;
    this.sweep = new JobSweep(
      this.nodes.client,
      this.store,
      this.logs,
      this.blobStore,
      () => executor.runs(),
      () => jobs.endedElsewhere(),
    );
    await this.sweep.start();
    this.scheduler = new Scheduler(this.nodes.client, this.store, {
      selfId: this.nodes.selfId,
      ttlSeconds: this.nodes.ttlMs / 1000,
      fenced: () => this.nodes.fenced,
      list: () => this.nodes.list(),
      onLead: (leading) => {
        void jobs.lead(leading);
        for (const f of this.leadListeners) f(leading);
      },
      onJobs: () => jobs.jobsChanged(),
      told: (run) => this.told(run),
    });
    await this.scheduler.start();
  }

  /** While this node leads the cluster: the compare that fences its writes (scheduler.ts). */
  fence(): Guard | undefined {
    return this.scheduler?.fence();
  }

  /** JOB_UNPLACEABLE when no member could run it. */
  async refuse(spec: JobSpec): Promise<void> {
    refuseNowhere(await this.nodes.list(), spec);
  }

  async enqueue(run: JobRunRecord, job: JobRecord, after?: string): Promise<void> {
    if ((await this.store.queueLength()) >= this.queueBound)
      throw new RealmError(
        'CAPACITY_EXCEEDED',
        `the cluster's job queue is full (${this.queueBound} runs waiting); try again later, or cancel queued runs`,
        { retryAfter: 30 },
      );
    const entry: QueueEntry = { owner: ownerOf(run), createdAt: run.createdAt, ...(after ? { after } : {}) };
    await this.store.create(run, entry, job);
    this.told(run);
  }

  /** A run's state as an event on this node's bus, with this node's id. */
  private told(run: JobRunRecord): void {
    emitJobEvent(this.engine.events, run, this.nodes.selfId);
  }

  recover(): Promise<void> {
    return Promise.resolve(); // the executor and the scheduler start once the node has joined
  }

  async cancel(id: string): Promise<boolean> {
    const res = await this.store.update(id, (run) => {
      if (ENDED.includes(run.state)) return null;
      const now = Date.now();
      const last = run.attempts.at(-1);
      const running = run.state === 'running' && last?.state === 'running' ? last : undefined;
      if (running) Object.assign(running, { state: 'cancelled', endedAt: now, error: 'cancelled' });
      Object.assign(run, { state: 'cancelled', endedAt: now, reason: running ? 'cancelled' : 'cancelled before it ran' });
      delete run.nextAttemptAt;
      // Its assignment withdrawn: the node running it stops it.
      return { run, deletes: [QUEUE + id, ...(running?.node ? [assignKey(running.node, id)] : [])] };
    });
    if (res.done) {
      this.told(res.run);
      this.onChange(res.run);
    }
    return res.done;
  }

  position(): number | undefined {
    return undefined;
  }

  get running(): number {
    return this.executor?.running ?? 0;
  }

  async close(): Promise<void> {
    await this.scheduler?.close();
    await this.executor?.close();
    await this.sweep?.close();
  }
}
