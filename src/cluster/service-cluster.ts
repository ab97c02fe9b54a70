/**
 * Services across a cluster. Desired state is in etcd (service-desired.ts); this part is the rest:
 * - the leader (the jobs scheduler's, by the same election and fencing token) assigns each
 *   service's replicas to nodes (service-placement.ts) as `svc/place/NAME/NODE` → {replicas},
 *   written under NODE's lease: a node that dies takes its assignments with it, and the next pass
 *   places those replicas on the others; a node that comes back finds none of its old ones;
 * - each node runs its share (the reconciler, fed the desired state with `replicas` set to it)
 *   and reports the replicas it runs as `svc/state/NAME/NODE`, also under its lease, so any node
 *   shows every replica and its node, and the gateway knows which nodes have a healthy one;
 * - the leader notes why replicas are not placed (`svc/status/NAME`) and ends a rollout once the
 *   reports show the new generation healthy everywhere and no old replica left.
 * Every node watches `svc/` and keeps what it read in memory.
 */
import type { ServiceRecord } from '../services/spec.js';
import { errorMessage } from '../util/errors.js';
import { log } from '../logs/log.js';
import { PREFIX, answered } from './etcd.js';
import { LastingWatch } from './lasting-watch.js';
import type { Guard } from './job-store.js';
import type { EtcdNodes } from './membership.js';
import { SVC, SVC_PLACE, SVC_SPEC, SVC_STATE, SVC_STATUS } from './service-desired.js';
import { planService } from './service-placement.js';
import type { LeaseClock } from './service-disconnect.js';
import { stateNode } from '../packages/ref.js';
import type { NodeView } from './types.js';
import { SerialPasses } from '../util/serial-passes.js';

const ALIVE = `${PREFIX}alive/`;
const NODES = `${PREFIX}nodes/`;
const CALL_MS = 3000;

/** One replica as its node reports it. */
export interface ReplicaReport {
  id: string;
  sandbox: string;
  process: string;
  healthy: boolean;
  generation: number;
  startedAt: number;
}

/** A node's replicas of one service, and what went wrong with them. */
export interface NodeServiceReport {
  replicas: ReplicaReport[];
  restarts: number;
  lastError: string | null;
}

/** What the leader needs of the jobs scheduler: its fence, and word when the lead changes. */
export interface Leadership {
  fence(): Guard | undefined;
  readonly leadListeners: Set<(leading: boolean) => void>;
}

const split = (rest: string): [string, string] => {
  const i = rest.indexOf('/');
  return [rest.slice(0, i), rest.slice(i + 1)];
};

export class ServiceCluster {
  /** NAME → NODE → replicas assigned, and the lease they were written under (the node's). */
  private readonly places = new Map<string, Map<string, { replicas: number; lease: string }>>();
  /** NAME → NODE → its report. */
  private readonly reports = new Map<string, Map<string, NodeServiceReport>>();
  /** NAME → why not every replica is placed. */
  private readonly reasons = new Map<string, string>();
  /** What this node last wrote of its replicas, per service. */
  private readonly written = new Map<string, string>();
  private watch: LastingWatch | undefined;
  private tick: NodeJS.Timeout | undefined;
  private leadership: Leadership | undefined;
  private readonly passes = new SerialPasses(
    () => this.pass(),
    () => !this.closed && !!this.leadership?.fence(),
    (e: unknown) => log.warn(`placing services: ${errorMessage(e)}`, { err: e }),
  );
  private closed = false;
  private readonly turn = new Map<string, number>();
  /** Told when this node's share of any service changed (the reconciler looks again). */
  onShares: (() => void) | undefined;
  /** The desired state (desired.ts's), read by the leader's passes. */
  desired: () => ServiceRecord[] = () => [];
  /** Ends a rollout (desired.ts's finishRollout), on the leader. */
  finish: (name: string, generation: number) => Promise<unknown> = () => Promise.resolve();

  constructor(private readonly nodes: EtcdNodes) {
    // A new lease (joined, rejoined): what was placed under the old one is no longer this node's.
    // Its reports went with the old lease too: written again under the new one.
    nodes.leaseListeners.add(() => {
      this.written.clear();
      this.onShares?.();
    });
  }

