/**
 * Upload sessions: a blob sent in chunks, each appended at the offset the session has reached,
 * hashed on the way to disk, then committed with the digest the client expects.
 *
 * The protocol is OCI distribution's chunked upload (open a session, PATCH chunks, PUT with
 * `?digest=`) with tus's `Upload-Offset` header to say where a chunk starts: one number, checked
 * against the session's size (a chunk anywhere else is BLOB_UPLOAD_OFFSET, and the answer says the
 * right offset), rather than OCI's Content-Range, whose end a streamed chunk cannot know up front.
 *
 * A chunk is all or nothing: one that fails on the way (the client went away, its optional
 * Content-Digest does not match, the disk filled) is cut off the file again and the session stays
 * where it was, ready for the same chunk to be sent again. The running hash is copied before each
 * chunk, so a chunk taken back is taken out of the hash too; after a daemon restart the hash is
 * rebuilt from the file once, up to the size the index recorded.
 */
import { randomBytes, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir, rm, truncate } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { ROOT_OWNER } from '../engine/owner.js';
import type { SqliteBlobIndex, UploadRow } from '../store/sqlite/blobs.js';
import { RealmError } from '../util/errors.js';
import { digestOf, newHash } from './digest.js';
import type { BlobLayout } from './layout.js';

/** What the daemon holds in memory for a session between chunks. */
interface Live {
  /** sha256 of the file's first `at` bytes; null until first needed after a restart. */
  hash: Hash | null;
  at: number;
  /** A chunk or the commit is at work on it: another waits its turn (BLOB_UPLOAD_OFFSET). */
  busy: boolean;
}

export interface UploadsOptions {
  /** An idle session (no chunk for this long) expires and its file goes (ms). */
  ttlMs: number;
  /** Most open sessions one principal may have. */
  maxPerOwner: number;
  now: () => number;
}

export class Uploads {
  private readonly live = new Map<string, Live>();

  constructor(
    private readonly index: SqliteBlobIndex,
    private readonly layout: BlobLayout,
    private readonly o: UploadsOptions,
  ) {}

  async create(owner: string): Promise<UploadRow> {
    if (this.index.uploadsOf(owner) >= this.o.maxPerOwner)
      throw new RealmError(
        'CAPACITY_EXCEEDED',
        `you have ${this.o.maxPerOwner} open blob uploads: commit or cancel one (DELETE /v1/blobs/uploads/ID), or wait for idle ones to expire`,
      );
    const id = randomBytes(16).toString('hex');
    const now = this.o.now();
    await (await open(this.layout.upload(id), 'wx', 0o600)).close();
    this.index.createUpload(id, owner, now, now + this.o.ttlMs);
    this.live.set(id, { hash: newHash(), at: 0, busy: false });
    return this.get(id, owner);
  }

  /** The session, if `owner` opened it (root sees every one); another's does not exist for it. */
  get(id: string, owner: string): UploadRow {
    const row = /^[0-9a-f]{32}$/.test(id) ? this.index.getUpload(id) : undefined;
    if (!row || (owner !== ROOT_OWNER && row.owner !== owner) || row.expiresAt <= this.o.now())
      throw new RealmError(
        'BLOB_UPLOAD_NOT_FOUND',
        `no blob upload "${id.slice(0, 64)}" (it expired after ${Math.round(this.o.ttlMs / 1000)} s without a chunk, was committed or cancelled); start a new one with POST /v1/blobs/uploads`,
      );
    return row;
  }

  /**
   * Append `body` at `offset`, which must be the session's size. `chunkDigest` (from the
   * request's Content-Digest) is checked before the chunk counts. Resolves with the session's new state.
   */
  async append(id: string, owner: string, offset: number, body: Readable, chunkDigest?: string): Promise<UploadRow> {
    const row = this.get(id, owner);
    const live = this.claim(row, offset);
    const path = this.layout.upload(id);
    try {
      const hash = (await this.hashAt(live, path, row.size)).copy();
      const mine = chunkDigest ? newHash() : null;
      const n = await writeHashed(body, path, row.size, (c) => {
        hash.update(c);
        mine?.update(c);
      });
      if (mine && chunkDigest !== digestOf(mine))
        throw new RealmError(
          'BLOB_DIGEST_MISMATCH',
          `the chunk at offset ${offset} has digest ${digestOf(mine)}, not ${chunkDigest} as its Content-Digest says; it was not kept: send it again`,
          { offset: row.size },
        );
      const size = row.size + n;
      live.hash = hash;
      live.at = size;
      this.index.setUpload(id, size, this.o.now() + this.o.ttlMs);
      return { ...row, size, expiresAt: this.o.now() + this.o.ttlMs };
    } catch (e) {
      // All or nothing: the file goes back to what the session had accepted.
      await truncate(path, row.size).catch(() => undefined);
      throw noSpace(e);
    } finally {
      live.busy = false;
    }
  }

  /**
   * The session's file and the digest of what it holds, for a commit: the session stays claimed
   * (no chunk can land) until `release` or `drop`.
   */
  async finish(id: string, owner: string): Promise<{ path: string; digest: string; size: number }> {
    const row = this.get(id, owner);
    const live = this.claim(row, row.size);
    try {
      const hash = await this.hashAt(live, this.layout.upload(id), row.size);
      return { path: this.layout.upload(id), digest: digestOf(hash), size: row.size };
    } catch (e) {
      live.busy = false;
      throw e;
    }
  }

