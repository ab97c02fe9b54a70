/**
 * A run's state as an event on this node's bus (`GET /v1/events`): `job.queued`, `job.running`,
 * `job.retrying`, then `job.succeeded`, `job.failed` or `job.cancelled`. A lone node tells every
 * change; in a cluster each node tells what happened there (runs submitted or cancelled through
 * it, attempts it ran, attempts its scheduler found lost), with its id.
 */
import type { EventBus } from '../engine/events.js';
import type { JobRunRecord } from './records.js';

export function emitJobEvent(bus: EventBus, run: JobRunRecord, node?: string): void {
  bus.emit({
    type: `job.${run.state}`,
    owner: run.owner,
    ids: { job: run.job, run: run.id, ...(node ? { node } : {}) },
    data: { state: run.state, ...(run.reason ? { reason: run.reason } : {}), attempts: run.attempts.length },
  });
}
