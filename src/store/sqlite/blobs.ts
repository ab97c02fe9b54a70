/**
 * The blob store's index (src/blobs/), in the daemon's state database beside its records: which
 * blobs exist, who holds each (an uploader's pin, or an unpinned hold in its grace period), who
 * references each (a job's inputs and artifacts), and the open upload sessions.
 *
 * Node-local by nature — a blob's bytes are on this node's disk — so it stays in SQLite in a
 * cluster too, and its calls are synchronous: each change is one SQLite transaction, which makes
 * "refs, holds and the blob row change together" true without locks.
 *
 * Tables are made if missing when the store opens (the state database's migration style: new
 * tables need no data migration; `user_version` counts rewrites of existing records only).
 */
import type Database from 'better-sqlite3';

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS blobs (
     digest TEXT PRIMARY KEY,
     size INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     corrupt_at INTEGER)`,
  // One row per (blob, principal) that uploaded or pinned it. An unpinned hold lapses `grace`
  // after `since` unless its owner references the blob.
  `CREATE TABLE IF NOT EXISTS blob_holds (
     digest TEXT NOT NULL,
     owner TEXT NOT NULL,
     pinned INTEGER NOT NULL,
     since INTEGER NOT NULL,
     PRIMARY KEY (digest, owner))`,
  `CREATE TABLE IF NOT EXISTS blob_refs (
     digest TEXT NOT NULL,
     owner TEXT NOT NULL,
     ref TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (digest, owner, ref))`,
  `CREATE INDEX IF NOT EXISTS blob_refs_owner ON blob_refs (owner, ref)`,
  `CREATE TABLE IF NOT EXISTS blob_uploads (
     id TEXT PRIMARY KEY,
     owner TEXT NOT NULL,
     size INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL)`,
];

export interface BlobRow {
  digest: string;
  size: number;
  createdAt: number;
  /** When a read found its bytes wrong (the file is quarantined); null while it is sound. */
  corruptAt: number | null;
}

/** A blob as one principal sees it (or the admin, over every holder). */
export interface BlobListing extends BlobRow {
  pinned: boolean;
  refs: number;
  /** When the last unpinned hold began its grace (null: none, or pinned/referenced). */
  since: number | null;
}

export interface UploadRow {
  id: string;
  owner: string;
  /** Bytes accepted so far: the offset the next chunk must start at. */
  size: number;
  createdAt: number;
  expiresAt: number;
}

type Raw = { digest: string; size: number; created_at: number; corrupt_at: number | null };
type RawListing = Raw & { pinned: number | null; refs: number; since: number | null };
type RawUpload = { id: string; owner: string; size: number; created_at: number; expires_at: number };

const row = (r: Raw): BlobRow => ({ digest: r.digest, size: r.size, createdAt: r.created_at, corruptAt: r.corrupt_at });
const listing = (r: RawListing): BlobListing => ({ ...row(r), pinned: r.pinned === 1, refs: r.refs, since: r.since });
const upload = (r: RawUpload): UploadRow => ({
  id: r.id,
  owner: r.owner,
  size: r.size,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
});

export class SqliteBlobIndex {
  private readonly s: ReturnType<SqliteBlobIndex['prepare']>;

  constructor(private readonly db: Database.Database) {
    for (const sql of SCHEMA) db.exec(sql);
    this.s = this.prepare();
  }

  private prepare() {
    const d = this.db;
    return {
      get: d.prepare<[string], Raw>('SELECT * FROM blobs WHERE digest = ?'),
      all: d.prepare<[], Raw>('SELECT * FROM blobs'),
      upsertBlob: d.prepare(
        `INSERT INTO blobs (digest, size, created_at, corrupt_at) VALUES (?, ?, ?, NULL)
         ON CONFLICT (digest) DO UPDATE SET size = excluded.size, corrupt_at = NULL`,
      ),
      deleteBlob: d.prepare('DELETE FROM blobs WHERE digest = ?'),
      corrupt: d.prepare('UPDATE blobs SET corrupt_at = ? WHERE digest = ?'),
      hold: d.prepare<[string, string], { pinned: number; since: number }>(
        'SELECT pinned, since FROM blob_holds WHERE digest = ? AND owner = ?',
      ),
      // A new upload pins when asked; an upload of what one already holds never unpins it.
      upsertHold: d.prepare(
        `INSERT INTO blob_holds (digest, owner, pinned, since) VALUES (?, ?, ?, ?)
         ON CONFLICT (digest, owner) DO UPDATE SET pinned = MAX(pinned, excluded.pinned), since = excluded.since`,
      ),
      setPinned: d.prepare('UPDATE blob_holds SET pinned = ?, since = ? WHERE digest = ? AND owner = ?'),
      setPinnedAll: d.prepare('UPDATE blob_holds SET pinned = ?, since = ? WHERE digest = ?'),
      dropHold: d.prepare('DELETE FROM blob_holds WHERE digest = ? AND owner = ?'),
      dropHolds: d.prepare('DELETE FROM blob_holds WHERE digest = ?'),
      holders: d.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM blob_holds WHERE digest = ?'),
      addRef: d.prepare('INSERT OR IGNORE INTO blob_refs (digest, owner, ref, created_at) VALUES (?, ?, ?, ?)'),
      dropRef: d.prepare('DELETE FROM blob_refs WHERE digest = ? AND owner = ? AND ref = ?'),
      refsOf: d.prepare<[string, string], { ref: string }>(
        'SELECT ref FROM blob_refs WHERE digest = ? AND owner = ? ORDER BY ref',
      ),
      allRefs: d.prepare<[string], { owner: string; ref: string }>(
        'SELECT owner, ref FROM blob_refs WHERE digest = ? ORDER BY owner, ref',
      ),
      refsStarting: d.prepare<[number, string, number], { digest: string; owner: string; ref: string }>(
        'SELECT digest, owner, ref FROM blob_refs WHERE substr(ref, 1, ?) = ? AND created_at < ? ORDER BY ref',
      ),
      refsByOwner: d.prepare<[string, string], { digest: string }>(
        'SELECT digest FROM blob_refs WHERE owner = ? AND ref = ? ORDER BY digest',
      ),
      access: d.prepare<[string, string, string, string], { ok: number }>(
        `SELECT EXISTS (SELECT 1 FROM blob_holds WHERE digest = ? AND owner = ?)
             OR EXISTS (SELECT 1 FROM blob_refs WHERE digest = ? AND owner = ?) AS ok`,
      ),
      listOwn: d.prepare<
        [{ owner: string; digest: string | null }],
        RawListing
      >(`SELECT b.*, h.pinned AS pinned, CASE WHEN h.pinned = 0 THEN h.since END AS since,
                (SELECT COUNT(*) FROM blob_refs r WHERE r.digest = b.digest AND r.owner = @owner) AS refs
           FROM blobs b LEFT JOIN blob_holds h ON h.digest = b.digest AND h.owner = @owner
          WHERE (h.owner IS NOT NULL OR EXISTS (SELECT 1 FROM blob_refs r WHERE r.digest = b.digest AND r.owner = @owner))
            AND (@digest IS NULL OR b.digest = @digest)
          ORDER BY b.created_at, b.digest`),
      listAll: d.prepare<
        [{ digest: string | null }],
        RawListing
      >(`SELECT b.*, (SELECT MAX(pinned) FROM blob_holds h WHERE h.digest = b.digest) AS pinned,
                (SELECT MAX(since) FROM blob_holds h WHERE h.digest = b.digest AND h.pinned = 0) AS since,
                (SELECT COUNT(*) FROM blob_refs r WHERE r.digest = b.digest) AS refs
           FROM blobs b WHERE (@digest IS NULL OR b.digest = @digest) ORDER BY b.created_at, b.digest`),
      // Unpinned holds past their grace whose owner references the blob no more.
      lapse: d.prepare(
        `DELETE FROM blob_holds WHERE pinned = 0 AND since <= ?
            AND NOT EXISTS (SELECT 1 FROM blob_refs r WHERE r.digest = blob_holds.digest AND r.owner = blob_holds.owner)`,
      ),
      unheld: d.prepare<[], Raw>(
        `SELECT * FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM blob_holds h WHERE h.digest = b.digest)
            AND NOT EXISTS (SELECT 1 FROM blob_refs r WHERE r.digest = b.digest)`,
      ),
      createUpload: d.prepare('INSERT INTO blob_uploads (id, owner, size, created_at, expires_at) VALUES (?, ?, 0, ?, ?)'),
      getUpload: d.prepare<[string], RawUpload>('SELECT * FROM blob_uploads WHERE id = ?'),
      uploads: d.prepare<[], RawUpload>('SELECT * FROM blob_uploads'),
      ownUploads: d.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM blob_uploads WHERE owner = ?'),
      setUpload: d.prepare('UPDATE blob_uploads SET size = ?, expires_at = ? WHERE id = ?'),
      deleteUpload: d.prepare('DELETE FROM blob_uploads WHERE id = ?'),
    };
  }

  get(digest: string): BlobRow | undefined {
    const r = this.s.get.get(digest);
    return r ? row(r) : undefined;
  }

  all(): BlobRow[] {
    return this.s.all.all().map(row);
  }

  /** Whether `owner` holds the blob or references it (what lets it read, pin and reference it). */
  hasAccess(digest: string, owner: string): boolean {
    return this.s.access.get(digest, owner, digest, owner)?.ok === 1;
  }

  hold(digest: string, owner: string): { pinned: boolean; since: number } | undefined {
    const h = this.s.hold.get(digest, owner);
    return h ? { pinned: h.pinned === 1, since: h.since } : undefined;
  }

  /** A verified upload lands: the blob (sound again if it was corrupt), the uploader's hold, the session gone. */
  commit(digest: string, size: number, owner: string, pin: boolean, now: number, uploadId: string): void {
    this.db.transaction(() => {
      this.s.upsertBlob.run(digest, size, now);
      this.s.upsertHold.run(digest, owner, pin ? 1 : 0, now);
      this.s.deleteUpload.run(uploadId);
    })();
  }

  /** Pin (or unpin, starting its grace now) `owner`'s hold, made if it had none; `owner` null: every hold (the admin's unpin). */
  setPinned(digest: string, owner: string | null, pinned: boolean, now: number): void {
    this.db.transaction(() => {
      if (owner === null) {
        this.s.setPinnedAll.run(pinned ? 1 : 0, now, digest);
        return;
      }
      if (this.s.hold.get(digest, owner)) this.s.setPinned.run(pinned ? 1 : 0, now, digest, owner);
      else this.s.upsertHold.run(digest, owner, pinned ? 1 : 0, now);
    })();
  }

  /** Drop `owner`'s hold (null: every hold); true when nothing holds or references the blob after. */
  dropHold(digest: string, owner: string | null): boolean {
    return this.db.transaction(() => {
      if (owner === null) this.s.dropHolds.run(digest);
      else this.s.dropHold.run(digest, owner);
      return (this.s.holders.get(digest)?.n ?? 0) === 0 && this.s.allRefs.all(digest).length === 0;
    })();
  }

  refsOf(digest: string, owner: string | null): { owner: string; ref: string }[] {
    return owner === null ? this.s.allRefs.all(digest) : this.s.refsOf.all(digest, owner).map((r) => ({ owner, ref: r.ref }));
  }

  /** References whose name starts with `prefix`, made before `before` (ms). */
  refsStartingWith(prefix: string, before: number): { digest: string; owner: string; ref: string }[] {
    return this.s.refsStarting.all(prefix.length, prefix, before);
  }

  /** Digests `owner` references under `ref`. */
  digestsOf(owner: string, ref: string): string[] {
    return this.s.refsByOwner.all(owner, ref).map((r) => r.digest);
  }

  addRef(digest: string, owner: string, ref: string, now: number): void {
    this.s.addRef.run(digest, owner, ref, now);
  }

  /**
   * Drop a reference. Its owner's last reference gone, the owner keeps an unpinned hold from now:
   * the blob outlives its last reference by the grace period (a job re-run soon after finds it).
   */
  dropRef(digest: string, owner: string, ref: string, now: number): void {
    this.db.transaction(() => {
      if (this.s.dropRef.run(digest, owner, ref).changes === 0) return;
      if (this.s.refsOf.all(digest, owner).length > 0) return;
      const hold = this.s.hold.get(digest, owner);
      // The grace of an unpinned hold counts from this release, not from the upload.
      if (!hold) this.s.upsertHold.run(digest, owner, 0, now);
      else if (hold.pinned === 0) this.s.setPinned.run(0, now, digest, owner);
    })();
  }

  /** Blobs `owner` holds or references, with its own pin and refs; null: every blob, over every holder. */
  list(owner: string | null, digest: string | null = null): BlobListing[] {
    return (owner === null ? this.s.listAll.all({ digest }) : this.s.listOwn.all({ owner, digest })).map(listing);
  }

  markCorrupt(digest: string, now: number): void {
    this.s.corrupt.run(now, digest);
  }

  /**
   * Lapse unpinned, unreferenced holds whose grace began at or before `cutoff`, then take out the
   * rows of blobs nothing holds or references; their rows are gone when this returns (the caller
   * removes the files).
   */
  sweep(cutoff: number): BlobRow[] {
    return this.db.transaction(() => {
      this.s.lapse.run(cutoff);
      const gone = this.s.unheld.all().map(row);
      for (const b of gone) this.s.deleteBlob.run(b.digest);
      return gone;
    })();
  }

  /** Remove a blob's row (its last hold was dropped and nothing references it). */
  deleteBlob(digest: string): void {
    this.s.deleteBlob.run(digest);
  }

  createUpload(id: string, owner: string, now: number, expiresAt: number): void {
    this.s.createUpload.run(id, owner, now, expiresAt);
  }

  getUpload(id: string): UploadRow | undefined {
    const r = this.s.getUpload.get(id);
    return r ? upload(r) : undefined;
  }

  uploads(): UploadRow[] {
    return this.s.uploads.all().map(upload);
  }

  uploadsOf(owner: string): number {
    return this.s.ownUploads.get(owner)?.n ?? 0;
  }

  setUpload(id: string, size: number, expiresAt: number): void {
    this.s.setUpload.run(size, expiresAt, id);
  }

  deleteUpload(id: string): void {
    this.s.deleteUpload.run(id);
  }
}
