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
  /** sha256 of the file's first `at` bytes; null until first needed after a restart (or after a chunk failed late). */
  hash: Hash | null;
  /** Bytes written and hashed: where the next chunk starts (ahead of the recorded size while a chunk is being synced). */
  at: number;
  /** A chunk (or the commit) is writing: the next one waits for it to land, then its offset is checked. */
  busy: boolean;
  /** Called when `busy` clears. */
  waiters: (() => void)[];
  /** Settles when the last chunk written is on the disk and recorded (rejects if it was not kept). */
  acked: Promise<void>;
}

/** How long a chunk waits for the one before it to finish writing before it is refused (BLOB_UPLOAD_OFFSET). */
const BUSY_WAIT_MS = 30_000;
/** How long a chunk past where the bytes end waits for the chunks before it to arrive before it is refused. */
const AHEAD_WAIT_MS = 500;

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
    this.live.set(id, { hash: newHash(), at: 0, busy: false, waiters: [], acked: Promise.resolve() });
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
   * Append `body` at `offset`, which must be where the session's bytes end. `chunkDigest` (from
   * the request's Content-Digest) is checked before the chunk counts. Resolves with the session's
   * new state once the chunk is on the disk and recorded.
   *
   * Chunks overlap with the disk: once a chunk's bytes are written (not yet synced) the next one
   * may land after them while this one's fdatasync runs, so a client that sends the next chunk
   * before this one is answered does not wait for the disk after each chunk. Answers and records
   * still come in order: a chunk is acknowledged only after every chunk before it, and fails if
   * one of those was not kept (its sync failed), as BLOB_UPLOAD_OFFSET with where to go on.
   */
  async append(id: string, owner: string, offset: number, body: Readable, chunkDigest?: string): Promise<UploadRow> {
    const { row, live } = await this.claim(id, owner, offset);
    const path = this.layout.upload(id);
    const before = live.acked;
    let done!: { resolve: () => void; reject: (e: unknown) => void };
    live.acked = new Promise<void>((resolve, reject) => (done = { resolve, reject }));
    live.acked.catch(() => undefined); // a later chunk or the commit reads it
    let landed = false;
    try {
      const hash = (await this.hashAt(live, path, row.size, offset)).copy();
      const mine = chunkDigest ? newHash() : null;
      const w = await writeHashed(body, path, offset, (c) => {
        hash.update(c);
        mine?.update(c);
      });
      if (mine && chunkDigest !== digestOf(mine)) {
        await w.durable.catch(() => undefined);
        throw new RealmError(
          'BLOB_DIGEST_MISMATCH',
          `the chunk at offset ${offset} has digest ${digestOf(mine)}, not ${chunkDigest} as its Content-Digest says; it was not kept: send it again`,
          { offset },
        );
      }
      // Written: the next chunk may land after it while this one is synced.
      landed = true;
      live.hash = hash;
      live.at = offset + w.n;
      this.release(id);
      await w.durable;
      await before.catch(() => {
        throw new RealmError(
          'BLOB_UPLOAD_OFFSET',
          `the chunk before offset ${offset} of upload ${id} was not kept, nor this one; ask GET /v1/blobs/uploads/${id} where to go on`,
          { offset: this.index.getUpload(id)?.size ?? 0 },
        );
      });
      const size = offset + w.n;
      const expiresAt = this.o.now() + this.o.ttlMs;
      this.index.setUpload(id, size, expiresAt);
      done.resolve();
      return { ...row, size, expiresAt };
    } catch (e) {
      done.reject(e);
      if (!landed) {
        // All or nothing: the file goes back to where this chunk started, and the chunks before
        // it stand as they did (nothing came after this one: it held the session).
        live.acked = before;
        await truncate(path, offset).catch(() => undefined);
        this.release(id);
      } else if (live.at >= offset) {
        // Not kept after later chunks may have landed on it: the session goes back to what it
        // recorded, its hash rebuilt from the file (cut to that size) when the next chunk comes.
        live.hash = null;
      }
      throw noSpace(e);
    }
  }

  /**
   * The session's file and the digest of what it holds, for a commit: the session stays claimed
   * (no chunk can land) until `release` or `drop`.
   */
  async finish(id: string, owner: string): Promise<{ path: string; digest: string; size: number }> {
    // Chunks still being synced are recorded first (or fail), so the commit sees what they left.
    await this.live.get(this.get(id, owner).id)?.acked.catch(() => undefined);
    const size = this.get(id, owner).size;
    const { live } = await this.claim(id, owner, size);
    try {
      const hash = await this.hashAt(live, this.layout.upload(id), size, size);
      return { path: this.layout.upload(id), digest: digestOf(hash), size };
    } catch (e) {
      this.release(id);
      throw e;
    }
  }

  /** Let chunks land on a claimed session again (its commit failed on something the client can fix). */
  release(id: string): void {
    const live = this.live.get(id);
    if (!live) return;
    live.busy = false;
    for (const w of live.waiters.splice(0)) w();
  }

  /** Forget a session whose file was committed (renamed into the store) or is to go. */
  async drop(id: string): Promise<void> {
    this.index.deleteUpload(id);
    this.live.delete(id);
    await rm(this.layout.upload(id), { force: true });
  }

  async cancel(id: string, owner: string): Promise<void> {
    const { row } = await this.claim(id, owner, undefined);
    await this.live.get(row.id)?.acked.catch(() => undefined);
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

  /**
   * Mark the session busy for one chunk (or the commit) starting at `offset` (undefined: anywhere,
   * to cancel), or say why not. A chunk still writing is waited for (the client may send the next
   * one as soon as it has sent this one) up to BUSY_WAIT_MS.
   */
  private async claim(id: string, owner: string, offset: number | undefined): Promise<{ row: UploadRow; live: Live }> {
    let row = this.get(id, owner);
    let live = this.live.get(row.id);
    if (!live) this.live.set(row.id, (live = { hash: null, at: 0, busy: false, waiters: [], acked: Promise.resolve() }));
    const l = live;
    const now = Date.now();
    for (;;) {
      // A chunk ahead of where the bytes end may have overtaken the one before it (sent on another
      // connection as soon as that one was sent): it waits a moment for that one to land.
      const end = l.hash ? l.at : row.size;
      const until = l.busy ? now + BUSY_WAIT_MS : offset !== undefined && offset > end ? now + AHEAD_WAIT_MS : 0;
      if (Date.now() >= until) break;
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        l.waiters.push(resolve);
        timer = setTimeout(resolve, until - Date.now());
      });
      clearTimeout(timer);
      row = this.get(id, owner);
    }
    if (live.busy)
      throw new RealmError(
        'BLOB_UPLOAD_OFFSET',
        `a chunk is still being written to upload ${row.id}; wait for it (or for its connection to close) and ask GET /v1/blobs/uploads/${row.id} where to go on`,
        { offset: row.size },
      );
    // Where the bytes end: past the recorded size while chunks written are being synced.
    const end = live.hash ? live.at : row.size;
    if (offset !== undefined && offset !== end)
      throw new RealmError(
        'BLOB_UPLOAD_OFFSET',
        `upload ${row.id} has ${end} bytes: the next chunk starts at Upload-Offset ${end}, not ${offset}`,
        { offset: end },
      );
    live.busy = true;
    return { row, live };
  }

  /**
   * The hash of the file's first `at` bytes: the live one, or (after a restart, or a chunk that
   * failed late) rebuilt from the file cut back to `recorded`, the size the index holds.
   */
  private async hashAt(live: Live, path: string, recorded: number, at: number): Promise<Hash> {
    if (live.hash && live.at === at) return live.hash;
    // What a chunk cut short by a crash left past the recorded size is not the session's.
    await truncate(path, recorded);
    const hash = newHash();
    if (recorded > 0) for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(c as Buffer);
    live.hash = hash;
    live.at = recorded;
    if (at !== recorded)
      throw new RealmError('BLOB_UPLOAD_OFFSET', `upload has ${recorded} bytes: the next chunk starts there, not at ${at}`, {
        offset: recorded,
      });
    return hash;
  }
}

