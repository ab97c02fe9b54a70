/**
 * Where the blob store keeps bytes, under `<data-dir>/blobs/` (root's alone, 0700; files 0600):
 * - `sha256/<2 hex>/<64 hex>`: one file per blob, named by its digest, never written in place;
 * - `uploads/<id>`: the growing file of an upload session, renamed into `sha256/` at commit;
 * - `quarantine/<64 hex>.<ms>`: a blob a read found corrupt, kept for the operator until GC.
 * One file system, so a commit is a rename.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { hexOf } from './digest.js';

export class BlobLayout {
  readonly root: string;
  readonly blobsDir: string;
  readonly uploadsDir: string;
  readonly quarantineDir: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, 'blobs');
    this.blobsDir = join(this.root, 'sha256');
    this.uploadsDir = join(this.root, 'uploads');
    this.quarantineDir = join(this.root, 'quarantine');
    for (const d of [this.root, this.blobsDir, this.uploadsDir, this.quarantineDir])
      mkdirSync(d, { recursive: true, mode: 0o700 });
  }

  blob(digest: string): string {
    const hex = hexOf(digest);
    return join(this.blobsDir, hex.slice(0, 2), hex);
  }

  upload(id: string): string {
    return join(this.uploadsDir, id);
  }

  quarantine(digest: string, at: number): string {
    return join(this.quarantineDir, `${hexOf(digest)}.${at}`);
  }
}
