/**
 * The services' desired state in a cluster: `svc/spec/NAME` → the record (spec, owner,
 * generation, history) in etcd, so a push, scale, restart or removal on any node is every
 * node's. Each node keeps all of them in memory (desired.ts) by a watch; a write compares the
 * revision it read, so two nodes changing one service at once cannot lose either's change
 * silently (the later is refused, to be tried again).
 */
import type { Etcd3 } from 'etcd3';
import type { CommitOutcome, DesiredStore, KeyWrites, Swap } from '../services/desired.js';
import type { ServiceRecord } from '../services/spec.js';
import { RealmError } from '../util/errors.js';
import { PREFIX, answered, casPut } from './etcd.js';
import { caughtUpWith } from './caught-up.js';
import { LastingWatch } from './lasting-watch.js';

/** Every key of the cluster's services starts with this. */
export const SVC = `${PREFIX}svc/`;
export const SVC_SPEC = `${SVC}spec/`;
/** `svc/place/NAME/NODE` → {replicas}: NODE's share, written by the leader under NODE's lease. */
export const SVC_PLACE = `${SVC}place/`;
/** `svc/state/NAME/NODE` → NODE's replicas of NAME as it runs them, under NODE's lease. */
export const SVC_STATE = `${SVC}state/`;
/** `svc/status/NAME` → {reason}: why replicas of NAME are not all placed (the leader's word). */
export const SVC_STATUS = `${SVC}status/`;

const CALL_MS = 3000;

export class EtcdDesiredStore implements DesiredStore {
  /** The revision of each record as last seen: a write compares it. */
  private readonly mods = new Map<string, string>();
  private watch: LastingWatch | undefined;
  private told: (name: string, rec: ServiceRecord | null) => void = () => undefined;

  constructor(private readonly etcd: Etcd3) {}

  async start(told: (name: string, rec: ServiceRecord | null) => void): Promise<ServiceRecord[]> {
    this.told = told;
    const res = await answered(this.etcd.getAll().prefix(SVC_SPEC).exec(), CALL_MS, 'reading the services');
    const out: ServiceRecord[] = [];
    for (const kv of res.kvs) {
      this.mods.set(kv.key.toString().slice(SVC_SPEC.length), kv.mod_revision);
      out.push(JSON.parse(kv.value.toString()) as ServiceRecord);
    }
    // Followed from just after that read; read again from scratch when etcd ends the watch
    // (it compacted the history the watch was to resume from, after a long cut).
    this.watch = new LastingWatch(
      'the desired state of the services',
      () => this.etcd.watch().prefix(SVC_SPEC),
      (w) =>
        w.on('data', (res) => {
          for (const e of res.events) {
            const name = e.kv.key.toString().slice(SVC_SPEC.length);
            // A change this node wrote itself (and applied) or an older one seen late: nothing new.
            if (BigInt(e.kv.mod_revision) <= BigInt(this.mods.get(name) ?? '0') && e.type === 'Put') continue;
            if (e.type === 'Delete') {
              this.mods.delete(name);
              this.told(name, null);
            } else {
              this.mods.set(name, e.kv.mod_revision);
              this.told(name, JSON.parse(e.kv.value.toString()) as ServiceRecord);
            }
          }
        }),
      () => this.reread(),
    );
    await this.watch.start(res.header.revision);
    return out;
  }

  /** Every record read again (the watch ended): what changed meanwhile is told; the revision read at. */
  private async reread(): Promise<string> {
    const res = await answered(this.etcd.getAll().prefix(SVC_SPEC).exec(), CALL_MS, 'reading the services');
    const seen = new Set<string>();
    for (const kv of res.kvs) {
      const name = kv.key.toString().slice(SVC_SPEC.length);
      seen.add(name);
      if (this.mods.get(name) === kv.mod_revision) continue;
      this.mods.set(name, kv.mod_revision);
      this.told(name, JSON.parse(kv.value.toString()) as ServiceRecord);
    }
    for (const name of [...this.mods.keys()])
      if (!seen.has(name)) {
        this.mods.delete(name);
        this.told(name, null);
      }
    return res.header.revision;
  }

