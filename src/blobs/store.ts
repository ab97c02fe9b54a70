/**
 * The blob store: content-addressed (sha256) bytes under `<data-dir>/blobs/` for jobs' inputs and
 * artifacts, indexed in the state database (store/sqlite/blobs.ts). Images keep their own OCI
 * layout (src/images/): their blobs live and are pruned with the images that use them.
 *
 * - Written by upload sessions (uploads.ts), streamed to disk while hashed, never held in memory;
 *   a commit names the digest the client expects and lands only if it matches. Durable: each
 *   chunk is on the disk before it is acknowledged, a commit's rename before its record.
 * - Read verified (verify.ts): a corrupt file is never served whole, and is quarantined.
 * - Stored once per content, held per principal. Who may read a blob: a principal that uploaded
 *   it (or pinned it, or whose unpinned hold is in its grace period) or references it; root, the
 *   node's admin, reads all. Knowing a digest is not enough: for anyone else the blob does not
 *   exist (BLOB_NOT_FOUND, the answer a digest nobody stored gets), and an upload of content
 *   another principal already has still sends and checks every byte, and answers the same.
 * - Referenced by owners (`addRef`/`dropRef`: jobs' inputs and artifacts); a referenced blob is
 *   not removed (BLOB_IN_USE) nor collected.
 * - Collected (`gc`) when nothing pins or references it, once the grace period since its last
 *   hold was released has passed; periodically and on demand.
 */