/** Bytes gathered before one write: the socket's 64 KiB pieces, written a MiB at a time (writev). */
const WRITE_BATCH = 1 << 20;
/** Written bytes after which the disk is asked to start on them (a datasync in the background). */
const SYNC_EVERY = 8 << 20;

/**
 * Write a body into `path` from `at`, each piece seen by `onChunk` first: the bytes written, once
 * every write has landed (or, thrown, failed), so a caller that cuts the file back cuts it after
 * the last write; and `durable`, which settles when they are on the disk. One batch is written
 * while the next is read.
 *
 * Durable: a chunk is on the disk (fdatasync) before its offset is recorded and acknowledged, so
 * a session resumed after a power cut holds what it says. The kernel would otherwise start
 * writing a GiB of dirty pages only at that sync (or 30 s later): a datasync is started every
 * SYNC_EVERY bytes, one at a time, so the disk writes while the socket is read and the sync at the
 * end waits for the last few MiB only (while the next chunk may already be arriving).
 */
async function writeHashed(
  body: Readable,
  path: string,
  at: number,
  onChunk: (c: Uint8Array) => void,
): Promise<{ n: number; durable: Promise<void> }> {
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
  } catch (e) {
    await pending.catch(() => undefined);
    await bg.sync?.catch(() => undefined);
    await fh.close();
    throw e;
  }
  const durable = (async (): Promise<void> => {
    try {
      await bg.sync;
      if (n) await fh.datasync();
    } finally {
      await fh.close();
    }
  })();
  durable.catch(() => undefined); // awaited by the caller
  return { n, durable };
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
