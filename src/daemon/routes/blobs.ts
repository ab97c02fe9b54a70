/**
 * The blob store's routes (src/blobs/): upload sessions (open, PATCH chunks at Upload-Offset,
 * PUT ?digest= to commit, DELETE to cancel), a one-request upload, verified downloads with single
 * ranges, list, pin/unpin, remove, and GC (root). Bodies stream to disk: these routes are exempt
 * from the API's body limit (app.ts) and never gather a body in memory.
 */
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import type { BlobInfo, BlobStore, UploadInfo } from '../../blobs/store.js';
import { contentDigest, digestHeader, parseDigest } from '../../blobs/digest.js';
import { durationField } from '../../engine/schemas.js';
import { RealmError } from '../../util/errors.js';
import { bodyStream, jsonBody } from '../body.js';
import { principal } from '../principal.js';
import type { PeerBlobs } from '../../cluster/blob-peers.js';
import { forwardedByPeer } from '../cluster-peers.js';

export const blobGcSchema = z
  .object({
    /** Collect what has been unpinned and unreferenced this long (default: the daemon's grace period). */
    grace: durationField(0, 365 * 86_400_000).optional(),
  })
  .strict();

/** Requests whose body streams into the blob store (exempt from MAX_BODY; see app.ts). */
export function blobBody(method: string, path: string): boolean {
  return (
    (method === 'POST' && path === '/v1/blobs') ||
    ((method === 'PATCH' || method === 'PUT') && /^\/v1\/blobs\/uploads\/[^/]+$/.test(path))
  );
}

const pinQuery = (c: Context): boolean => !/^(0|false|no)$/i.test(c.req.query('pin') ?? '');

function offsetHeader(c: Context): number | undefined {
  const h = c.req.header('upload-offset');
  if (h === undefined) return undefined;
  if (!/^\d{1,15}$/.test(h.trim())) throw new RealmError('INVALID_REQUEST', `Upload-Offset "${h}" is not a byte offset`);
  return Number(h.trim());
}

function hasBody(c: Context): boolean {
  return Number(c.req.header('content-length') ?? 0) > 0 || c.req.header('transfer-encoding') !== undefined;
}

function session(c: Context, up: UploadInfo, status: 200 | 201) {
  c.header('Upload-Offset', String(up.offset));
  c.header('Location', `/v1/blobs/uploads/${up.id}`);
  return c.json(up, status);
}

function blobHeaders(digest: string): Record<string, string> {
  return {
    'content-type': 'application/octet-stream',
    'accept-ranges': 'bytes',
    etag: `"${digest}"`,
    'repr-digest': digestHeader(digest),
    'cache-control': 'private, max-age=31536000, immutable',
  };
}

/** A single `bytes=` range of a blob of `size` bytes; undefined for none or one this server serves whole (several ranges). */
function parseRange(header: string | undefined, size: number): { start: number; end?: number } | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (!m[1] && !m[2])) return undefined;
  const bad = (): RealmError =>
    new RealmError('BLOB_RANGE_INVALID', `Range "${header}" is outside the blob's ${size} bytes`, { size });
  if (!m[1]) {
    const n = Number(m[2]);
    if (n === 0) throw bad();
    return { start: Math.max(size - n, 0) };
  }
  const start = Number(m[1]);
  const end = m[2] ? Number(m[2]) : undefined;
  if (start >= size || (end !== undefined && end < start)) throw bad();
  return end === undefined ? { start } : { start, end };
}

/**
 * In a cluster (`peers`), a download or HEAD of a blob this node does not hold for the caller is
 * answered from another node that does: HEAD by asking it, a download by fetching the blob here
 * first (verified, unpinned for the caller: see cluster/blob-peers.ts), then serving it as any;
 * a download of a copy quarantined here fetches a sound one the same way.
 * A request a peer sent is answered from this node's store alone.
 */
