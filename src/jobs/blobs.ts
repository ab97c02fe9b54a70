/**
 * What jobs need of the blob store: inputs read by their digest (only by an owner allowed to), and
 * artifacts stored; each held by a reference (`job-run:RUN`) so that GC keeps it while its run
 * exists, and given back (the grace period then counts) when the run is removed.
 */
import { Readable } from 'node:stream';
import type { BlobStore } from '../blobs/store.js';
import { RealmError } from '../util/errors.js';

export interface JobBlobs {
  /** The blob's size when `owner` may read it (it has it); undefined for a missing or foreign digest. */
  size(sha256: string, owner: string): Promise<number | undefined>;
  /** The blob's bytes, verified against its digest. */
  read(sha256: string, owner: string): Promise<Buffer>;
  /** Store `data` for `owner`, held by `ref`. */
  put(data: Buffer, owner: string, ref: string): Promise<{ sha256: string; size: number }>;
  /** Hold a blob of `owner`'s by `ref`. */
  addRef(sha256: string, owner: string, ref: string): Promise<void>;
  dropRef(sha256: string, owner: string, ref: string): Promise<void>;
}

const hex = (digest: string): string => digest.replace(/^sha256:/, '');

/** Jobs over the node's blob store. */
export function jobBlobs(store: BlobStore): JobBlobs {
  return {
    size: (sha, owner) => {
      try {
        return Promise.resolve(store.info(`sha256:${sha}`, owner).size);
      } catch (e) {
        if (e instanceof RealmError && e.code === 'BLOB_NOT_FOUND') return Promise.resolve(undefined);
        throw e;
      }
    },
    read: async (sha, owner) => {
      // The read hashes as it goes and fails at the end when the bytes are not the digest's.
      const chunks: Buffer[] = [];
      for await (const c of store.open(`sha256:${sha}`, owner).stream) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    },
    put: async (data, owner, ref) => {
      // Unpinned: the run's reference keeps it, and the grace period once the run is removed.
      const info = await store.put(owner, Readable.from([data]), { pin: false });
      store.addRef(info.digest, owner, ref);
      return { sha256: hex(info.digest), size: info.size };
    },
    addRef: (sha, owner, ref) => Promise.resolve(store.addRef(`sha256:${sha}`, owner, ref)),
    dropRef: (sha, owner, ref) => Promise.resolve(store.dropRef(`sha256:${sha}`, owner, ref)),
  };
}
