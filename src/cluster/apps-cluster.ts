/**
 * The gateway's wasm apps in a cluster: `apps/NAME` → the app's record (its module's sha256,
 * limits, visibility, owner) in etcd, so an app pushed on any node is served by every node's own
 * gateway.
 *
 * - A push writes the module into this node's blob store (referenced as `app:NAME` by the app's
 *   owner, so it is kept while the app is), then the record, compared with the version this node
 *   knows: two nodes pushing one name at once cannot both win — the later is refused, to be tried
 *   again. Only then is the app kept and served here (apps.ts). A removal is compared the same
 *   way: it never beats a replacement this node had not seen.
 * - Every node reads the records, then watches them: a module it lacks is fetched by digest from a
 *   peer's blob store (blob-peers.ts: verified, bytes that are not the digest are never kept), hashed
 *   again, then kept and served; a removed app stops being served.
 * - Apps a node had before it joined are the cluster's from its first start in it: each is written
 *   to etcd unless the cluster has the name (then the cluster's replaces it here, with a warning).
 *   The names this node has had from the cluster are kept in `apps/cluster.json`, so an app removed
 *   while this node was down is removed here at its next start, not brought back.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Etcd3, IKeyValue } from 'etcd3';
import type { BlobStore } from '../blobs/store.js';
import { ROOT_OWNER } from '../engine/owner.js';
import type { Apps, SharedApps } from '../gateway/apps.js';
import { log } from '../logs/log.js';
import type { AppRecord } from '../store/store.js';
import { RealmError, errorMessage } from '../util/errors.js';
import type { PeerBlobs } from './blob-peers.js';
import { PREFIX, answered, casDelete, casPut } from './etcd.js';
import { caughtUpWith } from './caught-up.js';
import { LastingWatch } from './lasting-watch.js';
import type { KeyWrites } from '../services/desired.js';

/** `apps/NAME` → the app's record. */
export const APPS = `${PREFIX}apps/`;

const CALL_MS = 3000;
/** A module no peer could send yet is asked for again this often, this many times. */
const RETRY_MS = 1000;
const TRIES = 10;

const sha256Of = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const ownerOf = (rec: AppRecord): string => rec.owner ?? ROOT_OWNER;
const refOf = (rec: AppRecord): string => `app:${rec.name}`;

