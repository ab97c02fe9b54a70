/**
 * Host ids of sandboxes: every sandbox and one-shot run runs as a host uid (and gid) of its own,
 * taken from the operator's range (`realm serve --uid-range`) and given back once it is
 * destroyed, so no sandbox shares a per-user kernel limit (inotify instances, POSIX message
 * queues, processes) or a file owner with another.
 *
 *   const ids = new HostIds({ first: 1879048192, count: 65536 });
 *   const { uid, vmmUid } = ids.take('sb-1'); // 1879048194 and 1879048195
 *   ids.give('sb-1');
 *
 * The range is cut into pairs. The first pair is realm's own: `storage` owns volumes at rest
 * (each sandbox sees them as its own through an idmapped mount) and `group` is the one group
 * every sandbox uid also carries, whose only right is to pass (x) through the data dir and the
 * runtime dir on the way to what bwrap binds in; it is also the uid driver probes run as. Every
 * other pair is one sandbox's: its uid, and the uid microvm's VMM drops to.
 */
import { readFileSync } from 'node:fs';
import { RealmError } from '../util/errors.js';

export interface UidRange {
  first: number;
  count: number;
}

/** A sandbox's host ids: the uid (= gid) its programs run as, and the one its VMM runs as (microvm). */
export interface SandboxIds {
  uid: number;
  vmmUid: number;
}

/** systemd leaves 0x70000000–0x7FFDFFFF unused (its container ranges end below it); 65536 ids there. */
export const DEFAULT_UID_RANGE: UidRange = { first: 0x70000000, count: 65536 };

/** What sandboxes of a realm older than per-sandbox ids ran as (their records carry no uid). */
export const LEGACY_IDS: SandboxIds = { uid: 65532, vmmUid: 65531 };

/** Parse `FIRST:COUNT` (as in /etc/subuid), e.g. `1879048192:65536`. */
export function parseUidRange(text: string): UidRange {
  const m = /^(\d+):(\d+)$/.exec(text.trim());
  const first = Number(m?.[1]);
  const count = Number(m?.[2]);
  const why = !m
    ? 'write FIRST:COUNT, e.g. 1879048192:65536'
    : first < 1000
      ? "the range must start at 1000 or above (below are the host's system users)"
      : count < 4 || count % 2
        ? "COUNT must be even and at least 4 (ids go in pairs; the first pair is realm's own)"
        : first + count > 0x7fffffff
          ? 'the range must end below 2^31 (larger ids break many tools)'
          : first <= 65535 && first + count > 65534
            ? 'the range must not cover 65534 (nobody) or 65535'
            : undefined;
  if (why) throw new RealmError('INVALID_REQUEST', `--uid-range ${text}: ${why}`);
  return { first, count };
}

/** `REALM_UID_RANGE`, else the default. */
export function defaultUidRange(): UidRange {
  return process.env.REALM_UID_RANGE ? parseUidRange(process.env.REALM_UID_RANGE) : DEFAULT_UID_RANGE;
}

export class HostIds {
  private readonly byHolder = new Map<string, number>();
  private readonly used = new Set<number>();
  private cursor = 1;

  constructor(readonly range: UidRange) {}

  /** Owner (uid and gid) of volumes at rest. */
  get storage(): number {
    return this.range.first;
  }

  /** The group every sandbox uid carries: passage through the data and runtime dirs, nothing else. */
  get group(): number {
    return this.range.first + 1;
  }

  private get slots(): number {
    return this.range.count / 2;
  }

  /** The ids a sandbox of this uid has (a uid outside the range: a sandbox of an older realm). */
  static of(uid: number | undefined): SandboxIds {
    return uid === undefined || uid === LEGACY_IDS.uid ? LEGACY_IDS : { uid, vmmUid: uid + 1 };
  }

  /** Ids of their own for `holder` (a sandbox or run id); CAPACITY_EXCEEDED when none is free. */
  take(holder: string): SandboxIds {
    const had = this.byHolder.get(holder);
    if (had !== undefined) return HostIds.of(had);
    // Round the range: an id given back is the last to be taken again.
    const own = this.slots - 1;
    for (let n = 0; n < own; n++) {
      const slot = ((this.cursor - 1 + n) % own) + 1;
      const uid = this.range.first + 2 * slot;
      if (this.used.has(uid)) continue;
      this.cursor = slot + 1;
      this.used.add(uid);
      this.byHolder.set(holder, uid);
      return HostIds.of(uid);
    }
    throw new RealmError(
      'CAPACITY_EXCEEDED',
      `every host uid of the range ${this.range.first}:${this.range.count} is in use (${this.slots - 1} sandboxes); destroy some or widen realm serve --uid-range`,
    );
  }

  /** Record that `holder` (a sandbox found in the store) runs as `uid`. */
  adopt(holder: string, uid: number | undefined): void {
    if (uid === undefined || !this.inRange(uid)) return;
    this.byHolder.set(holder, uid);
    this.used.add(uid);
  }

  /** Give `holder`'s ids back (once nothing of it runs). */
  give(holder: string): void {
    const uid = this.byHolder.get(holder);
    if (uid === undefined) return;
    this.byHolder.delete(holder);
    this.used.delete(uid);
  }

  /** How many ids are held now. */
  get size(): number {
    return this.byHolder.size;
  }

  /** Who holds ids now (sandbox and run ids). */
  holders(): string[] {
    return [...this.byHolder.keys()];
  }

  /** The uid `holder` holds, if any. */
  uidOf(holder: string): number | undefined {
    return this.byHolder.get(holder);
  }

  inRange(uid: number): boolean {
    return uid >= this.range.first + 2 && uid < this.range.first + this.range.count && (uid - this.range.first) % 2 === 0;
  }

  /** Host users, groups and subordinate ranges that fall inside the range (they would share ids with sandboxes). */
  overlaps(): string[] {
    const out: string[] = [];
    const end = this.range.first + this.range.count;
    const hit = (a: number, n: number): boolean => a < end && a + n > this.range.first;
    for (const [file, kind] of [
      ['/etc/passwd', 'user'],
      ['/etc/group', 'group'],
    ] as const) {
      for (const line of read(file)) {
        const [name, , id] = line.split(':');
        if (id !== undefined && /^\d+$/.test(id) && hit(Number(id), 1)) out.push(`${kind} ${name ?? '?'} (${id}) in ${file}`);
      }
    }
    for (const file of ['/etc/subuid', '/etc/subgid']) {
      for (const line of read(file)) {
        const [name, a, n] = line.split(':');
        if (a && n && /^\d+$/.test(a) && /^\d+$/.test(n) && hit(Number(a), Number(n)))
          out.push(`${name ?? '?'}'s range ${a}:${n} in ${file}`);
      }
    }
    return out;
  }
}

function read(file: string): string[] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
  } catch {
    return [];
  }
}
