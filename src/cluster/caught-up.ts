/**
 * Read-your-writes for a node that follows records in etcd by a watch (the services' desired
 * state, the apps): before a user's change is acted on, the node reads the records' revisions and
 * waits until its watch brought it every change up to that read — so it acts on every change
 * answered before the user's began, not on a view a moment behind another node's.
 */
import type { Etcd3 } from 'etcd3';
import { answered } from './etcd.js';

const CALL_MS = 3000;

/**
 * Wait (at most `ms`) until `mods` (record name → the mod revision this node holds of it) has
 * each record under `prefix` that etcd has now, at that revision or a later one, and holds no
 * record the read lacked unless it was made after the read. Then `applied`, when given: the
 * node's own work on what its watch brought (a queue of changes being taken in).
 */
export async function caughtUpWith(
  etcd: Etcd3,
  prefix: string,
  mods: ReadonlyMap<string, string>,
  ms: number,
  what: string,
  applied?: () => Promise<void>,
): Promise<void> {
  const res = await answered(etcd.getAll().prefix(prefix).exec(), CALL_MS, `reading ${what}`);
  const at = BigInt(res.header.revision);
  const read = new Map(res.kvs.map((kv) => [kv.key.toString().slice(prefix.length), BigInt(kv.mod_revision)]));
  const done = (): boolean =>
    [...read].every(([name, mod]) => BigInt(mods.get(name) ?? '0') >= mod) &&
    [...mods].every(([name, mod]) => read.has(name) || BigInt(mod) > at);
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  if (applied) await Promise.race([applied(), new Promise((r) => setTimeout(r, Math.max(0, end - Date.now())))]);
}
