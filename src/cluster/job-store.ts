/**
 * A cluster's jobs kept in etcd, next to its members, so any node shows and changes them and the
 * scheduler places their runs anywhere:
 * - `jobs/NAME` → the job; `runs/RUN` → the run, its attempts and where each ran;
 * - `queue/RUN` → a run waiting to be placed (its owner, and when it may start);
 * - `assign/NODE/RUN` → the attempt placed on NODE, bound to NODE's lease (it goes with the node);
 * - `results/RUN/N` → attempt N's outcome, created once: an attempt that ran twice across a
 *   partition still completes once;
 * - `byjob/JOB/RUN` → nothing: the runs of one job, listed by one range read of keys (not of every run);
 * - `live/RUN` → what the scheduler needs of a run that has not ended (its state, targeting, last
 *   attempt), written in the same transaction as the run and deleted when it ends: one range read
 *   gives the scheduler every run it may have to place or find lost, whatever the history kept.
 * A run that has ended is written once (as the node's own store does).
 */
import type { Etcd3 } from 'etcd3';
import type { JobStore } from '../jobs/dispatch.js';
import { type AttemptState, ENDED, type JobRecord, type JobRunRecord } from '../jobs/records.js';
import { RealmError } from '../util/errors.js';
import { ownerOf } from '../engine/owner.js';
import { PREFIX, answered } from './etcd.js';
import { type JobWant, wantOf } from './job-placement.js';

export const JOBS = `${PREFIX}jobs/`;
export const RUNS = `${PREFIX}runs/`;
export const QUEUE = `${PREFIX}queue/`;
export const ASSIGN = `${PREFIX}assign/`;
export const RESULTS = `${PREFIX}results/`;
export const LIVE = `${PREFIX}live/`;
export const BY_JOB = `${PREFIX}byjob/`;
export const byJobKey = (job: string, run: string): string => `${BY_JOB}${job}/${run}`;
/** Reads in one transaction at most (etcd's --max-txn-ops is 128 by default). */
const TXN_OPS = 100;
export const assignKey = (node: string, run: string): string => `${ASSIGN}${node}/${run}`;
export const resultKey = (run: string, attempt: number): string => `${RESULTS}${run}/${attempt}`;

/** A run waiting for the scheduler. */
export interface QueueEntry {
  owner: string;
  createdAt: number;
  /** A retry waits until then. */
  notBefore?: number;
  /** A run of the same job (overlap = "queue") that must end first. */
  after?: string;
}

/** An attempt placed on a node, as the scheduler wrote it. */
export interface Assignment {
  attempt: number;
  /** The scheduler's fencing token (its election key's revision) when it placed it. */
  token: string;
}

/** A run that has not ended, as the scheduler reads it (`live/RUN`). */
export interface LiveRun {
  state: JobRunRecord['state'];
  want: JobWant;
  reason?: string;
  /** Its latest attempt: a running one whose assignment is gone was lost with its node. */
  last?: { n: number; state: AttemptState; node?: string };
}

export function liveOf(run: JobRunRecord): LiveRun {
  const last = run.attempts.at(-1);
  return {
    state: run.state,
    want: wantOf(run.spec),
    ...(run.reason ? { reason: run.reason } : {}),
    ...(last ? { last: { n: last.n, state: last.state, ...(last.node ? { node: last.node } : {}) } } : {}),
  };
}

export const CALL_MS = 3000;

/** A run going back to the queue for its retry (after its delay), as a put; none when it is not retrying. */
export function retryPuts(run: JobRunRecord): { key: string; value: string }[] {
  if (run.state !== 'retrying') return [];
  const entry: QueueEntry = { owner: ownerOf(run), createdAt: run.createdAt, notBefore: run.nextAttemptAt };
  return [{ key: QUEUE + run.id, value: JSON.stringify(entry) }];
}

/** One compare of a transaction: key, what to compare, how, with what. */
export type Guard = [
  key: string,
  column: 'Create' | 'Mod' | 'Version' | 'Lease',
  cmp: '==' | '>' | '<' | '!=',
  value: string | number,
];

/** What a change of a run writes besides the run: more keys to put or delete, more guards. */
export interface RunChange {
  /** The run as it is to be written; null: leave it as it is (only the ops). */
  run: JobRunRecord | null;
  guards?: Guard[];
  puts?: { key: string; value: string; lease?: string }[];
  deletes?: string[];
}

