/**
 * Where a node's runs go to run: its own runner (a lone node), or the cluster's scheduler, which
 * places each attempt on a node that fits. Jobs sees only this.
 */
import type { Store } from '../store/store.js';
import type { JobRecord, JobRunRecord } from './records.js';

/** What jobs keep: a node's own store, or the cluster's records in etcd. */
export type JobStore = Pick<
  Store,
  'putJob' | 'getJob' | 'listJobs' | 'deleteJob' | 'putJobRun' | 'getJobRun' | 'listJobRuns' | 'deleteJobRun'
>;

export interface RunDispatch {
  /**
   * Queue a new run (refused when the queue is full) and write its job as it now is (its run
   * count), together where the store allows. `after`: a run of the same job to wait for.
   */
  enqueue(run: JobRunRecord, job: JobRecord, after?: string): Promise<void>;
  /** After a (re)start. */
  recover(): Promise<void>;
  /** Cancel a run that has not ended; false when it has. */
  cancel(id: string): Promise<boolean>;
  close(): Promise<void>;
  /** A queued run's place in its queue, when known. */
  position(id: string): number | undefined;
  /** Attempts running on this node now. */
  readonly running: number;
  /** Called after a change of a run's state made here (Jobs removes old ended runs when one ends). */
  onChange: (run: JobRunRecord) => void;
}
