/**
 * The daemon's blob store: content-addressed (sha256) bytes for jobs' inputs and artifacts.
 *
 * Uploads go in chunks over an upload session (POST /v1/blobs/uploads, PATCH at Upload-Offset,
 * PUT ?digest=), hashed here as they are read: a chunk that fails is sent again from where the
 * daemon says the session stands, and the commit names the digest computed here, so the daemon
 * keeps the blob only if it received exactly these bytes. Downloads are checked against the
 * digest as they are written, and resumed with a Range where a connection breaks.
 *
 * @example
 *   const c = new Client();
 *   const { digest } = await c.blobs.put('./src.tar.gz');
 *   await c.blobs.download(digest, './copy.tar.gz');
 */
import { createHash, type Hash } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import type { Client } from './client.js';
import { BlobError, ConflictError, DaemonUnreachableError, RealmError, errorFromBody } from './errors.js';
import { rawCapable, rawDownload } from './raw-download.js';

/** A blob as the caller sees it. */
export interface BlobInfo {
  /** `sha256:<hex>`. */
  digest: string;
  size: number;
  createdAt: string;
  /** The caller holds it pinned (for root: anyone does): GC never takes it. */
  pinned: boolean;
  /** References the caller holds to it (jobs using it; for root: all). */
  refs: number;
  /** When GC may take it unless pinned or referenced by then; null while it is. */
  expiresAt: string | null;
  /** A read found the daemon's copy corrupt: quarantined until uploaded again. */
  corrupt: boolean;
}

/** Where an upload session stands. */
export interface BlobUpload {
  id: string;
  /** Bytes the daemon holds: where the next chunk starts. */
  offset: number;
  expiresAt: string;
}

export interface BlobPutOptions {
  /** Pin it (the default): kept until `rm`/`unpin`. False: collected after the daemon's grace period unless referenced. */
  pin?: boolean;
  /** Bytes per chunk (default 16 MiB); each is held in memory until it is answered (three at most for a file). */
  chunkSize?: number;
  /** Times one chunk is sent again after a failure (default 3). */
  retries?: number;
  /** Send each chunk's sha-256 (Content-Digest) so the daemon refuses a damaged chunk on arrival (default false: the commit's digest catches it). */
  chunkDigests?: boolean;
  /** Continue this upload session (its id) from where the daemon says it stands; the source must start at its beginning. */
  resume?: string;
  /** Told the bytes sent so far (and the total, when known). */
  onProgress?: (sent: number, total: number | undefined) => void;
  signal?: AbortSignal;
}

export type BlobSource = Uint8Array | string | AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>;

const DEFAULT_CHUNK = 16 * 1024 * 1024;

/** A chunk on its way: its body all sent, and the daemon's answer (the session's new offset). */
interface ChunkSend {
  sent: Promise<void>;
  answer: Promise<number>;
}
const HASH_SLICE = 1024 * 1024;
const enc = encodeURIComponent;

/** Whether a failure is worth sending the chunk again for: the connection, or the daemon's side of it. */
function retriable(e: unknown): boolean {
  if ((e as Error).name === 'AbortError') return false;
  if (e instanceof DaemonUnreachableError) return true;
  if (e instanceof RealmError)
    return (e.status ?? 0) >= 500 || e.code === 'BLOB_DIGEST_MISMATCH' || e.code === 'BLOB_UPLOAD_OFFSET';
  return true; // a connection reset mid-body surfaces as a plain TypeError from fetch
}

export class Blobs {
  constructor(private readonly client: Client) {}