export type UpdateResult = { done: true; run: JobRunRecord } | { done: false; why: 'unchanged' | 'refused' | 'gone' };

const json = <T>(raw: string | null): T | null => (raw === null ? null : (JSON.parse(raw) as T));

/** A job or run record as a watch brings it (its JSON); undefined for a value that is not one. */
export function watchedRecord<T extends JobRecord | JobRunRecord>(value: Buffer): T | undefined {
  try {
    return JSON.parse(value.toString()) as T;
  } catch {
    return undefined;
  }
}

export class EtcdJobStore implements JobStore {
  constructor(private readonly etcd: Etcd3) {}

  private call<T>(p: Promise<T>, what: string): Promise<T> {
    return answered(p, CALL_MS, what);
  }

  async putJob(rec: JobRecord): Promise<void> {
    await this.call(
      this.etcd
        .put(JOBS + rec.name)
        .value(JSON.stringify(rec))
        .exec(),
      'writing a job',
    );
  }

  async getJob(name: string): Promise<JobRecord | null> {
    return json<JobRecord>(await this.call(this.etcd.get(JOBS + name).string(), 'reading a job'));
  }

  async listJobs(): Promise<JobRecord[]> {
    const all = await this.call(this.etcd.getAll().prefix(JOBS).strings(), 'listing jobs');
    return Object.values(all)
      .map((raw) => JSON.parse(raw) as JobRecord)
      .sort((a, b) => a.createdAt - b.createdAt);
  }

  async deleteJob(name: string): Promise<void> {
    await this.call(
      this.etcd
        .delete()
        .key(JOBS + name)
        .exec(),
      'removing a job',
    );
  }

  /** Written unless the stored run has ended (then false). */
  async putJobRun(rec: JobRunRecord): Promise<boolean> {
    const res = await this.update(rec.id, () => ({ run: rec }), true);
    return res.done;
  }

  async getJobRun(id: string): Promise<JobRunRecord | null> {
    return json<JobRunRecord>(await this.call(this.etcd.get(RUNS + id).string(), 'reading a run'));
  }

  async listJobRuns(job?: string): Promise<JobRunRecord[]> {
    const raws =
      job === undefined
        ? Object.values(await this.call(this.etcd.getAll().prefix(RUNS).strings(), 'listing runs'))
        : await this.runsOf(job);
    return raws
      .map((raw) => JSON.parse(raw) as JobRunRecord)
      .filter((r) => job === undefined || r.job === job)
      .sort((a, b) => a.createdAt - b.createdAt || a.n - b.n);
  }

  /** One job's runs: their ids from its `byjob/` keys, then the runs, a transaction of gets per hundred. */
  private async runsOf(job: string): Promise<string[]> {
    const keys = await this.call(this.etcd.getAll().prefix(`${BY_JOB}${job}/`).keys(), 'listing runs');
    const ids = keys.map((k) => k.slice(`${BY_JOB}${job}/`.length));
    const out: string[] = [];
    for (let i = 0; i < ids.length; i += TXN_OPS) {
      const gets = ids.slice(i, i + TXN_OPS).map((id) => this.etcd.get(RUNS + id));
      const res = await this.call(
        this.etcd
          .if(RUNS, 'Create', '==', 0)
          .then(...gets)
          .commit(),
        'reading runs',
      );
      for (const r of res.responses) for (const kv of r.response_range?.kvs ?? []) out.push(kv.value.toString());
    }
    return out;
  }

  /** Index runs kept before `byjob/` keys were (once per scheduler's lead; none is missing after). */
  async indexByJob(runs: JobRunRecord[]): Promise<void> {
    const have = new Set(await this.call(this.etcd.getAll().prefix(BY_JOB).keys(), 'listing runs'));
    // Only for a run still kept: one removed meanwhile gets no key.
    for (const r of runs.filter((x) => !have.has(byJobKey(x.job, x.id))))
      await this.call(
        this.etcd
          .if(RUNS + r.id, 'Create', '>', 0)
          .then(this.etcd.put(byJobKey(r.job, r.id)).value(''))
          .commit(),
        'indexing runs',
      );
  }

  /** The ids of every run kept. */
  async runIds(): Promise<Set<string>> {
    const keys = await this.call(this.etcd.getAll().prefix(RUNS).keys(), 'listing runs');
    return new Set(keys.map((k) => k.slice(RUNS.length)));
  }