  async put(rec: ServiceRecord): Promise<void> {
    const name = rec.spec.name;
    const key = SVC_SPEC + name;
    const mod = this.mods.get(name);
    const revision = await casPut(this.etcd, key, JSON.stringify(rec), mod, CALL_MS, 'writing a service');
    if (revision === undefined)
      throw new RealmError(
        'SERVICE_NAME_TAKEN',
        `service ${name} was pushed or removed on another node meanwhile; look at it again (realm svc inspect ${name}) and try again`,
      );
    this.mods.set(name, revision);
  }

  /**
   * Remove a record as this node last saw it: a newer one pushed on another node meanwhile is not
   * removed unseen (SERVICE_NAME_TAKEN); one already gone is no error.
   */
  async delete(name: string): Promise<void> {
    const key = SVC_SPEC + name;
    const mod = this.mods.get(name);
    // Its placements and status go with it (the replicas' reports go as each node stops them).
    const res = await answered(
      (mod ? this.etcd.if(key, 'Mod', '==', mod) : this.etcd.if(key, 'Create', '>', 0))
        .then(
          this.etcd.delete().key(key),
          this.etcd.delete().prefix(`${SVC_PLACE}${name}/`),
          this.etcd.delete().key(SVC_STATUS + name),
        )
        .else(this.etcd.get(key))
        .commit(),
      CALL_MS,
      'removing a service',
    );
    if (!res.succeeded && mod && res.responses[0]?.response_range?.kvs.length)
      throw new RealmError(
        'SERVICE_NAME_TAKEN',
        `service ${name} was pushed again on another node meanwhile (a version this node had not seen yet): look at it again (realm svc inspect ${name}) and remove it then`,
      );
    this.mods.delete(name);
  }

  async commit(puts: ServiceRecord[], deletes: string[], swap: Swap, also?: KeyWrites): Promise<CommitOutcome> {
    const txn = swap.mod ? this.etcd.if(swap.key, 'Mod', '==', swap.mod) : this.etcd.if(swap.key, 'Create', '==', 0);
    const compares = [
      ...[...puts.map((r) => r.spec.name), ...deletes].map((name) => ({ key: SVC_SPEC + name, mod: this.mods.get(name) })),
      ...(also?.compares ?? []),
    ];
    for (const { key, mod } of compares)
      if (mod) txn.and(key, 'Mod', '==', mod);
      else txn.and(key, 'Create', '==', 0);
    const res = await answered(
      txn
        .then(
          this.etcd.put(swap.key).value(swap.value),
          ...puts.map((r) => this.etcd.put(SVC_SPEC + r.spec.name).value(JSON.stringify(r))),
          ...deletes.flatMap((name) => [
            this.etcd.delete().key(SVC_SPEC + name),
            this.etcd.delete().prefix(`${SVC_PLACE}${name}/`),
            this.etcd.delete().key(SVC_STATUS + name),
          ]),
          ...(also?.puts ?? []).map(({ key, value }) => this.etcd.put(key).value(value)),
          ...(also?.deletes ?? []).map((key) => this.etcd.delete().key(key)),
        )
        .else(this.etcd.get(swap.key))
        .commit()
        .catch((e: unknown) => {
          // etcd's --max-txn-ops (128 by default) and request size (1.5 MiB) bound one transaction.
          if (/too many operations|request is too large/.test(String(e)))
            throw new RealmError(
              'MANIFEST_INVALID',
              `this manifest changes ${puts.length + deletes.length} services${also ? ` and ${also.puts.length + also.deletes.length} apps` : ''} at once, more than etcd takes in one transaction (${String(e)}); raise etcd's --max-txn-ops or --max-request-bytes, or apply it in smaller steps`,
            );
          throw e;
        }),
      CALL_MS,
      "writing a signed manifest's services",
    );
    if (!res.succeeded) {
      const now = res.responses[0]?.response_range.kvs[0]?.mod_revision;
      return { outcome: now === swap.mod ? 'services-moved' : 'swap-moved' };
    }
    for (const r of puts) this.mods.set(r.spec.name, res.header.revision);
    for (const name of deletes) this.mods.delete(name);
    return { outcome: 'done', revision: res.header.revision };
  }

  /** Wait until the watch brought every change etcd had when asked (caught-up.ts). */
  caughtUp(ms: number): Promise<void> {
    return caughtUpWith(this.etcd, SVC_SPEC, this.mods, ms, 'the services');
  }

  async close(): Promise<void> {
    await this.watch?.close();
  }
}