export function blobRoutes(app: Hono, blobs: BlobStore, peers?: PeerBlobs): void {
  /** The blob as the caller may read it here; for a download, fetched from a peer when only it has it. */
  async function located(c: Context, digestText: string, who: string): Promise<BlobInfo | { digest: string; size: number }> {
    try {
      const info = blobs.info(digestText, who);
      // A copy found corrupt here (quarantined) is repaired from a sound one elsewhere, if any.
      if (info.corrupt && c.req.method !== 'HEAD' && peers && !forwardedByPeer(c))
        return await peers.fetch(info.digest, who).catch(() => info);
      return info;
    } catch (e) {
      if (!peers || forwardedByPeer(c) || !(e instanceof RealmError) || e.code !== 'BLOB_NOT_FOUND') throw e;
      const digest = parseDigest(digestText);
      if (c.req.method !== 'HEAD') return peers.fetch(digest, who);
      const size = await peers.size(digest, who);
      if (size === undefined) throw e;
      return { digest, size };
    }
  }

  app.post('/v1/blobs/uploads', async (c) => session(c, await blobs.createUpload(principal(c).id), 201));

  app.get('/v1/blobs/uploads/:id', (c) => session(c, blobs.uploadStatus(c.req.param('id'), principal(c).id), 200));

  app.patch('/v1/blobs/uploads/:id', async (c) => {
    const offset = offsetHeader(c);
    if (offset === undefined)
      throw new RealmError('INVALID_REQUEST', 'say where the chunk starts with an Upload-Offset header (GET the upload for it)');
    const up = await blobs.appendChunk(
      c.req.param('id'),
      principal(c).id,
      offset,
      bodyStream(c),
      contentDigest(c.req.header('content-digest')),
    );
    return session(c, up, 200);
  });

  app.put('/v1/blobs/uploads/:id', async (c) => {
    const digestText = c.req.query('digest');
    if (!digestText) throw new RealmError('INVALID_REQUEST', 'commit with the digest you expect: PUT …?digest=sha256:<hex>');
    const digest = parseDigest(digestText);
    const id = c.req.param('id');
    const who = principal(c).id;
    if (hasBody(c)) {
      const offset = offsetHeader(c);
      if (offset === undefined)
        throw new RealmError('INVALID_REQUEST', 'a commit that carries the last chunk says where it starts with Upload-Offset');
      await blobs.appendChunk(id, who, offset, bodyStream(c), contentDigest(c.req.header('content-digest')));
    }
    const info = await blobs.commitUpload(id, who, digest, pinQuery(c));
    c.header('Location', `/v1/blobs/${info.digest}`);
    return c.json(info, 201);
  });

  app.delete('/v1/blobs/uploads/:id', async (c) => {
    await blobs.cancelUpload(c.req.param('id'), principal(c).id);
    return c.body(null, 204);
  });

  app.post('/v1/blobs/gc', async (c) => {
    const b = blobGcSchema.parse(await jsonBody(c));
    return c.json(await blobs.gc(b.grace !== undefined ? { graceMs: b.grace } : {}));
  });

  app.post('/v1/blobs', async (c) => {
    const d = c.req.query('digest');
    const info = await blobs.put(principal(c).id, bodyStream(c), { ...(d ? { digest: parseDigest(d) } : {}), pin: pinQuery(c) });
    c.header('Location', `/v1/blobs/${info.digest}`);
    return c.json(info, 201);
  });

  app.get('/v1/blobs', (c) => c.json({ blobs: blobs.list(principal(c).id) }));

  app.get('/v1/blobs/:digest', async (c) => {
    const who = principal(c).id;
    const info = await located(c, c.req.param('digest'), who);
    const headers = blobHeaders(info.digest);
    if (c.req.method === 'HEAD') {
      if ('corrupt' in info && info.corrupt)
        throw new RealmError('BLOB_CORRUPT', `blob ${info.digest} is quarantined; upload it again`);
      return c.body(null, 200, { ...headers, 'content-length': String(info.size) });
    }
    const range = parseRange(c.req.header('range'), info.size);
    const read = blobs.open(info.digest, who, range);
    const length = info.size === 0 ? 0 : read.end - read.start + 1;
    const status = range ? 206 : 200;
    const all = {
      ...headers,
      'content-length': String(length),
      ...(range ? { 'content-range': `bytes ${read.start}-${read.end}/${info.size}` } : {}),
    };
    // On node-server the bytes go straight into Node's response from a few reused buffers (a web
    // stream in between, or a fresh buffer per piece, costs a good part of the throughput); a
    // failed check destroys it, so the answer ends short.
    const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    if (!outgoing) return c.body(Readable.toWeb(read.stream) as ReadableStream, status, all);
    outgoing.writeHead(status, all);
    read.sendTo(outgoing).catch(() => outgoing.destroy());
    return RESPONSE_ALREADY_SENT;
  });

  app.delete('/v1/blobs/:digest', async (c) => {
    await blobs.remove(c.req.param('digest'), principal(c).id);
    return c.body(null, 204);
  });

  app.put('/v1/blobs/:digest/pin', (c) => c.json(blobs.pin(c.req.param('digest'), principal(c).id)));
  app.delete('/v1/blobs/:digest/pin', (c) => c.json(blobs.unpin(c.req.param('digest'), principal(c).id)));
}