  async deleteJobRun(id: string): Promise<void> {
    const run = await this.getJobRun(id);
    if (!run) return;
    await this.call(
      this.etcd
        .if(RUNS + id, 'Create', '>', 0)
        .then(
          this.etcd.delete().key(RUNS + id),
          this.etcd.delete().key(byJobKey(run.job, id)),
          this.etcd.delete().key(LIVE + id),
          this.etcd.delete().key(QUEUE + id),
          this.etcd.delete().prefix(`${RESULTS}${id}/`),
        )
        .commit(),
      'removing a run',
    );
  }

  /** A new run, its place in the queue and its job (its run count), in one transaction. */
  async create(run: JobRunRecord, entry: QueueEntry, job: JobRecord): Promise<void> {
    const txn = await this.call(
      this.etcd
        .if(RUNS + run.id, 'Create', '==', 0)
        .then(
          this.etcd.put(RUNS + run.id).value(JSON.stringify(run)),
          this.etcd.put(LIVE + run.id).value(JSON.stringify(liveOf(run))),
          this.etcd.put(byJobKey(run.job, run.id)).value(''),
          this.etcd.put(QUEUE + run.id).value(JSON.stringify(entry)),
          this.etcd.put(JOBS + job.name).value(JSON.stringify(job)),
        )
        .commit(),
      'queueing a run',
    );
    if (!txn.succeeded) throw new RealmError('INTERNAL', `run id ${run.id} is taken; submit again`);
  }

  async queueLength(): Promise<number> {
    return this.call(this.etcd.getAll().prefix(QUEUE).count(), 'counting the queue');
  }

  /**
   * Read-modify-write of a run, guarded by its revision and `change`'s guards, all in one
   * transaction. Re-read and re-decided when the run changed meanwhile; `refused` when one of the
   * other guards failed (the caller's premise is gone: its lease, its assignment, the lead).
   * `change` returns null to write nothing. An ended run is never written again.
   */
  async update(id: string, change: (run: JobRunRecord) => RunChange | null, create = false): Promise<UpdateResult> {
    for (let i = 0; i < 20; i++) {
      const res = await this.call(this.etcd.get(RUNS + id).exec(), 'reading a run');
      const kv = res.kvs[0];
      if (!kv && !create) return { done: false, why: 'gone' };
      const cur = kv ? (JSON.parse(kv.value.toString()) as JobRunRecord) : null;
      if (cur && ENDED.includes(cur.state)) return { done: false, why: 'unchanged' };
      const next = change(cur ?? ({} as JobRunRecord));
      if (!next) return { done: false, why: 'unchanged' };
      let txn = kv ? this.etcd.if(RUNS + id, 'Mod', '==', kv.mod_revision) : this.etcd.if(RUNS + id, 'Create', '==', 0);
      for (const [key, column, cmp, value] of next.guards ?? []) txn = txn.and(key, column, cmp, value);
      const ops = [
        ...(next.run
          ? [
              this.etcd.put(RUNS + id).value(JSON.stringify(next.run)),
              ...(kv ? [] : [this.etcd.put(byJobKey(next.run.job, id)).value('')]),
              ENDED.includes(next.run.state)
                ? this.etcd.delete().key(LIVE + id)
                : this.etcd.put(LIVE + id).value(JSON.stringify(liveOf(next.run))),
            ]
          : []),
        ...(next.puts ?? []).map((p) => {
          const op = this.etcd.put(p.key).value(p.value);
          return p.lease ? op.lease(p.lease) : op;
        }),
        ...(next.deletes ?? []).map((k) => this.etcd.delete().key(k)),
      ];
      const out = await this.call(
        txn
          .then(...ops)
          .else(this.etcd.get(RUNS + id))
          .commit(),
        'writing a run',
      );
      if (out.succeeded) return next.run ? { done: true, run: next.run } : { done: true, run: cur ?? ({} as JobRunRecord) };
      const now = out.responses[0]?.response_range?.kvs[0];
      // The run is as it was: another guard failed.
      if ((now?.mod_revision ?? '0') === (kv?.mod_revision ?? '0')) return { done: false, why: 'refused' };
    }
    throw new RealmError('CLUSTER_UNAVAILABLE', `run ${id} kept changing under this write; try again`);
  }
}
