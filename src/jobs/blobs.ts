/**
 * What jobs need of the blob store: inputs read by their digest (only by an owner allowed to), and
 * artifacts stored; each held by a reference (`job-run:RUN`) so that GC keeps it while its run
 * exists, and given back (the grace period then counts) when the run is removed.
 *
 * In a cluster a blob this node lacks is fetched from the node that has it (cluster/blob-peers.ts),
 * verified, for the same owner: an input uploaded to node A is read by a run on node B, and an
 * artifact collected on B is read on A. A copy fetched for a read is unpinned (GC takes it after
 * the grace period); one fetched for a reference is held by it, like any input.
 */
import { Readable } from 'node:stream';
import type { BlobStore } from '../blobs/store.js';
import type { PeerBlobs } from '../cluster/blob-peers.js';
import { RealmError } from '../util/errors.js';

export interface JobBlobs {
  /** The blob's size when `owner` may read it (here or on another node); undefined for a missing or foreign digest. */
  size(sha256: string, owner: string): Promise<number | undefined>;
  /** The blob's bytes, verified against its digest (fetched from another node first when only it has them). */
  read(sha256: string, owner: string): Promise<Buffer>;
  /** Store `data` for `owner`, held by `ref`. */
  put(data: Buffer, owner: string, ref: string): Promise<{ sha256: string; size: number }>;
  /** Hold a blob of `owner`'s by `ref` (fetched here first when another node has it). */
  addRef(sha256: string, owner: string, ref: string): Promise<void>;
  dropRef(sha256: string, owner: string, ref: string): Promise<void>;
}

const hex = (digest: string): string => digest.replace(/^sha256:/, '');

const missing = (e: unknown): boolean => e instanceof RealmError && e.code === 'BLOB_NOT_FOUND';
/** Not here, or here but found corrupt (quarantined): a sound copy from another node repairs it. */
const fetchable = (e: unknown): boolean => missing(e) || (e instanceof RealmError && e.code === 'BLOB_CORRUPT');

/** Jobs over the node's blob store, and the other nodes' when `peers` is given (a cluster). */
export function jobBlobs(store: BlobStore, peers?: PeerBlobs): JobBlobs {
  /** `fn` on this node's store; when the blob is not here for `owner` (or is corrupt), once more after fetching it. */
  async function here<T>(sha: string, owner: string, fn: () => T | Promise<T>): Promise<T> {
    let first: unknown;
    try {
      return await fn();
    } catch (e) {
      if (!peers || !fetchable(e)) throw e;
      first = e;
    }
    try {
      await peers.fetch(`sha256:${sha}`, owner);
    } catch (e) {
      // A corrupt copy here that no node can replace stays the answer.
      throw missing(first) ? e : first;
    }
    return fn();
  }

  return {
    size: async (sha, owner) => {
      try {
        return store.info(`sha256:${sha}`, owner).size;
      } catch (e) {
        if (!missing(e)) throw e;
      }
      return peers?.size(`sha256:${sha}`, owner);
    },
    read: (sha, owner) =>
      here(sha, owner, async () => {
        // The read hashes as it goes and fails at the end when the bytes are not the digest's.
        const chunks: Buffer[] = [];
        for await (const c of store.open(`sha256:${sha}`, owner).stream) chunks.push(c as Buffer);
        return Buffer.concat(chunks);
      }),
    put: async (data, owner, ref) => {
      // Unpinned: the run's reference keeps it, and the grace period once the run is removed.
      const info = await store.put(owner, Readable.from([data]), { pin: false });
      store.addRef(info.digest, owner, ref);
      return { sha256: hex(info.digest), size: info.size };
    },
    addRef: (sha, owner, ref) => here(sha, owner, () => store.addRef(`sha256:${sha}`, owner, ref)),
    dropRef: (sha, owner, ref) => Promise.resolve(store.dropRef(`sha256:${sha}`, owner, ref)),
  };
}
