/**
 * One step of a rollout (an update of a service, reconciler.ts), decided from what runs now: which
 * new replica to start, which old ones to stop, whether it is over or has failed. With a
 * generation to go back to, replicas are replaced one at a time — at most one more than wanted,
 * an old one going only once a new one is healthy (and has stayed so `minHealthyTime`); without
 * one (a first push, or after a failed generation) every missing replica starts at once.
 * Pure, so the policy is tested without sandboxes (test/unit/rollout.test.ts).
 */
import type { ServiceRecord } from './spec.js';

/** What a step looks at of a replica. */
export interface RolloutReplica {
  id: string;
  generation: number;
  startedAt: number;
  healthy: boolean;
  /** Since when it has passed its checks without a break (0: not healthy now). */
  healthySince: number;
  /** It passed a check once. */
  everHealthy: boolean;
  failures: number;
  exit: unknown;
}

export type RolloutStep<R> = { kind: 'fail'; reason: string } | { kind: 'step'; launch: number; stop: R[]; done: boolean };

function duration(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * The next step of `rec`'s rollout. `starting`: replicas of it being started now; `failure`: a
 * new replica that exited or could not start (the reconciler saw it).
 */
export function rolloutStep<R extends RolloutReplica>(
  rec: ServiceRecord,
  replicas: readonly R[],
  starting: number,
  now: number,
  failure?: string,
): RolloutStep<R> {
  if (failure) return { kind: 'fail', reason: failure };
  const { spec, generation } = rec;
  const { healthyDeadline, minHealthyTime } = spec.update;
  const live = replicas.filter((r) => !r.exit);
  const current = live.filter((r) => r.generation === generation);
  const old = live.filter((r) => r.generation !== generation);
  for (const r of current) {
    if (!r.everHealthy && now - r.startedAt > healthyDeadline)
      return { kind: 'fail', reason: `replica ${r.id} was not healthy within ${duration(healthyDeadline)} of its start` };
    if (r.everHealthy && !r.healthy && r.failures >= spec.health.threshold)
      return { kind: 'fail', reason: `replica ${r.id} failed ${r.failures} health checks in a row` };
  }
  const ready = current.filter((r) => r.healthy && now - r.healthySince >= minHealthyTime).length;
  const pending = current.length - ready + starting;
  const wanted = spec.replicas;
  const oneAtATime = Boolean(rec.rollout?.from);
  const launch = oneAtATime
    ? pending === 0 && current.length + starting < wanted
      ? 1
      : 0
    : Math.max(0, wanted - current.length - starting);
  // Old replicas go as ready new ones take their place (all at once when there is nothing to go back to).
  const surplus = oneAtATime ? Math.max(0, ready + old.length - wanted) : ready >= wanted ? old.length : 0;
  const stop = [...old].sort((a, b) => Number(a.healthy) - Number(b.healthy) || a.startedAt - b.startedAt).slice(0, surplus);
  return { kind: 'step', launch, stop, done: ready >= wanted && stop.length === old.length };
}
