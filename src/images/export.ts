/** Export an image as an OCI archive: oci-layout, index.json (with its names) and its blobs. */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import type { ImageStore } from './store.js';
import { MT } from './media.js';
import { parseRef } from './ref.js';

/**
 * A tar stream of the image `ref` as an OCI archive; `realm image import` reads it back.
 * @example await pipeline(exportImage(store, 'app:1'), createWriteStream('app.tar'));
 */
export async function exportImage(store: ImageStore, ref: string): Promise<Readable> {
  const d = await store.inspect(ref);
  // The name asked for (tag defaulted); for a digest, every name of the image.
  const asked = parseRef(ref).ref;
  const names = asked ? [asked] : d.names.filter((n) => parseRef(n).ref !== null);
  const manifestSize = (await stat(store.blobPath(d.digest))).size;
  const index = {
    schemaVersion: 2,
    mediaType: MT.ociIndex,
    manifests: (names.length ? names : [null]).map((n) => ({
      mediaType: d.manifest.mediaType ?? MT.ociManifest,
      digest: d.digest,
      size: manifestSize,
      ...(n
        ? { annotations: { 'io.containerd.image.name': n, 'org.opencontainers.image.ref.name': n.slice(n.lastIndexOf(':') + 1) } }
        : {}),
    })),
  };
  const blobs = [d.digest, d.manifest.config.digest, ...d.manifest.layers.map((l) => l.digest)];
  const p = pack();
  (async () => {
    p.entry({ name: 'oci-layout', mode: 0o644 }, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    p.entry({ name: 'index.json', mode: 0o644 }, JSON.stringify(index));
    p.entry({ name: 'blobs/', type: 'directory', mode: 0o755 });
    p.entry({ name: 'blobs/sha256/', type: 'directory', mode: 0o755 });
    for (const b of [...new Set(blobs)]) {
      const path = store.blobPath(b);
      const entry = p.entry({ name: `blobs/sha256/${b.slice(7)}`, mode: 0o644, size: (await stat(path)).size });
      await pipeline(createReadStream(path), entry);
    }
    p.finalize();
  })().catch((e: unknown) => p.destroy(e as Error));
  // A Node stream (tar-stream's own is streamx), so callers can hand it to Readable.toWeb.
  return Readable.from(p as AsyncIterable<Buffer>);
}
