/**
 * `realm image pull REGISTRY/NAME:TAG`: the manifest (or an index, of which linux/amd64 is
 * taken), its config and layers, each checked against its digest; layers already stored are not
 * fetched again. Then unpacked and committed like an import.
 */
import { Readable } from 'node:stream';
import { RealmError } from '../util/errors.js';
import { ingest, sha256 } from './blobs.js';
import { type ImportedImage, type ProgressFn, assemble, checkManifest } from './assemble.js';
import { INDEX_TYPES, MANIFEST_TYPES, MAX_JSON_BYTES, MT, indexSchema } from './media.js';
import { parseRef } from './ref.js';
import { Registry, type RegistryOptions } from './registry.js';
import type { ImageStore } from './store.js';

export interface PullOptions extends RegistryOptions {
  onProgress?: ProgressFn;
}

const ACCEPT = [MT.ociManifest, MT.dockerManifest, MT.ociIndex, MT.dockerList].join(', ');

function fail(message: string): RealmError {
  return new RealmError('IMAGE_PULL_FAILED', message);
}

/** Fetch a manifest or index by tag or digest, bounded and (for digests) verified. */
async function fetchManifest(reg: Registry, reference: string): Promise<{ bytes: Buffer; mediaType: string; digest: string }> {
  const res = await reg.get(`/v2/${reg.repository}/manifests/${reference}`, ACCEPT);
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > MAX_JSON_BYTES) {
    await res.body?.cancel();
    throw new RealmError(
      'IMAGE_TOO_LARGE',
      `the manifest of ${reference} is ${declared} bytes; at most ${MAX_JSON_BYTES} are accepted`,
    );
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of reg.body(res)) {
    n += (c as Buffer).length;
    if (n > MAX_JSON_BYTES)
      throw new RealmError('IMAGE_TOO_LARGE', `the manifest of ${reference} is larger than ${MAX_JSON_BYTES} bytes`);
    chunks.push(c as Buffer);
  }
  const bytes = Buffer.concat(chunks);
  const digest = sha256(bytes);
  if (reference.startsWith('sha256:') && digest !== reference)
    throw fail(`the registry served a manifest with digest ${digest} for ${reference}; refusing it`);
  const header = res.headers.get('docker-content-digest');
  if (header && header.startsWith('sha256:') && header !== digest)
    throw fail(`the registry says the manifest is ${header}, but its bytes hash to ${digest}; refusing it`);
  let mediaType = (res.headers.get('content-type') ?? '').split(';')[0].trim();
  try {
    const mt = (JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown }).mediaType;
    if (typeof mt === 'string') mediaType = mt;
  } catch {
    throw fail(`the manifest of ${reference} is not valid JSON`);
  }
  return { bytes, mediaType, digest };
}

/**
 * Pull `text` from its registry into the store under the name `text` (tag defaulted to latest).
 * @example await pullImage(engine.images, '127.0.0.1:5000/tools/busybox:1', { onProgress: console.log });
 */
export async function pullImage(store: ImageStore, text: string, opts: PullOptions = {}): Promise<ImportedImage> {
  const r = parseRef(text);
  if (!r.registry || !r.repository)
    throw new RealmError('IMAGE_INVALID', `"${text}" names no registry; write REGISTRY/NAME:TAG (e.g. 127.0.0.1:5000/app:1)`);
  const env = process.env;
  const reg = new Registry(r.registry, r.repository, {
    ...opts,
    ...(opts.username === undefined && env.REALM_REGISTRY_USERNAME !== undefined
      ? { username: env.REALM_REGISTRY_USERNAME, password: env.REALM_REGISTRY_PASSWORD ?? '' }
      : {}),
  });
  const progress = opts.onProgress;
  progress?.({ type: 'status', message: `resolving ${text}` });
  const ping = await reg.get('/v2/');
  await ping.body?.cancel();
  let m = await fetchManifest(reg, r.digest ?? r.tag ?? 'latest');
  if (r.digest && m.digest !== r.digest) throw fail(`the registry served ${m.digest} for ${r.digest}`);
  if (INDEX_TYPES.includes(m.mediaType)) {
    const idx = indexSchema.safeParse(JSON.parse(m.bytes.toString('utf8')));
    if (!idx.success) throw fail('the registry served a malformed image index');
    const pick = idx.data.manifests.find((d) => d.platform?.os === 'linux' && d.platform.architecture === 'amd64');
    if (!pick)
      throw new RealmError(
        'IMAGE_INVALID',
        `${text} has no linux/amd64 image (it has ${idx.data.manifests.map((d) => `${d.platform?.os ?? '?'}/${d.platform?.architecture ?? '?'}`).join(', ')})`,
      );
    m = await fetchManifest(reg, pick.digest);
    if (m.digest !== pick.digest) throw fail(`the registry served ${m.digest} for ${pick.digest}`);
  }
  if (!MANIFEST_TYPES.includes(m.mediaType))
    throw new RealmError('IMAGE_INVALID', `unknown manifest media type "${m.mediaType}" for ${text}`);
  const manifest = checkManifest(JSON.parse(m.bytes.toString('utf8')), 'IMAGE_PULL_FAILED');
  const s = await store.stage();
  try {
    const descs = [manifest.config, ...manifest.layers];
    for (const [i, d] of descs.entries()) {
      const isConfig = i === 0;
      const info = { digest: d.digest, index: i - 1, count: manifest.layers.length, total: d.size };
      if (store.locate(s, d.digest)) {
        if (!isConfig) progress?.({ type: 'layer', phase: 'exists', ...info, bytes: d.size });
        continue;
      }
      if (d.size > (isConfig ? MAX_JSON_BYTES : store.maxLayerBytes)) {
        throw new RealmError(
          'IMAGE_TOO_LARGE',
          `${isConfig ? 'the config' : `layer ${i}`} is ${d.size} bytes; at most ${isConfig ? MAX_JSON_BYTES : store.maxLayerBytes} are accepted`,
        );
      }
      const res = await reg.get(`/v2/${reg.repository}/blobs/${d.digest}`);
      let done = 0;
      await ingest(s, reg.body(res), {
        digest: d.digest,
        size: d.size,
        max: isConfig ? MAX_JSON_BYTES : store.maxLayerBytes,
        what: isConfig ? 'the image config' : `layer ${i} (${d.digest})`,
        code: 'IMAGE_PULL_FAILED',
        ...(isConfig
          ? {}
          : { onBytes: (n: number) => progress?.({ type: 'layer', phase: 'download', ...info, bytes: (done += n) }) }),
      });
    }
    await ingest(s, Readable.from([m.bytes]), {
      digest: m.digest,
      max: MAX_JSON_BYTES,
      what: 'the manifest',
      code: 'IMAGE_PULL_FAILED',
    });
    // A pull by digest is listed as REGISTRY/NAME@sha256:… (so prune keeps it).
    const ref = r.ref ?? `${r.registry}/${r.repository}@${m.digest}`;
    return await assemble(store, s, m.bytes, [ref], 'pull', progress, 'IMAGE_PULL_FAILED');
  } finally {
    await store.release(s);
  }
}
