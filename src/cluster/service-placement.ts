/**
 * Where a service's replicas run in a cluster: the leader's plan for one service, from where its
 * replicas are now. Replicas stay where they are while their node is up and fits (no moves for
 * balance); those of a node that went down, drains or no longer fits (its tags changed) are
 * placed again; new ones go, one at a time, to the node that fits with the fewest replicas of the
 * service (spread), then the least busy. Fewer wanted: the nodes with the most give theirs up
 * first. A service pinned to one node (a package's state volume lives there) runs only there. None
 * fits: the reason names every node's. Pure (test/unit/service-placement.test.ts).
 */
import type { ServiceSpec } from '../services/spec.js';
import { misfit } from './placement.js';
import type { Constraints, NodeView } from './types.js';

export interface ServicePlan {
  /** Replicas per node (nodes with none left out). */
  target: Map<string, number>;
  /** Why not every replica is placed; null when they are. */
  reason: string | null;
}

export function serviceWant(spec: ServiceSpec): Constraints {
  return { tags: spec.tags, driver: 'namespace', memoryBytes: spec.memory, cpus: spec.cpus };
}

/** The one node a service may run on, and why (its state volume is there). */
export interface Pin {
  node: string;
  why: string;
}

/** Why `node` may not take replicas (as misfit, and not the node the service is pinned to). */
function nodeMisfit(node: NodeView, want: Constraints, pin: Pin | undefined): string | null {
  if (pin && node.id !== pin.node) return pin.why;
  return misfit(node, want);
}

/** Why `node` may not keep replicas it has (as nodeMisfit, but a full node keeps what it runs). */
function keepMisfit(node: NodeView, want: Constraints, pin: Pin | undefined): string | null {
  const r = node.report;
  return nodeMisfit(r ? { ...node, report: { ...r, load: { ...r.load, sandboxes: 0 } } } : node, want, pin);
}

/**
 * `current`: replicas per node now; `busy`: every service's replicas per node (this plan's
 * changes are counted into it, so the next service's plan sees them).
 */
export function planService(
  name: string,
  spec: ServiceSpec,
  nodes: NodeView[],
  current: ReadonlyMap<string, number>,
  busy: Map<string, number>,
  pin?: Pin,
): ServicePlan {
  const want = serviceWant(spec);
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const target = new Map<string, number>();
  for (const [id, n] of current) {
    const node = byId.get(id);
    if (node && n > 0 && keepMisfit(node, want, pin) === null) target.set(id, n);
    else busy.set(id, Math.max(0, (busy.get(id) ?? 0) - n));
  }
  let total = [...target.values()].reduce((a, b) => a + b, 0);
  const give = (id: string, d: number): void => {
    const n = (target.get(id) ?? 0) + d;
    if (n > 0) target.set(id, n);
    else target.delete(id);
    busy.set(id, Math.max(0, (busy.get(id) ?? 0) + d));
    total += d;
  };
  while (total > spec.replicas) {
    const [id] = [...target.entries()].sort((a, b) => b[1] - a[1] || (busy.get(b[0]) ?? 0) - (busy.get(a[0]) ?? 0))[0] ?? [];
    if (id === undefined) break;
    give(id, -1);
  }
  const fit = nodes.filter((n) => nodeMisfit(n, want, pin) === null);
  const load = (n: NodeView): number => {
    const cap = n.report?.capacity.sandboxes ?? 1;
    return ((n.report?.load.sandboxes ?? 0) + (busy.get(n.id) ?? 0)) / Math.max(1, cap);
  };
  while (total < spec.replicas && fit.length) {
    const best = fit.reduce((a, b) => {
      const d = (target.get(b.id) ?? 0) - (target.get(a.id) ?? 0) || load(b) - load(a);
      return d < 0 || (d === 0 && b.id < a.id) ? b : a;
    });
    give(best.id, 1);
  }
  if (total >= spec.replicas) return { target, reason: null };
  const why = nodes.map((n) => `node ${n.id}: ${nodeMisfit(n, want, pin) ?? 'fits'}`).join('; ');
  return {
    target,
    reason: `${spec.replicas - total} of ${spec.replicas} replicas of service ${name} not placed: no node fits (${why}); ${
      pin
        ? `they wait for node ${pin.node} (or remove the service and deploy it again, with a new state volume)`
        : 'change its tags (realm push --tag), or tag a node (realm node tag)'
    }`,
  };
}