  /**
   * Upload bytes, a file (a path), or a stream; resolves with the stored blob. Resumable: every
   * chunk is retried from the offset the daemon holds, and `resume` continues an earlier session.
   */
  async put(source: BlobSource, o: BlobPutOptions = {}): Promise<BlobInfo> {
    const chunkSize = o.chunkSize ?? DEFAULT_CHUNK;
    const up = o.resume ? await this.upload(o.resume) : await this.client.request<BlobUpload>('POST', '/v1/blobs/uploads');
    // The source is hashed as it is read, in order, whatever is sent again: the digest is the source's.
    const hash = createHash('sha256');
    let total: number | undefined;
    let read = 0;
    let offset = up.offset;
    // The next chunk goes as soon as the one before is all sent, not answered: the daemon writes it
    // while it syncs the one before (their answers come in order). At most two unanswered chunks,
    // while the next is read and hashed (two cores: this process and the daemon).
    let prev: ChunkSend | undefined;
    let older: Promise<number> | undefined;
    for await (const chunk of await this.chunks(source, chunkSize, hash, (n) => (total = n))) {
      const start = read;
      read += chunk.length;
      // Resuming: what the daemon already holds is only hashed here, not sent again.
      if (read <= up.offset) continue;
      if (prev) await prev.sent;
      if (older) offset = await older;
      o.onProgress?.(offset, total);
      const from = Math.max(up.offset - start, 0);
      const next = this.sendChunk(up.id, start + from, chunk.subarray(from), o, prev?.answer);
      older = prev?.answer;
      prev = next;
    }
    if (older) offset = await older;
    if (prev) offset = await prev.answer;
    o.onProgress?.(offset, total);
    if (read < up.offset)
      throw new BlobError('INVALID_REQUEST', `the source has ${read} bytes but upload ${up.id} already holds ${up.offset}`);
    const digest = `sha256:${hash.digest('hex')}`;
    const q = `?digest=${enc(digest)}${o.pin === false ? '&pin=0' : ''}`;
    const res = await this.client.sendRaw('PUT', `/v1/blobs/uploads/${enc(up.id)}${q}`, undefined, undefined, o.signal);
    return (await res.json()) as BlobInfo;
  }

  /** Where an upload session stands (to resume it). */
  upload(id: string): Promise<BlobUpload> {
    return this.client.request<BlobUpload>('GET', `/v1/blobs/uploads/${enc(id)}`);
  }

  /** Cancel an upload session: the daemon drops its bytes. */
  async cancel(id: string): Promise<void> {
    await this.client.request('DELETE', `/v1/blobs/uploads/${enc(id)}`);
  }

  /**
   * A blob's bytes (or `range`, inclusive) as the daemon streams them. The daemon checks them as it
   * reads and breaks the stream of a corrupt blob before its end; `download` checks them again here.
   */
  async get(
    digest: string,
    o: { range?: { start: number; end?: number }; signal?: AbortSignal } = {},
  ): Promise<ReadableStream<Uint8Array>> {
    const range = o.range ? { range: `bytes=${o.range.start}-${o.range.end ?? ''}` } : undefined;
    const res = await this.client.sendRaw('GET', `/v1/blobs/${enc(digest)}`, undefined, undefined, o.signal, range);
    if (!res.body) throw new BlobError('INTERNAL', 'the daemon sent no body');
    return res.body;
  }

