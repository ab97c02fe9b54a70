/**
 * Where a sandbox or run goes: a node that is up, not draining or fenced, of the platform asked
 * for, has the driver, every tag asked for and room — and, when asked, is the node named. Among those, the least loaded;
 * this node wins a tie (no hop). A request with no constraint stays here when this node fits.
 * None fits: NO_NODE_FITS, naming per node why not.
 */
import { RealmError } from '../util/errors.js';
import type { Constraints, NodeView } from './types.js';

/** linux/amd64 and linux/x86_64 are one platform (Go's and the kernel's names). */
const ALIASES: Record<string, string> = { amd64: 'x86_64', arm64: 'aarch64' };
const canonical = (p: string): string => p.replace(/[^/]+$/, (arch) => ALIASES[arch] ?? arch);
export const samePlatform = (a: string, b: string): boolean => canonical(a) === canonical(b);

/** Why `node` cannot take the request, or null when it can. */
export function misfit(node: NodeView, want: Constraints): string | null {
  if (node.state === 'down') return 'down';
  if (node.state === 'draining') return 'draining';
  if (node.fenced) return 'cut off from etcd (fenced)';
  const r = node.report;
  if (!r) return 'no report yet';
  const missing = want.tags.filter((t) => !node.tags.includes(t));
  if (missing.length) return `no tag ${missing.join(', ')}`;
  if (want.platform && !samePlatform(want.platform, r.platform)) return `it is ${r.platform}, not ${want.platform}`;
  if (want.driver && !r.drivers.includes(want.driver)) return `driver ${want.driver} unavailable`;
  if (want.memoryBytes !== undefined && want.memoryBytes > r.capacity.memoryBytes)
    return `memory ${gib(want.memoryBytes)} asked, it has ${gib(r.capacity.memoryBytes)}`;
  if (want.cpus !== undefined && want.cpus > r.capacity.cpus) return `${want.cpus} cpus asked, it has ${r.capacity.cpus}`;
  if (r.load.sandboxes >= r.capacity.sandboxes) return `full (${r.load.sandboxes} of ${r.capacity.sandboxes} sandboxes)`;
  return null;
}

const gib = (b: number): string => `${Math.round((b / 1024 ** 3) * 10) / 10} GiB`;

const load = (n: NodeView): number => (n.report ? n.report.load.sandboxes / Math.max(1, n.report.capacity.sandboxes) : 1);

export function place(nodes: NodeView[], want: Constraints): NodeView {
  const named = want.node === undefined ? nodes : nodes.filter((n) => n.id === want.node);
  if (want.node !== undefined && !named.length)
    throw new RealmError('NODE_NOT_FOUND', `no node "${want.node}"; \`realm node ls\` lists them`);
  const self = named.find((n) => n.self);
  const unconstrained = want.node === undefined && want.tags.length === 0 && !want.platform;
  if (unconstrained && self && misfit(self, want) === null) return self;
  const fit = named.filter((n) => misfit(n, want) === null);
  if (!fit.length) {
    const why = named.map((n) => `node ${n.id}: ${misfit(n, want) ?? 'fits'}`).join('; ');
    const asked = [
      ...(want.node ? [`node ${want.node}`] : []),
      ...want.tags.map((t) => `tag ${t}`),
      ...(want.platform ? [`platform ${want.platform}`] : []),
      ...(want.driver ? [`driver ${want.driver}`] : []),
    ];
    throw new RealmError(
      'NO_NODE_FITS',
      `no node can take this${asked.length ? ` (${asked.join(', ')})` : ''}: ${why}; change the tags, platform or driver asked for, or free a node`,
    );
  }
  return fit.reduce((best, n) => {
    const d = load(n) - load(best);
    return d < 0 || (d === 0 && n.self) ? n : best;
  });
}
