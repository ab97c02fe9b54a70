/**
 * Where a job's attempt may run: a node that fits its `[targeting]` (tags, platform, driver) and
 * has a free job slot. A spec no member could ever run is refused at submission, naming per node
 * why not; one that only waits for a node to come back, drain off or free a slot is queued.
 */
import type { JobSpec } from '../jobs/spec.js';
import { RealmError } from '../util/errors.js';
import { misfit, samePlatform } from './placement.js';
import type { NodeView } from './types.js';

export interface JobWant {
  tags: string[];
  driver?: string | undefined;
  platform?: string | undefined;
  memoryBytes: number;
  cpus: number;
}

export function wantOf(spec: JobSpec): JobWant {
  return {
    tags: spec.targeting.tags,
    driver: spec.targeting.driver ?? spec.run.driver,
    platform: spec.targeting.platform,
    memoryBytes: spec.run.memory,
    cpus: spec.run.cpus,
  };
}

export { samePlatform };

/** A node's job slots: what it reported, else one per cpu. */
export const jobSlots = (n: NodeView): number => n.report?.capacity.jobs ?? n.report?.capacity.cpus ?? 0;

/** Why `node` cannot take an attempt now (running `busy` of its slots), or null. */
export function jobMisfit(node: NodeView, want: JobWant, busy: number): string | null {
  const m = misfit(node, want);
  if (m) return m;
  const slots = jobSlots(node);
  if (busy >= slots) return `busy (${busy} of ${slots} job slots)`;
  return null;
}

/** Why `node` could never take it (down, draining or busy nodes may later), or null. */
function never(node: NodeView, want: JobWant): string | null {
  const missing = want.tags.filter((t) => !node.tags.includes(t));
  if (missing.length) return `no tag ${missing.join(', ')}`;
  const r = node.report;
  if (!r) return null; // down: what it can run is known when it is back
  if (want.driver && !r.drivers.includes(want.driver)) return `driver ${want.driver} unavailable`;
  if (want.platform && !samePlatform(want.platform, r.platform)) return `it is ${r.platform}, not ${want.platform}`;
  // The fixed part of the report (drivers, platform, size), as placement words it.
  return misfit({ ...node, state: 'up', fenced: false, report: { ...r, load: { ...r.load, sandboxes: 0 } } }, want);
}

/** JOB_UNPLACEABLE when no member of the cluster could run `spec`, with every node's reason. */
export function refuseNowhere(nodes: NodeView[], spec: JobSpec): void {
  const want = wantOf(spec);
  const why = nodes.map((n) => ({ n, why: never(n, want) }));
  if (why.some((w) => w.why === null)) return;
  throw new RealmError(
    'JOB_UNPLACEABLE',
    `no node can run job ${spec.name}: ${why.map((w) => `node ${w.n.id}: ${w.why ?? ''}`).join('; ')}; change its [targeting], or tag a node (realm node tag)`,
  );
}