  get selfId(): string {
    return this.nodes.selfId;
  }

  get client(): EtcdNodes['client'] {
    return this.nodes.client;
  }

  /** This node's lease TTL in ms. */
  get ttlMs(): number {
    return this.nodes.ttlMs;
  }

  /**
   * The longest lease TTL of the nodes not down, and whose it is (a service's
   * disconnect.stopAfter is at least this: a replica may be placed on any of them). A node of an
   * older release, which reports none, counts as this node's own.
   */
  async longestTtl(): Promise<{ ms: number; node: string }> {
    let longest = { ms: this.ttlMs, node: this.selfId };
    for (const n of await this.nodes.list()) {
      const ms = n.report?.leaseTtlMs;
      if (n.state !== 'down' && ms !== undefined && ms > longest.ms) longest = { ms, node: n.id };
    }
    return longest;
  }

  /** This node's lease: which it holds, and since when it was last known alive. */
  get clock(): LeaseClock {
    return this.nodes;
  }

  /**
   * Read what is placed and reported, then follow it from just after that read. Read again from
   * scratch when etcd ends the watch (it compacted the history the watch was to resume from, after
   * a long cut): a node must not act for ever on what it read before it was cut off.
   */
  async start(): Promise<void> {
    const read = await this.read();
    this.watch = new LastingWatch(
      'the services',
      () => this.nodes.client.watch().prefix(PREFIX),
      (w) =>
        w.on('data', (res) => {
          let shares = false;
          let lead = false;
          for (const e of res.events) {
            const key = e.kv.key.toString();
            if (key.startsWith(SVC)) {
              if (this.apply(e.type, key, e.kv.value.toString(), e.kv.lease)) shares = true;
              lead = true;
            } else if (key.startsWith(ALIVE) || key.startsWith(NODES)) lead = true;
          }
          if (shares) this.onShares?.();
          if (lead) this.kick();
        }),
      async () => {
        const revision = await this.read();
        this.onShares?.();
        this.kick();
        return revision;
      },
    );
    await this.watch.start(read);
  }