  /**
   * Download a blob to `path` (written beside it, renamed into place once its digest checks out);
   * a broken connection is resumed with a Range, up to `retries` times (default 3).
   */
  async download(digest: string, path: string, o: { retries?: number; signal?: AbortSignal } = {}): Promise<{ size: number }> {
    const want = digest.startsWith('sha256:') ? digest : `sha256:${digest}`;
    const tmp = `${path}.realm-${process.pid}-${Date.now().toString(36)}.part`;
    const hash = createHash('sha256');
    let size = 0;
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const range = size ? { range: `bytes=${size}-` } : undefined;
          if (rawCapable(this.client)) size += await this.rawAppend(tmp, want, hash, size > 0, range, o.signal);
          else {
            const body = await this.client.stream('GET', `/v1/blobs/${enc(want)}`, undefined, o.signal, range);
            size += await appendTo(tmp, body, hash, size > 0);
          }
          break;
        } catch (e) {
          if (attempt >= (o.retries ?? 3) || !retriable(e) || e instanceof RealmError) throw e;
          // What was written was hashed as it was written: go on from there.
          size = await sizeOf(tmp);
        }
      }
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== want)
        throw new BlobError(
          'BLOB_DIGEST_MISMATCH',
          `the ${size} bytes received hash to ${got}, not ${want}; nothing was written`,
        );
      await rename(tmp, path);
      return { size };
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  /** A GET of the blob appended to `file` from the socket's own buffers (raw-download.ts); the bytes written. */
  private async rawAppend(
    file: string,
    digest: string,
    hash: Hash,
    append: boolean,
    range: Record<string, string> | undefined,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    const headers: Record<string, string> = { ...range };
    if (this.client.token) headers.authorization = `Bearer ${this.client.token}`;
    const fh = await open(file, append ? 'a' : 'w', 0o600);
    let r;
    try {
      r = await rawDownload(this.client, `/v1/blobs/${enc(digest)}`, headers, fh, hash, signal).catch((e: unknown) => {
        // Nothing answered at all: as for any request, the daemon is unreachable.
        const code = (e as NodeJS.ErrnoException).code;
        throw code === 'ECONNREFUSED' || code === 'ENOENT' ? this.client.unreachable(e) : e;
      });
    } finally {
      await fh.close();
    }
    if (!r.ok) throw errorFromBody(r.status, parseJson(r.body));
    return r.written;
  }

  /** Blobs you uploaded, pinned or reference (root: all) in the store of the node asked; in a cluster each node lists its own. */
  async ls(): Promise<BlobInfo[]> {
    return (await this.client.request<{ blobs: BlobInfo[] }>('GET', '/v1/blobs')).blobs;
  }

  /** Drop your hold on a blob; refused (BLOB_IN_USE, a ConflictError) while you reference it. */
  async rm(digest: string): Promise<void> {
    await this.client.request('DELETE', `/v1/blobs/${enc(digest)}`);
  }

  pin(digest: string): Promise<BlobInfo> {
    return this.client.request<BlobInfo>('PUT', `/v1/blobs/${enc(digest)}/pin`);
  }

  unpin(digest: string): Promise<BlobInfo> {
    return this.client.request<BlobInfo>('DELETE', `/v1/blobs/${enc(digest)}/pin`);
  }

  /** Collect unreferenced, unpinned blobs past the grace period (or `grace`, e.g. '0s'); root only. */
  gc(o: { grace?: string | number } = {}): Promise<{ blobs: number; bytes: number; uploads: number; quarantined: number }> {
    return this.client.request('POST', '/v1/blobs/gc', o);
  }

  /**
   * PATCH one chunk at `offset`, retried from where the daemon stands: `sent` once its body is
   * all with the kernel (or it failed), `answer` the new offset. `after` is the chunk before's
   * answer, settled before this one is sent again (its failure may be what broke this one).
   */
  private sendChunk(id: string, offset: number, chunk: Uint8Array, o: BlobPutOptions, after?: Promise<number>): ChunkSend {
    const headers: Record<string, string> = { 'upload-offset': String(offset) };
    if (o.chunkDigests) headers['content-digest'] = `sha-256=:${createHash('sha256').update(chunk).digest('base64')}:`;
    let markSent!: () => void;
    const sent = new Promise<void>((r) => (markSent = r));
    const answer = (async (): Promise<number> => {
      for (let attempt = 0; ; attempt++) {
        try {
          // node:http (the client's whole-answer path): a chunk goes out as it is, no web stream in between.
          const path = `/v1/blobs/uploads/${enc(id)}`;
          return (await this.client.request<BlobUpload>('PATCH', path, chunk, o.signal, headers, markSent)).offset;
        } catch (e) {
          markSent();
          if (attempt >= (o.retries ?? 3) || !retriable(e)) throw e;
          await after;
          // The answer may be what was lost: ask where the session stands (after a moment, for
          // the daemon to notice a broken connection and take its half chunk back).
          await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
          const now = (await this.upload(id)).offset;
          if (now === offset + chunk.length) return now;
          if (now !== offset)
            throw new ConflictError(
              'BLOB_UPLOAD_OFFSET',
              `upload ${id} is at ${now}, neither before (${offset}) nor after (${offset + chunk.length}) this chunk`,
            );
        } finally {
          markSent();
        }
      }
    })();
    answer.catch(() => undefined); // awaited (and thrown) by put()
    return { sent, answer };
  }

  /** The source as chunks of `size` bytes, each hashed into `hash` before it is handed out (a file is read a chunk at a time; `total` told its size). */
  private async chunks(
    source: BlobSource,
    size: number,
    hash: Hash,
    total: (n: number) => void,
  ): Promise<AsyncIterable<Uint8Array>> {
    const raw = await this.rawChunks(source, size, total);
    return (async function* () {
      for await (const chunk of raw) {
        // In slices, letting the chunk in flight go on being written to the socket meanwhile.
        for (let i = 0; i < chunk.length; i += HASH_SLICE) {
          hash.update(chunk.subarray(i, i + HASH_SLICE));
          if (i + HASH_SLICE < chunk.length) await new Promise<void>((r) => setImmediate(r));
        }
        yield chunk;
      }
    })();
  }

  private async rawChunks(source: BlobSource, size: number, total: (n: number) => void): Promise<AsyncIterable<Uint8Array>> {
    if (typeof source === 'string') {
      const fh = await open(source, 'r');
      total((await fh.stat()).size);
      // Three buffers in turn, not a new one per chunk (a fresh 16 MiB costs its page faults and a
      // GC): put() is done with a chunk (sent, answered) before it asks for the third after it.
      const bufs = [Buffer.allocUnsafe(size), Buffer.allocUnsafe(size), Buffer.allocUnsafe(size)];
      return (async function* () {
        try {
          for (let i = 0; ; i++) {
            const buf = bufs[i % 3] as Buffer;
            let n = 0;
            while (n < size) {
              const r = await fh.read(buf, n, size - n);
              if (r.bytesRead === 0) break;
              n += r.bytesRead;
            }
            if (n === 0) return;
            yield buf.subarray(0, n);
            if (n < size) return;
          }
        } finally {
          await fh.close();
        }
      })();
    }
    if (source instanceof Uint8Array) {
      total(source.length);
      return (function* () {
        for (let i = 0; i < source.length; i += size) yield source.subarray(i, i + size);
      })() as unknown as AsyncIterable<Uint8Array>;
    }
    const iterable: AsyncIterable<Uint8Array> = source instanceof ReadableStream ? streamIterable(source) : source;
    return (async function* () {
      let parts: Uint8Array[] = [];
      let held = 0;
      for await (const part of iterable) {
        let p = part;
        while (held + p.length >= size) {
          const take = size - held;
          parts.push(p.subarray(0, take));
          yield Buffer.concat(parts);
          parts = [];
          held = 0;
          p = p.subarray(take);
        }
        if (p.length) {
          parts.push(p);
          held += p.length;
        }
      }
      if (held) yield Buffer.concat(parts);
    })();
  }
}

