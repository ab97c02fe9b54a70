/**
 * A service's generations and their rollouts, kept in its record (desired.ts): each push or
 * `svc restart` is a new generation that rolls out (reconciler.ts with rollout.ts) and ends
 * rolled-out, rolled-back (with the reason), failed (nothing to go back to) or superseded (a newer
 * push came first). `realm svc history NAME` shows them.
 */
import { createHash } from 'node:crypto';
import type { PackageRef } from '../packages/ref.js';
import type { GenerationEntry, Rollout, ServiceRecord, ServiceSpec } from './spec.js';

/** Generations kept per service (Kubernetes keeps 10 ReplicaSets, Nomad 6 job versions; these are small). */
export const HISTORY_MAX = 50;

/** JSON with object keys sorted, so equal specs hash alike whatever order their fields came in. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/** `sha256:HEX` of a spec. */
export function specDigest(spec: ServiceSpec): string {
  return `sha256:${createHash('sha256').update(canonical(spec)).digest('hex')}`;
}

/** The highest generation a record used (a rollback moves `generation` back; new ones go past every one). */
export function lastGeneration(rec: ServiceRecord): number {
  return Math.max(rec.generation, ...(rec.history ?? []).map((h) => h.generation));
}

/**
 * The record after a push or restart made generation `next` of `spec` (from package `pkg`): it
 * rolls out from the last generation that rolled out (the one a rollout under way started from,
 * when one is), whose spec and package a failure brings back.
 */
export function nextGeneration(
  held: ServiceRecord | undefined,
  spec: ServiceSpec,
  next: number,
  by: string,
  cause: GenerationEntry['cause'],
  now: number,
  pkg?: PackageRef,
): { rollout: Rollout; history: GenerationEntry[] } {
  let from: Rollout['from'] = null;
  if (held?.rollout) from = held.rollout.from;
  else if (held && outcomeOf(held, held.generation) === 'rolled-out')
    from = { generation: held.generation, spec: held.spec, ...(held.package ? { package: held.package } : {}) };
  const history = (held?.history ?? []).map((h) =>
    h.outcome === 'rolling-out' ? { ...h, outcome: 'superseded' as const, finishedAt: now } : h,
  );
  history.push({
    generation: next,
    digest: specDigest(spec),
    at: now,
    by,
    cause,
    ...(pkg ? { package: pkg } : {}),
    outcome: 'rolling-out',
    reason: null,
    finishedAt: null,
  });
  return { rollout: { startedAt: now, from }, history: history.slice(-HISTORY_MAX) };
}

/** How generation `g` ended (undefined: not in the history). A record from before rollouts counts as rolled out. */
export function outcomeOf(rec: ServiceRecord, g: number): GenerationEntry['outcome'] | undefined {
  if (!rec.history) return 'rolled-out';
  return [...rec.history].reverse().find((h) => h.generation === g)?.outcome;
}

/** The history with generation `g`'s rollout ended. */
export function settle(
  rec: ServiceRecord,
  g: number,
  outcome: 'rolled-out' | 'rolled-back' | 'failed',
  reason: string | null,
  now: number,
): GenerationEntry[] {
  return (rec.history ?? []).map((h) =>
    h.generation === g && h.outcome === 'rolling-out' ? { ...h, outcome, reason, finishedAt: now } : h,
  );
}
