/**
 * From a manifest whose blobs are all at hand (staged or stored) to a committed image: check
 * media types and the platform, unpack the layers in order into the staging area (checking each
 * layer's uncompressed digest against the config's diff_ids), then commit atomically.
 */
import { mkdir, chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { RealmError, type ErrorCode } from '../util/errors.js';
import { type Staging, ingest, sha256 } from './blobs.js';
import {
  CONFIG_TYPES,
  LAYER_TYPES,
  MANIFEST_TYPES,
  MAX_JSON_BYTES,
  configSchema,
  manifestSchema,
  type Manifest,
} from './media.js';
import type { ImageStore } from './store.js';
import { applyLayer, newUnpackState } from './unpack.js';

/** Progress of an import or pull, per layer. */
export type ImageProgress =
  | { type: 'layer'; phase: 'download' | 'exists'; digest: string; index: number; count: number; bytes: number; total: number }
  | { type: 'layer'; phase: 'unpack'; digest: string; index: number; count: number; bytes: number; total: number }
  | { type: 'status'; message: string };

export type ProgressFn = (p: ImageProgress) => void;

/** The result of an import or pull: the names now pointing at the image and its digest. */
export interface ImportedImage {
  names: string[];
  digest: string;
}

/** Parse and check a manifest: known media types only. */
export function checkManifest(json: unknown, code: ErrorCode): Manifest {
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success)
    throw new RealmError(
      code,
      `the image manifest is malformed: ${parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join('.')}: ${i.message}`)
        .join('; ')}`,
    );
  const m = parsed.data;
  if (m.mediaType && !MANIFEST_TYPES.includes(m.mediaType))
    throw new RealmError(
      'IMAGE_INVALID',
      `unknown manifest media type ${m.mediaType}; realm reads OCI and Docker v2 image manifests`,
    );
  if (!CONFIG_TYPES.includes(m.config.mediaType))
    throw new RealmError('IMAGE_INVALID', `unknown config media type ${m.config.mediaType}; this is not a container image`);
  for (const l of m.layers) {
    if (!LAYER_TYPES.includes(l.mediaType))
      throw new RealmError(
        'IMAGE_INVALID',
        `unknown layer media type ${l.mediaType} (layer ${l.digest}); realm reads tar and tar+gzip layers`,
      );
  }
  if (m.config.size > MAX_JSON_BYTES)
    throw new RealmError(
      'IMAGE_TOO_LARGE',
      `the image config is declared as ${m.config.size} bytes; at most ${MAX_JSON_BYTES} are accepted`,
    );
  return m;
}

/**
 * Unpack and commit the image of `manifestBytes` (all its blobs located in `s` or the store)
 * under `names`. The caller owns `s` and releases it.
 */
export async function assemble(
  store: ImageStore,
  s: Staging,
  manifestBytes: Buffer,
  names: string[],
  source: string,
  onProgress?: ProgressFn,
  code: ErrorCode = 'IMAGE_INVALID',
): Promise<ImportedImage> {
  if (manifestBytes.length > MAX_JSON_BYTES)
    throw new RealmError(
      'IMAGE_TOO_LARGE',
      `the manifest is ${manifestBytes.length} bytes; at most ${MAX_JSON_BYTES} are accepted`,
    );
  let json: unknown;
  try {
    json = JSON.parse(manifestBytes.toString('utf8'));
  } catch (e) {
    throw new RealmError(code, `the image manifest is not valid JSON: ${(e as Error).message}`);
  }
  const m = checkManifest(json, code);
  const digest = sha256(manifestBytes);
  if (!store.locate(s, digest))
    await ingest(s, Readable.from([manifestBytes]), { digest, max: MAX_JSON_BYTES, what: 'the manifest', code });
  const configPath = store.locate(s, m.config.digest);
  if (!configPath) throw new RealmError(code, `the image config ${m.config.digest} is missing from the archive`);
  const config = configSchema.safeParse((await store.readJsonBlob(configPath, 'the image config')).json);
  if (!config.success) throw new RealmError(code, 'the image config is malformed');
  const arch = config.data.architecture;
  if ((config.data.os && config.data.os !== 'linux') || (arch && arch !== 'amd64')) {
    throw new RealmError(
      'IMAGE_INVALID',
      `the image is for ${config.data.os ?? '?'}/${arch ?? '?'}; this node runs linux/amd64 images`,
    );
  }
  const diffIds = config.data.rootfs?.diff_ids;
  if (diffIds && diffIds.length !== m.layers.length)
    throw new RealmError(code, `the config lists ${diffIds.length} layers, the manifest ${m.layers.length}`);
  const blobs = [digest, m.config.digest, ...m.layers.map((l) => l.digest)];
  let rootfs: string | null = null;
  let unpackedBytes = 0;
  if (existsSync(store.rootfsPath(digest))) {
    s.pins.add(digest);
  } else {
    rootfs = join(s.dir, 'rootfs');
    await mkdir(rootfs, { mode: 0o755 });
    await chmod(rootfs, 0o755);
    const st = newUnpackState(rootfs);
    for (const [i, l] of m.layers.entries()) {
      const path = store.locate(s, l.digest);
      if (!path) throw new RealmError(code, `layer ${l.digest} is missing`);
      let done = 0;
      const report = (n: number): void => {
        done += n;
        onProgress?.({
          type: 'layer',
          phase: 'unpack',
          digest: l.digest,
          index: i,
          count: m.layers.length,
          bytes: done,
          total: l.size,
        });
      };
      const r = await applyLayer(st, path, store.maxLayerBytes, report);
      if (diffIds && diffIds[i] !== r.diffId) {
        throw new RealmError(
          code,
          `layer ${i + 1} (${l.digest}) unpacks to ${r.diffId}, but the config says ${diffIds[i]}; the layer is corrupt`,
        );
      }
      unpackedBytes += r.fileBytes;
    }
  }
  await store.commit(s, { names, manifestDigest: digest, rootfs, unpackedBytes, blobs, source });
  return { names, digest };
}