  /** Everything under `svc/`, kept in place of what was known; the revision read at. */
  private async read(): Promise<string> {
    const res = await answered(this.nodes.client.getAll().prefix(SVC).exec(), CALL_MS, 'reading the services');
    this.places.clear();
    this.reports.clear();
    this.reasons.clear();
    this.written.clear();
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      this.apply('Put', key, kv.value.toString(), kv.lease);
      if (key.startsWith(SVC_STATE) && key.endsWith(`/${this.selfId}`))
        this.written.set(split(key.slice(SVC_STATE.length))[0], kv.value.toString());
    }
    return res.header.revision;
  }

  /** Keep one key's change; true when it changed this node's share. */
  private apply(type: 'Put' | 'Delete', key: string, value: string, lease: string): boolean {
    const put = type === 'Put';
    if (key.startsWith(SVC_PLACE)) {
      const [name, node] = split(key.slice(SVC_PLACE.length));
      const m = this.places.get(name) ?? new Map<string, { replicas: number; lease: string }>();
      if (put) m.set(node, { replicas: (JSON.parse(value) as { replicas: number }).replicas, lease });
      else m.delete(node);
      if (m.size) this.places.set(name, m);
      else this.places.delete(name);
      return node === this.selfId;
    }
    if (key.startsWith(SVC_STATE)) {
      const [name, node] = split(key.slice(SVC_STATE.length));
      const m = this.reports.get(name) ?? new Map<string, NodeServiceReport>();
      if (put) m.set(node, JSON.parse(value) as NodeServiceReport);
      else m.delete(node);
      if (m.size) this.reports.set(name, m);
      else this.reports.delete(name);
      // This node's report gone (its lease ended, it rejoined): written again at the next pass.
      if (!put && node === this.selfId) this.written.delete(name);
      return false;
    }
    if (key.startsWith(SVC_STATUS)) {
      const name = key.slice(SVC_STATUS.length);
      if (put) this.reasons.set(name, (JSON.parse(value) as { reason: string }).reason);
      else this.reasons.delete(name);
    }
    return false;
  }

  /**
   * This node's share of service `name`: what is placed here under its current lease. One placed
   * under a lease it had before is not its own any more (that lease ended, or ends, and the key
   * with it), even while this node has not seen the key go: a node that was cut off and took a new
   * lease runs only what the cluster placed since.
   */
  share(name: string): number {
    const p = this.places.get(name)?.get(this.selfId);
    return p && p.lease === this.nodes.currentLease ? p.replicas : 0;
  }

  /** Replicas per node, as the leader placed them. */
  placement(name: string): { node: string; replicas: number }[] {
    return [...(this.places.get(name) ?? [])]
      .map(([node, p]) => ({ node, replicas: p.replicas }))
      .sort((a, b) => a.node.localeCompare(b.node));
  }

  reason(name: string): string | null {
    return this.reasons.get(name) ?? null;
  }

  /** What the other nodes report of their replicas of `name`. */
  others(name: string): [string, NodeServiceReport][] {
    return [...(this.reports.get(name) ?? [])].filter(([node]) => node !== this.selfId);
  }

  /** Another node with a healthy replica of `name`, in turn; undefined when none has. */
  async healthyElsewhere(name: string): Promise<NodeView | undefined> {
    const ids = this.others(name)
      .filter(([, r]) => r.replicas.some((x) => x.healthy))
      .map(([node]) => node);
    const up = (await this.nodes.list()).filter((n) => ids.includes(n.id) && n.state !== 'down');
    if (!up.length) return undefined;
    const t = (this.turn.get(name) ?? 0) + 1;
    this.turn.set(name, t);
    return up[t % up.length];
  }

  /** Whether another node still reports replicas of `name`. */
  runsElsewhere(name: string): boolean {
    return this.others(name).some(([, r]) => r.replicas.length > 0);
  }

  private reporting: Promise<void> = Promise.resolve();

  /** This node's replicas of each service, written where they changed (reports of services it no longer runs go); one at a time. */
  report(mine: Map<string, NodeServiceReport>): Promise<void> {
    this.reporting = this.reporting.then(() => this.reportNow(mine));
    return this.reporting;
  }

  private async reportNow(mine: Map<string, NodeServiceReport>): Promise<void> {
    for (const [name, rep] of mine) {
      const keep = rep.replicas.length > 0 || rep.lastError !== null;
      const json = keep ? JSON.stringify(rep) : null;
      if ((this.written.get(name) ?? null) === json) continue;
      await this.write(name, json);
    }
    for (const name of [...this.written.keys()]) if (!mine.has(name)) await this.write(name, null);
  }

  private async write(name: string, json: string | null): Promise<void> {
    const key = `${SVC_STATE}${name}/${this.selfId}`;
    try {
      if (json === null) {
        await answered(this.nodes.client.delete().key(key).exec(), CALL_MS, 'removing a service report');
        this.written.delete(name);
      } else {
        await this.nodes.putLeased(key, json);
        this.written.set(name, json);
      }
    } catch (e) {
      // etcd away or the lease being replaced: tried again at the next pass.
      log.debug(`services: reporting ${name}: ${errorMessage(e)}`);
    }
  }

  /** Once the node has joined: place replicas while this node leads. */
  join(leadership: Leadership): void {
    this.leadership = leadership;
    leadership.leadListeners.add((leading) => {
      if (leading) this.kick();
    });
    this.tick = setInterval(() => this.kick(), 2000);
    this.tick.unref();
    this.kick();
  }

  kick(): void {
    this.passes.kick();
  }

  /** The leader's pass: every service's placement made to match its plan, in one guarded transaction each. */
  private async pass(): Promise<void> {
    const fence = this.leadership?.fence();
    if (!fence || this.nodes.fenced) return;
    const etcd = this.nodes.client;
    // The nodes' leases and the placements at one revision.
    const res = await answered(
      etcd.if(ALIVE, 'Create', '==', 0).then(etcd.getAll().prefix(ALIVE), etcd.getAll().prefix(SVC_PLACE)).commit(),
      CALL_MS,
      'reading the placements',
    );
    const leases = new Map<string, string>();
    const placed = new Map<string, Map<string, number>>();
    for (const kv of res.responses.flatMap((r) => r.response_range?.kvs ?? [])) {
      const key = kv.key.toString();
      if (key.startsWith(ALIVE)) leases.set(key.slice(ALIVE.length), kv.lease);
      else {
        const [name, node] = split(key.slice(SVC_PLACE.length));
        const m = placed.get(name) ?? new Map<string, number>();
        m.set(node, (JSON.parse(kv.value.toString()) as { replicas: number }).replicas);
        placed.set(name, m);
      }
    }
    // A node without its lease is down whatever the (cached) list says.
    const nodes: NodeView[] = (await this.nodes.list()).map((n) =>
      leases.has(n.id) ? n : { ...n, state: 'down', report: null },
    );
    const busy = new Map<string, number>();
    for (const m of placed.values()) for (const [node, n] of m) busy.set(node, (busy.get(node) ?? 0) + n);
    const specs = [...this.desired()].sort((a, b) => a.spec.name.localeCompare(b.spec.name));
    for (const rec of specs) {
      const name = rec.spec.name;
      const current = placed.get(name) ?? new Map<string, number>();
      const pinned = stateNode(rec.package);
      const pin = pinned && { node: pinned.node, why: `its state volume ${pinned.volume} is on node ${pinned.node}` };
      const plan = planService(name, rec.spec, nodes, current, busy, pin);
      const guards: Guard[] = [fence, [SVC_SPEC + name, 'Create', '>', 0]];
      const ops = [];
      for (const node of new Set([...current.keys(), ...plan.target.keys()])) {
        const n = plan.target.get(node) ?? 0;
        if (n === (current.get(node) ?? 0)) continue;
        const key = `${SVC_PLACE}${name}/${node}`;
        const lease = leases.get(node);
        if (n > 0 && lease) {
          guards.push([ALIVE + node, 'Lease', '==', lease]);
          ops.push(
            etcd
              .put(key)
              .value(JSON.stringify({ replicas: n }))
              .lease(lease),
          );
        } else ops.push(etcd.delete().key(key));
      }
      if ((this.reasons.get(name) ?? null) !== plan.reason)
        ops.push(
          plan.reason === null
            ? etcd.delete().key(SVC_STATUS + name)
            : etcd.put(SVC_STATUS + name).value(JSON.stringify({ reason: plan.reason })),
        );
      if (ops.length) {
        let txn = etcd.if(...guards[0]);
        for (const g of guards.slice(1)) txn = txn.and(...g);
        const out = await answered(txn.then(...ops).commit(), CALL_MS, 'placing a service');
        if (!out.succeeded) return; // deposed, a node's lease changed, or the service went: the next pass sees it
        if (plan.reason) log.warn(plan.reason, { service: name });
        else log.info(`service ${name} placed: ${this.describe(plan.target)}`, { service: name });
      }
      if (rec.rollout && this.rolledOut(rec)) await this.finish(name, rec.generation);
    }
    // Placements of services that are gone.
    const gone = [...placed.keys()].filter((name) => !specs.some((r) => r.spec.name === name));
    if (gone.length)
      await answered(
        etcd
          .if(...fence)
          .then(...gone.map((name) => etcd.delete().prefix(`${SVC_PLACE}${name}/`)))
          .commit(),
        CALL_MS,
        'removing placements',
      );
  }

  private describe(target: Map<string, number>): string {
    return [...target].map(([node, n]) => `${n} on ${node}`).join(', ') || 'no replicas';
  }

  /** Every node reports the generation healthy, as many as wanted, and nothing older. */
  private rolledOut(rec: ServiceRecord): boolean {
    const all = [...(this.reports.get(rec.spec.name)?.values() ?? [])].flatMap((r) => r.replicas);
    const healthy = all.filter((r) => r.generation === rec.generation && r.healthy).length;
    return healthy >= rec.spec.replicas && all.every((r) => r.generation === rec.generation);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.tick);
    await this.watch?.close();
    await this.passes.settled();
    await this.reporting;
  }
}
