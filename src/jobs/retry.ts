/**
 * What a run becomes after its latest attempt: ended (succeeded, cancelled, failed past its
 * retries) or retrying after its delay (constant or doubling up to max_delay). One rule for a lone
 * node's runner and the cluster's executor and scheduler.
 */
import type { AttemptRecord, JobRunRecord } from './records.js';

export type AfterAttempt =
  { state: 'succeeded' | 'failed' | 'cancelled'; reason: string } | { state: 'retrying'; reason: string; waitMs: number };

export function afterAttempt(run: JobRunRecord): AfterAttempt {
  const last = run.attempts.at(-1);
  const tries = run.attempts.length;
  if (last?.state === 'succeeded') return { state: 'succeeded', reason: `attempt ${tries} succeeded` };
  if (last?.state === 'cancelled') return { state: 'cancelled', reason: 'cancelled' };
  const why = last ? outcome(last) : 'no attempt';
  if (tries <= run.spec.retry.attempts) {
    const { delay, backoff, max_delay: max } = run.spec.retry;
    const waitMs = Math.min(backoff === 'exponential' ? delay * 2 ** (tries - 1) : delay, max);
    return { state: 'retrying', reason: `attempt ${tries} ${why}; retrying in ${waitMs} ms`, waitMs };
  }
  return { state: 'failed', reason: `attempt ${tries} ${why}${tries > 1 ? ` (after ${tries} attempts)` : ''}` };
}

/** The run as `next` says, at `now` (an ended run gets its end time; a retrying one its next start). */
export function applyAfter(run: JobRunRecord, next: AfterAttempt, now = Date.now()): void {
  run.state = next.state;
  run.reason = next.reason;
  if (next.state === 'retrying') run.nextAttemptAt = now + next.waitMs;
  else {
    run.endedAt = now;
    delete run.nextAttemptAt;
  }
}

function outcome(a: AttemptRecord): string {
  if (a.state === 'lost') return a.error ? `was lost: ${a.error}` : 'was lost (the daemon stopped)';
  if (a.error) return `failed: ${a.error}`;
  if (a.verdict === 'runtime-error') return `failed: exit ${a.exitCode ?? a.signal}`;
  return `ended: ${a.verdict ?? 'unknown'}`;
}