  /** Let chunks land on a claimed session again (its commit failed on something the client can fix). */
  release(id: string): void {
    const live = this.live.get(id);
    if (live) live.busy = false;
  }

  /** Forget a session whose file was committed (renamed into the store) or is to go. */
  async drop(id: string): Promise<void> {
    this.index.deleteUpload(id);
    this.live.delete(id);
    await rm(this.layout.upload(id), { force: true });
  }

  async cancel(id: string, owner: string): Promise<void> {
    const row = this.get(id, owner);
    this.claim(row, row.size);
    await this.drop(id);
  }

  /** Remove sessions idle past their time and files no session owns (a crash's leftovers); how many went. */
  async expire(): Promise<number> {
    const now = this.o.now();
    let n = 0;
    for (const row of this.index.uploads()) {
      if (row.expiresAt > now || this.live.get(row.id)?.busy) continue;
      await this.drop(row.id);
      n++;
    }
    const known = new Set(this.index.uploads().map((r) => r.id));
    for (const f of await readdir(this.layout.uploadsDir)) {
      if (known.has(f) || this.live.get(f)?.busy) continue;
      await rm(this.layout.upload(f), { force: true });
      n++;
    }
    return n;
  }

  /** Mark the session busy for one chunk (or the commit) starting at `offset`, or say why not. */
  private claim(row: UploadRow, offset: number): Live {
    let live = this.live.get(row.id);
    if (!live) this.live.set(row.id, (live = { hash: null, at: 0, busy: false }));
    if (live.busy)
      throw new RealmError(
        'BLOB_UPLOAD_OFFSET',
        `a chunk is still being written to upload ${row.id}; wait for it (or for its connection to close) and ask GET /v1/blobs/uploads/${row.id} where to go on`,
        { offset: row.size },
      );
    if (offset !== row.size)
      throw new RealmError(
        'BLOB_UPLOAD_OFFSET',
        `upload ${row.id} has ${row.size} bytes: the next chunk starts at Upload-Offset ${row.size}, not ${offset}`,
        { offset: row.size },
      );
    live.busy = true;
    return live;
  }

  /** The hash of the file's first `size` bytes: the live one, or rebuilt from the file (after a restart). */
  private async hashAt(live: Live, path: string, size: number): Promise<Hash> {
    if (live.hash && live.at === size) return live.hash;
    // What a chunk cut short by a crash left past the recorded size is not the session's.
    await truncate(path, size);
    const hash = newHash();
    if (size > 0) for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(c as Buffer);
    live.hash = hash;
    live.at = size;
    return hash;
  }
}

/** Bytes gathered before one write: the socket's 64 KiB pieces, written a MiB at a time (writev). */
const WRITE_BATCH = 1 << 20;
/** Written bytes after which the disk is asked to start on them (a datasync in the background). */
const SYNC_EVERY = 8 << 20;

/**
 * Write a body into `path` from `at`, each piece seen by `onChunk` first; the bytes written. One
 * batch is written while the next is read; every write has landed (or failed) when this returns
 * or throws, so a caller that cuts the file back cuts it after the last write.
 *
 * Durable on return: the chunk is on the disk (fdatasync) before its offset is recorded and
 * acknowledged, so a session resumed after a power cut holds what it says. The kernel would
 * otherwise start writing a GiB of dirty pages only at that sync (or 30 s later): a datasync is
 * started every SYNC_EVERY bytes, one at a time, so the disk writes while the socket is read and
 * the sync at the end waits for the last few MiB only.
 */
async function writeHashed(body: Readable, path: string, at: number, onChunk: (c: Uint8Array) => void): Promise<number> {
  const fh = await open(path, 'r+');
  let pending: Promise<unknown> = Promise.resolve();
  // The datasync under way, if any (in an object: it is set and cleared from callbacks).
  const bg: { sync: Promise<unknown> | null } = { sync: null };
  let pos = at;
  let synced = at;
  let n = 0;
  try {
    let batch: Uint8Array[] = [];
    let size = 0;
    const flush = async (): Promise<void> => {
      await pending;
      // Everything before `pos` has landed: have the disk take it while the next batches come.
      if (!bg.sync && pos - synced >= SYNC_EVERY) {
        synced = pos;
        bg.sync = fh.datasync().finally(() => (bg.sync = null));
        bg.sync.catch(() => undefined); // a failing disk fails the final sync too
      }
      const [b, p] = [batch, pos];
      pos += size;
      batch = [];
      size = 0;
      pending = fh.writev(b, p);
      pending.catch(() => undefined); // awaited (and thrown) at the next flush or the end
    };
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      onChunk(chunk);
      n += chunk.length;
      batch.push(chunk);
      size += chunk.length;
      if (size >= WRITE_BATCH) await flush();
    }
    if (size) await flush();
    await pending;
    await bg.sync;
    if (n) await fh.datasync();
    return n;
  } finally {
    await pending.catch(() => undefined);
    await bg.sync?.catch(() => undefined);
    await fh.close();
  }
}

/** A full disk, or a client that went away mid-chunk, said so (neither is the daemon's fault to log). */
export function noSpace(e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new RealmError(
      'BLOB_NO_SPACE',
      "the daemon's data dir is out of space; free some (`realm blob gc`, `realm image prune`)",
    );
  if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (e as Error).message === 'aborted')
    return new RealmError(
      'INVALID_REQUEST',
      "the chunk ended before its end (the connection broke); it was not kept: send it again from the upload's offset",
    );
  return e;
}