import { closeSync, fstatSync, openSync, statSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { ROOT_OWNER } from '../engine/owner.js';
import type { BlobListing, SqliteBlobIndex, UploadRow } from '../store/sqlite/blobs.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { parseDigest } from './digest.js';
import { BlobLayout } from './layout.js';
import { Uploads, noSpace } from './uploads.js';
import { type ByteRange, corruptError, sendVerified, verifiedRead } from './verify.js';
import { log } from '../logs/log.js';

export interface BlobStoreOptions {
  dataDir: string;
  index: SqliteBlobIndex;
  /** How long an unpinned, unreferenced blob is kept after its last hold was released (ms; default 1 h). */
  graceMs?: number;
  /** An upload session idle this long expires (ms; default 1 h). */
  uploadTtlMs?: number;
  /** How often GC runs on its own (ms; default 10 min; 0: only on demand). */
  gcIntervalMs?: number;
  now?: () => number;
}

/** A blob as its caller sees it. */
export interface BlobInfo {
  digest: string;
  size: number;
  createdAt: string;
  /** The caller holds it pinned (for root: anyone does). */
  pinned: boolean;
  /** References the caller holds to it (for root: all). */
  refs: number;
  /** When GC may take it unless it is pinned or referenced by then; null while it is. */
  expiresAt: string | null;
  /** A read found its bytes wrong: quarantined until it is uploaded again. */
  corrupt: boolean;
}

export interface UploadInfo {
  id: string;
  /** Bytes received: where the next chunk starts (Upload-Offset). */
  offset: number;
  expiresAt: string;
}

export interface GcResult {
  /** Blobs removed and their bytes. */
  blobs: number;
  bytes: number;
  /** Expired upload sessions and stray upload files removed. */
  uploads: number;
  /** Quarantined files removed (past the grace period). */
  quarantined: number;
}

/** An open, verified read of a blob (or of a range of it), consumed once: as `stream` or by `sendTo`. */
export interface BlobRead {
  info: BlobInfo;
  start: number;
  end: number;
  /** The bytes as a stream that fails before its end on a corrupt blob. */
  readonly stream: Readable;
  /**
   * The bytes written into a socket or an HTTP response (which must be done with a chunk when it
   * calls the chunk's write callback), from reused buffers: the fast way to serve a download.
   * Destroys `out` before the end on a corrupt blob, and rejects.
   */
  sendTo(out: Writable): Promise<void>;
}

const HOUR = 3_600_000;
const MAX_UPLOADS_PER_OWNER = 64;

const notFound = (digest: string): RealmError =>
  new RealmError('BLOB_NOT_FOUND', `no blob ${digest} that you uploaded, pinned or reference; \`realm blob ls\` lists yours`);

export class BlobStore {
  readonly layout: BlobLayout;
  readonly graceMs: number;
  private readonly uploads: Uploads;
  private readonly index: SqliteBlobIndex;
  private readonly now: () => number;
  private readonly gcIntervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  /** File moves (commit, quarantine, remove, GC) one at a time: a GC never takes a file a commit is landing. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(o: BlobStoreOptions) {
    this.layout = new BlobLayout(o.dataDir);
    this.index = o.index;
    this.graceMs = o.graceMs ?? HOUR;
    this.gcIntervalMs = o.gcIntervalMs ?? 10 * 60_000;
    this.now = o.now ?? Date.now;
    this.uploads = new Uploads(this.index, this.layout, {
      ttlMs: o.uploadTtlMs ?? HOUR,
      maxPerOwner: MAX_UPLOADS_PER_OWNER,
      now: this.now,
    });
  }

  /** Collect now (leftovers of a crash: stray uploads, files without a record), then every gcIntervalMs. */
  async start(): Promise<void> {
    await this.gc();
    if (this.gcIntervalMs > 0) {
      this.timer = setInterval(() => {
        this.gc().catch((e: unknown) => log.error(`blob GC failed: ${errorMessage(e)}`, { err: e }));
      }, this.gcIntervalMs);
      this.timer.unref();
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.chain.catch(() => undefined);
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  // ---------------- uploads ----------------

  async createUpload(owner: string): Promise<UploadInfo> {
    return uploadInfo(await this.uploads.create(owner));
  }

  uploadStatus(id: string, owner: string): UploadInfo {
    return uploadInfo(this.uploads.get(id, owner));
  }

  /** Append a chunk at `offset` (the session's size); `chunkDigest`, when given, must match the chunk. */
  async appendChunk(id: string, owner: string, offset: number, body: Readable, chunkDigest?: string): Promise<UploadInfo> {
    return uploadInfo(await this.uploads.append(id, owner, offset, body, chunkDigest));
  }

  /**
   * Land the session's bytes as a blob if they hash to `expected` (when given). A mismatch is
   * BLOB_DIGEST_MISMATCH and the session is gone with its file: nothing of it is stored.
   */
  async commitUpload(id: string, owner: string, expected: string | undefined, pin: boolean): Promise<BlobInfo> {
    const { path, digest, size } = await this.uploads.finish(id, owner);
    if (expected !== undefined && expected !== digest) {
      await this.uploads.drop(id);
      throw new RealmError(
        'BLOB_DIGEST_MISMATCH',
        `the upload's ${size} bytes have digest ${digest}, not ${expected}; nothing was stored and the upload is gone: send the blob again`,
        { digest },
      );
    }
    try {
      await this.locked(async () => {
        // The verified upload always becomes the file (a rename): content stored once, and a
        // quarantined or silently damaged copy is repaired by uploading it again.
        const dest = this.layout.blob(digest);
        const made = await mkdir(dirname(dest), { recursive: true, mode: 0o700 });
        await rename(path, dest);
        // The bytes were synced chunk by chunk (uploads.ts); the names they now have are synced
        // before the record says the blob exists, so a power cut cannot leave a record without its file.
        await syncDir(dirname(dest));
        if (made) await syncDir(this.layout.blobsDir);
        this.index.commit(digest, size, owner, pin, this.now(), id);
      });
    } catch (e) {
      await this.uploads.drop(id);
      throw noSpace(e);
    }
    await this.uploads.drop(id);
    return this.info(digest, owner);
  }

  async cancelUpload(id: string, owner: string): Promise<void> {
    await this.uploads.cancel(id, owner);
  }

  /** One request's body as a whole blob: a session of one chunk, committed (and cancelled on any failure). */
  async put(owner: string, body: Readable, o: { digest?: string; pin?: boolean } = {}): Promise<BlobInfo> {
    const up = await this.uploads.create(owner);
    try {
      await this.uploads.append(up.id, owner, 0, body);
      return await this.commitUpload(up.id, owner, o.digest, o.pin ?? true);
    } finally {
      await this.uploads.drop(up.id);
    }
  }

  // ---------------- reading ----------------

  /** The blob as `owner` sees it; BLOB_NOT_FOUND unless `owner` may read it. */
  info(digestText: string, owner: string): BlobInfo {
    const digest = parseDigest(digestText);
    const own = owner === ROOT_OWNER ? null : owner;
    if (own !== null && !this.index.hasAccess(digest, own)) throw notFound(digest);
    const row = this.index.list(own, digest)[0];
    if (!row) throw notFound(digest);
    return this.view(row);
  }

  /** Every blob `owner` may read (root: all), oldest first. */
  list(owner: string): BlobInfo[] {
    return this.index.list(owner === ROOT_OWNER ? null : owner).map((b) => this.view(b));
  }

  /** Open a verified read of the blob, or of `range` of it (clamped; BLOB_CORRUPT when it is known bad). */
  open(digestText: string, owner: string, range?: { start: number; end?: number }): BlobRead {
    const info = this.info(digestText, owner);
    const digest = info.digest;
    if (info.corrupt) throw corruptError(digest);
    const path = this.layout.blob(digest);
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      this.quarantine(digest, null);
      throw corruptError(digest);
    }
    const ino = fstatSync(fd).ino;
    if (fstatSync(fd).size !== info.size) {
      closeSync(fd);
      this.quarantine(digest, ino);
      throw corruptError(digest);
    }
    const r: ByteRange = { start: range?.start ?? 0, end: Math.min(range?.end ?? info.size - 1, info.size - 1) };
    const onCorrupt = (): void => this.quarantine(digest, ino);
    // The file descriptor goes to whichever way of reading is used first, and only to it.
    let used = false;
    const claim = (): void => {
      if (used) throw new Error(`blob read of ${digest} consumed twice`);
      used = true;
    };
    let stream: Readable | undefined;
    return {
      info,
      start: r.start,
      end: r.end,
      get stream(): Readable {
        if (!stream) {
          claim();
          stream = verifiedRead(fd, digest, info.size, r, onCorrupt);
        }
        return stream;
      },
      sendTo: (out: Writable): Promise<void> => {
        claim();
        return sendVerified(fd, digest, info.size, r, out, onCorrupt);
      },
    };
  }

  /** Move a file found corrupt aside and mark its blob, unless a new upload replaced it meanwhile (another inode). */
  private quarantine(digest: string, ino: number | null): void {
    void this.locked(async () => {
      const path = this.layout.blob(digest);
      const now = this.now();
      try {
        if (ino !== null && statSync(path).ino !== ino) return;
        await rename(path, this.layout.quarantine(digest, now));
      } catch {
        /* gone already: the mark says what is wrong */
      }
      this.index.markCorrupt(digest, now);
      log.error(`blob ${digest} failed its digest check on read; moved to ${this.layout.quarantineDir}`, { digest });
    }).catch((e: unknown) => log.error(`quarantining blob ${digest} failed: ${errorMessage(e)}`, { digest, err: e }));
  }

  // ---------------- holds ----------------

  pin(digestText: string, owner: string): BlobInfo {
    const digest = this.info(digestText, owner).digest;
    this.index.setPinned(digest, owner, true, this.now());
    return this.info(digest, owner);
  }

  /** Unpin the caller's hold: the blob is collected after the grace period unless pinned or referenced again. */
  unpin(digestText: string, owner: string): BlobInfo {
    const digest = this.info(digestText, owner).digest;
    this.index.setPinned(digest, owner, false, this.now());
    return this.info(digest, owner);
  }

  /**
   * Drop the caller's hold now (root: every hold); the bytes go when nothing else holds or
   * references them. Refused with BLOB_IN_USE while the caller (root: anyone) references it.
   */
  async remove(digestText: string, owner: string): Promise<void> {
    const digest = this.info(digestText, owner).digest;
    const own = owner === ROOT_OWNER ? null : owner;
    await this.locked(async () => {
      const refs = this.index.refsOf(digest, own);
      if (refs.length)
        throw new RealmError(
          'BLOB_IN_USE',
          `blob ${digest} is referenced by ${refs
            .slice(0, 5)
            .map((r) => r.ref)
            .join(', ')}${refs.length > 5 ? ` and ${refs.length - 5} more` : ''}; remove what uses it first`,
          { refs: refs.map((r) => r.ref) },
        );
      if (this.index.dropHold(digest, own)) {
        this.index.deleteBlob(digest);
        await rm(this.layout.blob(digest), { force: true });
      }
    });
  }

  // ---------------- references (jobs) ----------------

  /**
   * Record that `ref` (e.g. `job:NAME#3:input:src.tar`) of `owner` uses the blob: it is kept while
   * the reference lasts, and `owner` may read it. `owner` must be able to read it already.
   * @example blobs.addRef('sha256:…', 'uid:1000', 'job:build#1:input:src.tar');
   */
  addRef(digestText: string, owner: string, ref: string): void {
    const digest = parseDigest(digestText);
    if (!this.index.get(digest) || (owner !== ROOT_OWNER && !this.index.hasAccess(digest, owner))) throw notFound(digest);
    this.index.addRef(digest, owner, ref, this.now());
  }

  /** Drop a reference; its owner keeps the blob for the grace period after its last one (see the index). */
  dropRef(digestText: string, owner: string, ref: string): void {
    this.index.dropRef(parseDigest(digestText), owner, ref, this.now());
  }

  /** Every reference named `prefix…` made before `before` (ms since epoch), with its blob and owner. */
  refsStartingWith(prefix: string, before: number): { digest: string; owner: string; ref: string }[] {
    return this.index.refsStartingWith(prefix, before);
  }

  /** What `owner` references the blob by (root: everyone's). */
  refs(digestText: string, owner: string): { owner: string; ref: string }[] {
    return this.index.refsOf(parseDigest(digestText), owner === ROOT_OWNER ? null : owner);
  }

  // ---------------- collection ----------------

  /**
   * Remove blobs nothing pins or references whose grace (`graceMs`, default the store's) has
   * passed, expired upload sessions, files no record owns, and quarantined files past the grace.
   */
  async gc(o: { graceMs?: number } = {}): Promise<GcResult> {
    const grace = o.graceMs ?? this.graceMs;
    const result: GcResult = { blobs: 0, bytes: 0, uploads: 0, quarantined: 0 };
    await this.locked(async () => {
      const cutoff = this.now() - grace;
      for (const b of this.index.sweep(cutoff)) {
        await rm(this.layout.blob(b.digest), { force: true });
        result.blobs++;
        result.bytes += b.size;
      }
      // Files without a record: a crash between a commit's rename and its record, or a record removed by hand.
      const known = new Set(this.index.all().map((b) => b.digest.slice('sha256:'.length)));
      for (const sub of await readdir(this.layout.blobsDir)) {
        for (const f of await readdir(join(this.layout.blobsDir, sub))) {
          if (known.has(f)) continue;
          const p = join(this.layout.blobsDir, sub, f);
          result.bytes += (await stat(p).catch(() => ({ size: 0 }))).size;
          await rm(p, { force: true });
          result.blobs++;
        }
      }
      for (const f of await readdir(this.layout.quarantineDir)) {
        const at = Number(f.split('.')[1]);
        if (Number.isFinite(at) && at > cutoff) continue;
        await rm(join(this.layout.quarantineDir, f), { force: true });
        result.quarantined++;
      }
    });
    result.uploads = await this.uploads.expire();
    return result;
  }

  private view(b: BlobListing): BlobInfo {
    const lapses = !b.pinned && b.refs === 0;
    return {
      digest: b.digest,
      size: b.size,
      createdAt: new Date(b.createdAt).toISOString(),
      pinned: b.pinned,
      refs: b.refs,
      expiresAt: lapses ? new Date((b.since ?? b.createdAt) + this.graceMs).toISOString() : null,
      corrupt: b.corruptAt !== null,
    };
  }
}

/** fsync a directory: the names created or renamed in it survive a power cut. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function uploadInfo(r: UploadRow): UploadInfo {
  return { id: r.id, offset: r.size, expiresAt: new Date(r.expiresAt).toISOString() };
}
