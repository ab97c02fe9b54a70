/**
 * Cron jobs fire on their schedule: one timer for the earliest next firing of all of them. A
 * firing while the job's last run is still active follows `overlap` (skip it; queue it, at most
 * one waiting; or allow both); firings missed while the node was down follow `missed`. Every
 * firing skipped or caught up is an event on the job, with its reason.
 */
import type { JobStore } from './dispatch.js';
import { errorMessage } from '../util/errors.js';
import { ENDED, type JobEvent, type JobRecord, type JobRunRecord } from './records.js';
import { missedFirings, nextFiring } from './schedule.js';
import { log } from '../logs/log.js';

/** setTimeout's longest wait; a later firing re-arms on waking. */
const MAX_WAIT = 2 ** 31 - 1;
const EVENTS_KEPT = 100;

export interface CronHost {
  store: JobStore;
  /** Make and queue a run of `job` for `firing`; `after`: an active run of it to wait for. */
  fire(job: JobRecord, firing: number, after?: string): Promise<JobRunRecord>;
}

export function addEvent(job: JobRecord, e: JobEvent): void {
  job.events.push(e);
  if (job.events.length > EVENTS_KEPT) job.events.splice(0, job.events.length - EVENTS_KEPT);
}

export class CronScheduler {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** One firing pass at a time (a pass that finds the next one due runs it too). */
  private pass: Promise<void> = Promise.resolve();

  constructor(private readonly host: CronHost) {}

  /** After a restart: the firings missed while down, per each job's `missed`; then the timer. */
  async recover(now = Date.now()): Promise<void> {
    for (const job of await this.cronJobs()) {
      const sched = job.spec.schedule;
      if (!sched || job.lastFiring === undefined) continue;
      const { run, skipped } = missedFirings(sched.cron, sched.timezone, new Date(job.lastFiring), new Date(now), sched.missed);
      for (const s of skipped)
        addEvent(job, { at: now, type: 'skipped', reason: `firing of ${s.at.toISOString()}: ${s.reason}` });
      for (const at of run) {
        try {
          const r = await this.host.fire(job, at.getTime());
          addEvent(job, {
            at: now,
            type: 'caught-up',
            run: r.id,
            reason: `firing of ${at.toISOString()} missed while the node was down; run now (missed = "${sched.missed}")`,
          });
        } catch (e) {
          addEvent(job, { at: now, type: 'skipped', reason: `firing of ${at.toISOString()}: ${errorMessage(e)}` });
        }
      }
      if (run.length || skipped.length) {
        job.lastFiring = now;
        await this.host.store.putJob(job);
      }
    }
    this.arm();
  }

  /** Re-read the schedule (a cron job added, changed or removed). */
  changed(): void {
    this.arm();
  }

  private async cronJobs(): Promise<JobRecord[]> {
    return (await this.host.store.listJobs()).filter((j) => j.spec.type === 'cron' && j.spec.schedule);
  }

  private arm(): void {
    if (this.closed) return;
    this.pass = this.pass.then(async () => {
      clearTimeout(this.timer);
      let next: number | undefined;
      for (const job of await this.cronJobs()) {
        const at = this.nextOf(job)?.getTime();
        if (at !== undefined && (next === undefined || at < next)) next = at;
      }
      if (next === undefined || this.closed) return;
      this.timer = setTimeout(() => this.wake(), Math.min(MAX_WAIT, Math.max(0, next - Date.now())));
      this.timer.unref();
    });
  }

  private nextOf(job: JobRecord): Date | undefined {
    const s = job.spec.schedule;
    return s ? nextFiring(s.cron, s.timezone, new Date(job.lastFiring ?? job.createdAt)) : undefined;
  }

  private wake(): void {
    this.pass = this.pass.then(async () => {
      const now = Date.now();
      for (const job of await this.cronJobs()) {
        const at = this.nextOf(job);
        if (!at || at.getTime() > now || this.closed) continue;
        await this.fireOne(job, at.getTime()).catch((e: unknown) =>
          log.warn(`cron job ${job.name}: ${errorMessage(e)}`, { job: job.name }),
        );
      }
    });
    this.arm();
  }

  private async fireOne(job: JobRecord, at: number): Promise<void> {
    const sched = job.spec.schedule;
    if (!sched) return;
    const when = new Date(at).toISOString();
    const active = (await this.host.store.listJobRuns(job.name)).filter((r) => !ENDED.includes(r.state));
    const running = active[0]; // the oldest active run: a queued firing waits for it
    if (running && sched.overlap === 'skip') {
      addEvent(job, {
        at: Date.now(),
        type: 'skipped',
        reason: `firing of ${when}: run ${running.id} is still ${running.state} (overlap = "skip")`,
      });
    } else if (running && sched.overlap === 'queue' && active.length > 1) {
      addEvent(job, {
        at: Date.now(),
        type: 'skipped',
        reason: `firing of ${when}: a firing already waits for run ${running.id} (overlap = "queue" holds one)`,
      });
    } else {
      try {
        const r = await this.host.fire(job, at, running && sched.overlap === 'queue' ? running.id : undefined);
        addEvent(job, { at: Date.now(), type: 'fired', run: r.id, reason: `firing of ${when}` });
      } catch (e) {
        addEvent(job, { at: Date.now(), type: 'skipped', reason: `firing of ${when}: ${errorMessage(e)}` });
      }
    }
    job.lastFiring = at;
    await this.host.store.putJob(job);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
