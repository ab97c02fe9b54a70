/**
 * Signed manifests' state in a cluster: the trusted owner keys, the last version applied per key,
 * whether trust on first use is open and the manifest applied last, as one etcd key
 * (`manifest/state`). The services a manifest applies are the cluster's (service-desired.ts), so
 * this is too: every node takes the same owners and refuses the same stale versions. An apply
 * writes it in the transaction that writes the services, only if it is still as the apply read it
 * (compare-and-swap on its revision), so of two applies racing on two nodes one wins and the other
 * reads it again and is refused as stale. Every use reads it from etcd (status, trust lists,
 * release checks, applies): a key revoked on one node is revoked on every node at once.
 */
import type { Etcd3 } from 'etcd3';
import type { ManifestState, ManifestStateStore, StateRead } from '../services/manifest-state.js';
import { emptyState } from '../services/manifest-state.js';
import type { Swap } from '../services/desired.js';
import { RealmError } from '../util/errors.js';
import { PREFIX, answered } from './etcd.js';

export const MANIFEST_STATE = `${PREFIX}manifest/state`;

const CALL_MS = 3000;
/** Trust changes racing with others are tried again this many times before giving up. */
const TRIES = 5;

export class EtcdManifestState implements ManifestStateStore {
  readonly scope = 'the cluster';

  constructor(private readonly etcd: Etcd3) {}

  /** etcd answers (the daemon does not start without it). */
  async start(): Promise<void> {
    await this.read();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  async read(): Promise<StateRead> {
    const res = await answered(this.etcd.get(MANIFEST_STATE).exec(), CALL_MS, 'reading the signed manifests’ state');
    const kv = res.kvs[0];
    return kv ? { state: JSON.parse(kv.value.toString()) as ManifestState, mod: kv.mod_revision } : { state: emptyState() };
  }

  /** Write `next` only if the key is still as `read` found it (for an apply's transaction). */
  swap(read: StateRead, next: ManifestState): Swap {
    return { key: MANIFEST_STATE, mod: read.mod, value: JSON.stringify(next) };
  }

  async update(change: (s: ManifestState) => void): Promise<ManifestState> {
    for (let i = 0; i < TRIES; i++) {
      const r = await this.read();
      const next = structuredClone(r.state);
      change(next);
      const txn = await answered(
        (r.mod ? this.etcd.if(MANIFEST_STATE, 'Mod', '==', r.mod) : this.etcd.if(MANIFEST_STATE, 'Create', '==', 0))
          .then(this.etcd.put(MANIFEST_STATE).value(JSON.stringify(next)))
          .commit(),
        CALL_MS,
        'writing the signed manifests’ state',
      );
      if (txn.succeeded) return next;
    }
    throw new RealmError(
      'CLUSTER_UNAVAILABLE',
      'the signed manifests’ trust was changed on other nodes meanwhile, again and again; try again',
    );
  }
}