export class AppsCluster implements SharedApps {
  /** The revision of each record as last seen: a write compares it. */
  private readonly mods = new Map<string, string>();
  /** Names this node has had from the cluster (persisted: see the file's comment). */
  private readonly known: Set<string>;
  private readonly knownFile: string;
  private watch: LastingWatch | undefined;
  /** Changes from the watch, applied one at a time in order. */
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly etcd: Etcd3,
    private readonly apps: Apps,
    private readonly blobs: BlobStore,
    private readonly peers: PeerBlobs,
    dataDir: string,
  ) {
    this.knownFile = join(dataDir, 'apps', 'cluster.json');
    let names: string[] = [];
    try {
      if (existsSync(this.knownFile)) names = JSON.parse(readFileSync(this.knownFile, 'utf8')) as string[];
    } catch (e) {
      log.warn(`apps: ${this.knownFile} unreadable, taken as empty: ${errorMessage(e)}`);
    }
    this.known = new Set(names);
  }

  /** Bring this node's apps in step with the cluster's, then follow them; pushes and removals go to etcd from now on. */
  async start(): Promise<void> {
    const read = await answered(this.etcd.getAll().prefix(APPS).exec(), CALL_MS, 'reading the apps');
    const kvs = read.kvs;
    const cluster = new Map<string, AppRecord>();
    for (const kv of kvs) {
      const rec = this.parse(kv);
      this.mods.set(rec.name, kv.mod_revision);
      cluster.set(rec.name, rec);
    }
    // Modules are fetched after the start (a peer may be slow): the app is served once its module is here.
    for (const rec of cluster.values()) {
      const mine = await this.apps.held(rec.name);
      if (mine && !this.known.has(rec.name) && mine.sha256 !== rec.sha256)
        log.warn(
          `apps: app ${rec.name}, this node's before it joined the cluster, is replaced by the cluster's app of that name (sha256 ${rec.sha256}); push yours under another name`,
          { app: rec.name },
        );
      this.later(() => this.take(rec));
    }
    for (const rec of await this.apps.all()) {
      if (cluster.has(rec.name)) continue;
      if (this.known.has(rec.name)) {
        // The cluster's once, removed while this node was away.
        await this.apps.forget(rec);
        this.known.delete(rec.name);
        continue;
      }
      await this.adopt(rec);
    }
    this.saveKnown();
    this.apps.shared = this;
    this.watch = new LastingWatch(
      'the apps',
      () => this.etcd.watch().prefix(APPS),
      (w) =>
        w.on('data', (res) => {
          for (const e of res.events) {
            const name = e.kv.key.toString().slice(APPS.length);
            if (e.type === 'Delete') {
              this.mods.delete(name);
              this.later(() => this.drop(name));
            } else this.changed(e.kv);
          }
        }),
      () => this.reread(),
    );
    // Followed from just after the read: what changed while this node took its apps in comes now.
    await this.watch.start(read.header.revision);
  }

  /** A record put in etcd: taken unless this node wrote it itself (and applied it) or knows a newer one. */
  private changed(kv: IKeyValue): void {
    const name = kv.key.toString().slice(APPS.length);
    if (BigInt(kv.mod_revision) <= BigInt(this.mods.get(name) ?? '0')) return;
    this.mods.set(name, kv.mod_revision);
    const rec = this.parse(kv);
    this.later(() => this.take(rec));
  }

  /** The apps as etcd has them now, after a watch that ended: what changed meanwhile is taken, what went is dropped. */
  private async reread(): Promise<string> {
    const res = await answered(this.etcd.getAll().prefix(APPS).exec(), CALL_MS, 'reading the apps');
    const names = new Set(res.kvs.map((kv) => kv.key.toString().slice(APPS.length)));
    for (const name of [...this.mods.keys()])
      if (!names.has(name)) {
        this.mods.delete(name);
        this.later(() => this.drop(name));
      }
    for (const kv of res.kvs) this.changed(kv);
    return res.header.revision;
  }

  async put(rec: AppRecord, bytes: Buffer, held: AppRecord | null): Promise<void> {
    await this.share(rec, bytes);
    const key = APPS + rec.name;
    const revision = await casPut(this.etcd, key, JSON.stringify(rec), this.modOf(rec, held), CALL_MS, 'writing an app');
    if (revision === undefined) {
      this.unshare(rec, held);
      throw new RealmError(
        'APP_NAME_TAKEN',
        `app ${rec.name} was pushed or removed on another node of the cluster meanwhile; look at it again (realm push ls) and push again`,
      );
    }
    this.written(rec, held, revision);
  }

  async delete(rec: AppRecord): Promise<void> {
    // Compared with the version this node knows, as a push is: a replacement pushed on another
    // node meanwhile is kept, and this removal refused (one removed there already: removed).
    const outcome = await casDelete(this.etcd, APPS + rec.name, this.mods.get(rec.name), CALL_MS, 'removing an app');
    if (outcome === 'changed')
      throw new RealmError(
        'APP_NAME_TAKEN',
        `app ${rec.name} was pushed again on another node of the cluster meanwhile, and is kept; look at it again (realm push ls) and remove it again if you still mean to`,
      );
    this.removed(rec);
    this.saveKnown();
  }

  /** The version a write of `rec` is compared with: over an app this node holds, the one it last saw; a new name, none (absent). */
  private modOf(rec: AppRecord, held: AppRecord | null): string | undefined {
    return held ? this.mods.get(rec.name) : undefined;
  }

  /** After `rec` was written at `revision`, replacing `held`: the version noted, the old module's reference dropped. */
  private written(rec: AppRecord, held: AppRecord | null, revision: string): void {
    this.mods.set(rec.name, revision);
    if (held && held.sha256 !== rec.sha256) this.unshare(held, rec);
    this.remember(rec.name);
  }

  /** After `rec` was removed from etcd (the caller saves the names known). */
  private removed(rec: AppRecord): void {
    this.mods.delete(rec.name);
    this.unshare(rec, null);
    this.known.delete(rec.name);
  }

  async prepare(
    puts: { rec: AppRecord; bytes: Buffer; held: AppRecord | null }[],
    removes: AppRecord[],
  ): Promise<{ writes: KeyWrites; done: (revision: string) => void; abort: () => void }> {
    const shared: typeof puts = [];
    const abort = (): void => {
      for (const p of shared) this.unshare(p.rec, p.held);
    };
    try {
      for (const p of puts) {
        await this.share(p.rec, p.bytes);
        shared.push(p);
      }
    } catch (e) {
      abort();
      throw e;
    }
    const writes: KeyWrites = {
      // Compared as put() and delete() compare theirs.
      compares: [
        ...puts.map((p) => ({ key: APPS + p.rec.name, mod: this.modOf(p.rec, p.held) })),
        ...removes.map((r) => ({ key: APPS + r.name, mod: this.mods.get(r.name) })),
      ],
      puts: puts.map((p) => ({ key: APPS + p.rec.name, value: JSON.stringify(p.rec) })),
      deletes: removes.map((r) => APPS + r.name),
    };
    const done = (revision: string): void => {
      for (const p of puts) this.written(p.rec, p.held, revision);
      for (const r of removes) this.removed(r);
      if (removes.length) this.saveKnown();
    };
    return { writes, done, abort };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.apps.shared = undefined;
    await this.watch?.close();
    await this.queue;
  }

  /** The app as the cluster has it, served here: its module fetched from a peer when this node lacks it. */
  private async take(rec: AppRecord): Promise<void> {
    const held = await this.apps.held(rec.name);
    this.remember(rec.name);
    if (held && held.sha256 === rec.sha256 && held.createdAt === rec.createdAt) return;
    let bytes = this.apps.moduleBySha(rec.sha256);
    if (!bytes || sha256Of(bytes) !== rec.sha256) bytes = await this.fetch(rec);
    if (!bytes) return;
    await this.share(rec, bytes);
    if (held && held.sha256 !== rec.sha256) this.unshare(held, rec);
    await this.apps.keep(rec, bytes, held);
  }

  private async drop(name: string): Promise<void> {
    this.known.delete(name);
    this.saveKnown();
    const held = await this.apps.held(name);
    if (!held) return;
    this.unshare(held, null);
    await this.apps.forget(held);
  }

  /** An app of this node's before it joined: the cluster's now, unless the cluster has the name. */
  private async adopt(rec: AppRecord): Promise<void> {
    const bytes = this.apps.moduleBySha(rec.sha256);
    if (!bytes) return log.warn(`apps: app ${rec.name} has no module file here; not brought into the cluster`);
    try {
      await this.put(rec, bytes, null);
      log.info(`apps: app ${rec.name}, this node's before it joined the cluster, is now the cluster's`, { app: rec.name });
    } catch (e) {
      log.warn(
        `apps: app ${rec.name}, this node's before it joined the cluster, is not the cluster's (tried again at the next start): ${errorMessage(e)}`,
        { app: rec.name },
      );
    }
  }

  /** The module from a peer, by digest, verified (undefined: none could send it: logged). */
  private async fetch(rec: AppRecord): Promise<Buffer | undefined> {
    const digest = `sha256:${rec.sha256}`;
    for (let i = 1; !this.closed; i++) {
      try {
        await this.peers.fetch(digest, ownerOf(rec));
        const bytes = await readAll(this.blobs.open(digest, ownerOf(rec)).stream);
        if (sha256Of(bytes) === rec.sha256) return bytes;
        throw new Error(`the bytes are sha256:${sha256Of(bytes)}`);
      } catch (e) {
        if (i >= TRIES) {
          log.error(
            `apps: app ${rec.name}: its module ${digest} could not be had from any node; not served here: ${errorMessage(e)}`,
            {
              app: rec.name,
            },
          );
          return undefined;
        }
      }
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
    return undefined;
  }

  /** The module in this node's blob store, kept while the app uses it (peers fetch it from there). */
  private async share(rec: AppRecord, bytes: Buffer): Promise<void> {
    const digest = `sha256:${rec.sha256}`;
    let has = false;
    try {
      this.blobs.info(digest, ownerOf(rec));
      has = true;
    } catch {
      // Not in the store yet (or not this owner's).
    }
    if (!has) await this.blobs.put(ownerOf(rec), Readable.from([bytes]), { digest, pin: false });
    this.blobs.addRef(digest, ownerOf(rec), refOf(rec));
  }

  /** Drop the app's reference to `rec`'s module (`now`: unless the app's new version uses it too). */
  private unshare(rec: AppRecord, now: AppRecord | null): void {
    if (now && now.sha256 === rec.sha256) return;
    try {
      this.blobs.dropRef(`sha256:${rec.sha256}`, ownerOf(rec), refOf(rec));
    } catch {
      // none held
    }
  }

  /** Wait until the watch brought every app etcd had when asked, and this node took each in (caught-up.ts). */
  caughtUp(ms: number): Promise<void> {
    return caughtUpWith(this.etcd, APPS, this.mods, ms, 'the apps', () => this.queue);
  }

  private later(f: () => Promise<void>): void {
    this.queue = this.queue.then(f).catch((e: unknown) => log.error(`apps: applying the cluster's apps: ${errorMessage(e)}`));
  }

  private remember(name: string): void {
    if (this.known.has(name)) return;
    this.known.add(name);
    this.saveKnown();
  }

  private saveKnown(): void {
    const tmp = `${this.knownFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify([...this.known].sort()), { mode: 0o600 });
    renameSync(tmp, this.knownFile);
  }

  private parse(kv: IKeyValue): AppRecord {
    return JSON.parse(kv.value.toString()) as AppRecord;
  }
}

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
