/**
 * What jobs need of the blob store: inputs read by their digest (only by an owner allowed to), and
 * artifacts stored, each held by a reference so garbage collection keeps it while its run exists.
 */
export interface JobBlobs {
  /** Whether `owner` may read the blob (it has it): a missing or foreign digest is `false`. */
  has(sha256: string, owner: string): Promise<boolean>;
  /** The blob's bytes, verified against its digest. */
  read(sha256: string, owner: string): Promise<Buffer>;
  /** Store `data` for `owner`, held by `ref` (e.g. `job-run:RUN/NAME`). */
  put(data: Buffer, owner: string, ref: string): Promise<{ sha256: string; size: number }>;
  /** Hold a blob (an input of a run) by `ref`. */
  addRef(sha256: string, ref: string): Promise<void>;
  /** Let go of every blob `ref` holds (a run removed). */
  dropRefs(ref: string): Promise<void>;
}
