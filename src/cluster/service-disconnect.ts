/**
 * Stop after a lost connection, per service (`disconnect.stopAfter`, spec.ts; Nomad's `disconnect
 * { stop_on_client_after }`). A node cut off from etcd cannot tell whether its lease still stands:
 * once it has ended, the leader places this node's replicas on others, and a replica that must
 * not run twice (a writer) has to stop here first. The clock runs from when the node last knew its
 * lease alive (EtcdNodes.sinceLeaseAliveMs): the lease at etcd lasts at least the TTL from then,
 * so a `stopAfter` of the TTL stops the replicas here about when the others may start theirs.
 *
 * While held, the node runs none of the service's replicas and starts none on its own; once etcd
 * answers again it runs what the cluster places on it under its current lease (service-cluster.ts
 * share): the old assignment if its lease survived, else only what the leader placed since.
 */
import type { ServiceRecord } from '../services/spec.js';
import { durationText } from '../services/manifest-toml.js';
import { log } from '../logs/log.js';

/** How often the clock is read (a hold starts within this of its time). */
const CHECK_MS = 200;

export interface LeaseClock {
  readonly selfId: string;
  /** The lease this node took last; undefined before it first joined. */
  readonly currentLease: string | undefined;
  sinceLeaseAliveMs(): number;
}

export class DisconnectHolds {
  /** Services held now, by name. */
  private readonly held = new Set<string>();
  /** Services whose hold was said in the log (once per cut). */
  private readonly warned = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly clock: LeaseClock,
    private readonly records: () => ServiceRecord[],
    /** Told when a service is held or let go (the reconciler looks again). */
    private readonly changed: () => void,
    /** Whether this node runs replicas of the service now (only then is a hold worth a warning). */
    private readonly runs: (name: string) => boolean = () => true,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.check(), CHECK_MS);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Why this node runs none of `rec`'s replicas now, or null when it may run its share. */
  reason(rec: ServiceRecord): string | null {
    const stopAfter = rec.spec.disconnect?.stopAfter;
    if (stopAfter === undefined || this.clock.currentLease === undefined) return null;
    if (this.clock.sinceLeaseAliveMs() < stopAfter) return null;
    this.warnOnce(rec.spec.name);
    return `node ${this.clock.selfId} is cut off from etcd (its lease not known alive for ${durationText(stopAfter)}, disconnect.stopAfter): replicas of ${rec.spec.name} stopped here so they do not run twice once the cluster places them elsewhere; they run here again only where the cluster places them once etcd answers`;
  }

  /**
   * Say why once per cut, when the hold is first seen — by this clock's look or by the reconciler
   * asking reason() first, which then stops the replicas: the warning must not depend on which of
   * the two comes first. Only a node that runs replicas of the service then says so.
   */
  private warnOnce(name: string): void {
    if (this.warned.has(name)) return;
    this.warned.add(name);
    if (this.runs(name))
      log.warn(
        `service ${name}: node ${this.clock.selfId} cut off from etcd for ${(this.clock.sinceLeaseAliveMs() / 1000).toFixed(1)} s since its lease was last known alive: stopping its replicas here (disconnect.stopAfter)`,
        { service: name },
      );
  }

  /** One look at the clock (start() looks every CHECK_MS). */
  check(): void {
    let changed = false;
    const now = new Set<string>();
    for (const rec of this.records()) if (this.reason(rec) !== null) now.add(rec.spec.name);
    for (const name of now) if (!this.held.has(name)) changed = true;
    for (const name of [...this.warned]) if (!now.has(name)) this.warned.delete(name);
    for (const name of this.held)
      if (!now.has(name)) {
        changed = true;
        log.debug(`service ${name}: node ${this.clock.selfId} in touch with etcd again: it runs what the cluster places on it`, {
          service: name,
        });
      }
    this.held.clear();
    for (const name of now) this.held.add(name);
    if (changed) this.changed();
  }
}
