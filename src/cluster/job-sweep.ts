/**
 * What a node keeps for runs kept in etcd: their logs (of attempts run here) and its blob
 * references `job-run:RUN` (inputs fetched, artifacts collected here). The node that removes a run
 * (a user's `job rm`, or the bound of ended runs kept per job) may be another one, so every node
 * sweeps its own: at once for a run it sees deleted (a watch), and now and then for what it missed
 * (it was down then): what belongs to a run etcd no longer has goes. In that pass a reference is only
 * swept once it is older than a run's making takes (a reference is made just before its run is
 * written), and a log only when no attempt of its run is running here. The same watch tells this
 * node's waiting clients (`/wait`, `POST /v1/jobs?wait`) of a run that ended on another node.
 */
import type { Etcd3 } from 'etcd3';
import type { BlobStore } from '../blobs/store.js';
import type { JobLogs } from '../jobs/logs.js';
import { errorMessage } from '../util/errors.js';
import { LastingWatch } from './lasting-watch.js';
import { type EtcdJobStore, RUNS, watchedRecord } from './job-store.js';
import { log } from '../logs/log.js';
import { ENDED, type JobRunRecord } from '../jobs/records.js';

const EVERY_MS = 60_000;
/** A reference younger than this is never swept (its run may be being written). */
const YOUNG_MS = 60_000;
const REF = 'job-run:';

export class JobSweep {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private watch: LastingWatch | undefined;

  constructor(
    private readonly etcd: Etcd3,
    private readonly store: EtcdJobStore,
    private readonly logs: JobLogs,
    private readonly blobs: BlobStore,
    /** Runs with an attempt running here now (their logs are being written). */
    private readonly busy: () => Set<string>,
    /** A run record written ended (by any node): waiting clients here look again. */
    private readonly ended: () => void = () => undefined,
  ) {}

  async start(): Promise<void> {
    this.watch = new LastingWatch(
      'runs',
      () => this.etcd.watch().prefix(RUNS),
      (w) => {
        w.on('delete', (kv) => this.forget(kv.key.toString().slice(RUNS.length)));
        w.on('put', (kv) => {
          const state = watchedRecord<JobRunRecord>(kv.value)?.state;
          if (state && ENDED.includes(state)) this.ended();
        });
      },
      () => void this.sweep(),
    );
    await this.watch.start();
    this.timer = setInterval(() => void this.sweep(), EVERY_MS);
    this.timer.unref();
    void this.sweep();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.watch?.close();
    await this.sweeping;
  }

  /** One pass (none while etcd does not answer: nothing is removed on a guess). */
  async sweep(): Promise<void> {
    const pass = (this.sweeping ??= this.pass()
      .catch((e: unknown) => log.warn(`sweeping job leftovers: ${errorMessage(e)}`))
      .finally(() => (this.sweeping = undefined)));
    await pass;
  }

  /** A run deleted: its log here and this node's references for it go (no new one can come: run ids are not reused). */
  private forget(run: string): void {
    try {
      if (!this.busy().has(run)) this.logs.remove(run);
      for (const r of this.blobs.refsStartingWith(REF + run, Number.MAX_SAFE_INTEGER))
        if (r.ref === REF + run) this.blobs.dropRef(r.digest, r.owner, r.ref);
    } catch (e) {
      log.warn(`job run ${run} removed: its leftovers here stay until the next sweep: ${errorMessage(e)}`, { runId: run });
    }
  }

  private async pass(): Promise<void> {
    const refs = this.blobs.refsStartingWith(REF, Date.now() - YOUNG_MS);
    const logs = this.logs.runs();
    if (!refs.length && !logs.length) return;
    const kept = await this.store.runIds();
    const busy = this.busy();
    for (const run of logs) if (!kept.has(run) && !busy.has(run)) this.logs.remove(run);
    for (const r of refs) if (!kept.has(r.ref.slice(REF.length))) this.blobs.dropRef(r.digest, r.owner, r.ref);
  }
}