async function* streamIterable(s: ReadableStream<Uint8Array>): AsyncIterable<Uint8Array> {
  const reader = s.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

/** Bytes gathered before one write: the socket's 64 KiB pieces, written a MiB at a time. */
const WRITE_BATCH = 1024 * 1024;

/**
 * Append a body to `file`, hashing it; the bytes written. One batch is written while the next is
 * read (a write stream's per-piece writes cost a good part of a download's time). Whatever was
 * hashed is written, also when the body fails, so a resumed download goes on from the file's size.
 */
async function appendTo(file: string, body: AsyncIterable<Uint8Array>, hash: Hash, append: boolean): Promise<number> {
  const fh = await open(file, append ? 'a' : 'w', 0o600);
  let pending: Promise<unknown> = Promise.resolve();
  let batch: Uint8Array[] = [];
  let size = 0;
  let n = 0;
  const flush = async (): Promise<void> => {
    await pending;
    pending = fh.writev(batch);
    pending.catch(() => undefined); // awaited (and thrown) at the next flush or the end
    batch = [];
    size = 0;
  };
  try {
    for await (const chunk of body) {
      hash.update(chunk);
      n += chunk.length;
      batch.push(chunk);
      size += chunk.length;
      if (size >= WRITE_BATCH) await flush();
    }
  } finally {
    try {
      if (size) await flush();
      await pending;
    } finally {
      await fh.close();
    }
  }
  return n;
}

function parseJson(text: string): unknown {
  try {
    return text ? (JSON.parse(text) as unknown) : undefined;
  } catch {
    return undefined;
  }
}

async function sizeOf(file: string): Promise<number> {
  try {
    const fh = await open(file, 'r');
    try {
      return (await fh.stat()).size;
    } finally {
      await fh.close();
    }
  } catch {
    return 0;
  }
}
