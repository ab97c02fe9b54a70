/**
 * Blobs this node does not hold, fetched on demand from the other nodes of the cluster by digest.
 *
 * - Asked over the peers' own API (`GET /v1/blobs/:digest`) with the peer credential and the
 *   owner as principal, so each peer applies its owner checks: a user gets through a peer only
 *   what that peer would give that user. The request is marked as forwarded, so the peer answers
 *   from its own store and never asks further (no loops).
 * - Never trusting the peer's bytes: they stream into the local store through `expectBytes`
 *   (exactly the announced size, hashing to the digest) and the store's commit checks the digest
 *   again; bytes that are wrong are not kept, and the next node is tried.
 * - Stored unpinned for the owner: the copy lasts the store's grace period (1 h by default) after
 *   the fetch, or as long as a reference (a job run's) holds it, then GC takes it.
 * - Nodes that are up (or draining) other than this one are asked in turn; one that answers 404
 *   or does not answer is skipped. None has it: BLOB_NOT_FOUND, as on a lone node.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import type { BlobInfo, BlobStore } from '../blobs/store.js';
import { parseDigest } from '../blobs/digest.js';
import { expectBytes } from '../blobs/verify.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { FORWARDED_HEADER, PRINCIPAL_HEADER } from './forward.js';
import type { NodeView, Nodes } from './types.js';

/** What the blob store's users (jobs, the blob routes) ask of the other nodes. */
export interface PeerBlobs {
  /** The blob's size on the first other node that holds it for `owner`; undefined when none does. */
  size(digest: string, owner: string): Promise<number | undefined>;
  /** Fetch the blob from another node into this node's store for `owner` (unpinned), verified. */
  fetch(digest: string, owner: string): Promise<BlobInfo>;
}

/** How long a peer has to start answering (its headers); the body then flows at its own pace. */
const ANSWER_MS = 10_000;

export class BlobPeers implements PeerBlobs {
  /** Fetches under way, by owner and digest: a second reader waits for the first one's copy. */
  private readonly inflight = new Map<string, Promise<BlobInfo>>();

  constructor(
    private readonly nodes: Nodes,
    private readonly store: BlobStore,
  ) {}

  async size(digestText: string, owner: string): Promise<number | undefined> {
    const digest = parseDigest(digestText);
    for (const n of await this.peers()) {
      const res = await this.ask(n, 'HEAD', digest, owner).catch(() => null);
      if (res?.ok) {
        const size = Number(res.headers.get('content-length'));
        if (Number.isSafeInteger(size) && size >= 0) return size;
      }
    }
    return undefined;
  }

  fetch(digestText: string, owner: string): Promise<BlobInfo> {
    const digest = parseDigest(digestText);
    const key = `${owner} ${digest}`;
    let p = this.inflight.get(key);
    if (!p) {
      p = this.fetchNow(digest, owner).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async fetchNow(digest: string, owner: string): Promise<BlobInfo> {
    const why: string[] = [];
    let wrong = false;
    for (const n of await this.peers(why)) {
      let res: Response;
      try {
        res = await this.ask(n, 'GET', digest, owner);
      } catch (e) {
        why.push(`node ${n.id} did not answer (${errorMessage(e)})`);
        continue;
      }
      if (res.status === 404) {
        await res.body?.cancel();
        continue;
      }
      const size = Number(res.headers.get('content-length'));
      if (!res.ok || !res.body || !Number.isSafeInteger(size) || size < 0) {
        why.push(`node ${n.id} answered ${res.status}${res.ok ? ' without a length' : `: ${(await res.text()).slice(0, 200)}`}`);
        await res.body?.cancel().catch(() => undefined);
        continue;
      }
      const bytes = pipeline(
        Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>),
        expectBytes(digest, size),
        () => undefined,
      );
      try {
        return await this.store.put(owner, bytes, { digest, pin: false });
      } catch (e) {
        if (e instanceof RealmError && e.code === 'BLOB_NO_SPACE') throw e;
        if (e instanceof RealmError && e.code === 'BLOB_DIGEST_MISMATCH') {
          wrong = true;
          why.push(`node ${n.id} sent wrong bytes (${e.message})`);
        } else why.push(`node ${n.id} broke off (${errorMessage(e)})`);
        bytes.destroy();
      }
    }
    const also = why.length ? ` (${why.join('; ')})` : '';
    if (wrong)
      throw new RealmError(
        'BLOB_CORRUPT',
        `no node sent blob ${digest} whole and sound${also}; nothing was stored: upload it again (realm blob put) to repair it`,
      );
    throw new RealmError(
      'BLOB_NOT_FOUND',
      `no blob ${digest} that you uploaded, pinned or reference on any node of the cluster${also}; \`realm blob ls\` lists yours on the node you ask`,
    );
  }

  /** Every other node that may hold blobs: up or draining, this one aside (none when etcd cannot say: `why` tells). */
  private async peers(why: string[] = []): Promise<NodeView[]> {
    if (!this.nodes.clustered) return [];
    try {
      return (await this.nodes.list()).filter((n) => !n.self && n.state !== 'down');
    } catch (e) {
      why.push(`the cluster's nodes could not be listed: ${errorMessage(e)}`);
      return [];
    }
  }

  private async ask(n: NodeView, method: 'GET' | 'HEAD', digest: string, owner: string): Promise<Response> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new Error(`no answer within ${ANSWER_MS / 1000} s`)), ANSWER_MS);
    try {
      return await fetch(new URL(`/v1/blobs/${encodeURIComponent(digest)}`, n.address), {
        method,
        headers: {
          authorization: `Bearer ${this.nodes.peerToken()}`,
          [PRINCIPAL_HEADER]: owner,
          [FORWARDED_HEADER]: this.nodes.selfId,
        },
        redirect: 'manual',
        signal: ctl.signal,
      });
    } finally {
      clearTimeout(timer);
    }
  }
}
