/**
 * A cluster's jobs kept in etcd, next to its members, so any node shows and changes them and the
 * scheduler places their runs anywhere:
 * - `jobs/NAME` → the job; `runs/RUN` → the run, its attempts and where each ran;
 * - `queue/RUN` → a run waiting to be placed (its owner, and when it may start);
 * - `assign/NODE/RUN` → the attempt placed on NODE, bound to NODE's lease (it goes with the node);
 * - `results/RUN/N` → attempt N's outcome, created once: an attempt that ran twice across a
 *   partition still completes once.
 * A run that has ended is written once (as the node's own store does).
 */
import type { Etcd3 } from 'etcd3';
import type { JobStore } from '../jobs/dispatch.js';
import { ENDED, type JobRecord, type JobRunRecord } from '../jobs/records.js';
import { RealmError } from '../util/errors.js';
import { ownerOf } from '../engine/owner.js';
import { PREFIX, answered } from './etcd.js';

export const JOBS = `${PREFIX}jobs/`;
export const RUNS = `${PREFIX}runs/`;
export const QUEUE = `${PREFIX}queue/`;
export const ASSIGN = `${PREFIX}assign/`;
export const RESULTS = `${PREFIX}results/`;
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
    const all = await this.call(this.etcd.getAll().prefix(RUNS).strings(), 'listing runs');
    return Object.values(all)
      .map((raw) => JSON.parse(raw) as JobRunRecord)
      .filter((r) => job === undefined || r.job === job)
      .sort((a, b) => a.createdAt - b.createdAt || a.n - b.n);
  }

  /** The ids of every run kept. */
  async runIds(): Promise<Set<string>> {
    const keys = await this.call(this.etcd.getAll().prefix(RUNS).keys(), 'listing runs');
    return new Set(keys.map((k) => k.slice(RUNS.length)));
  }

  async deleteJobRun(id: string): Promise<void> {
    await this.call(
      this.etcd
        .if(RUNS + id, 'Create', '>', 0)
        .then(
          this.etcd.delete().key(RUNS + id),
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
        ...(next.run ? [this.etcd.put(RUNS + id).value(JSON.stringify(next.run))] : []),
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
