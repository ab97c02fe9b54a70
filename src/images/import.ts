/**
 * Imports: an OCI image layout directory, an OCI archive (a tar of such a layout), a `docker save`
 * tarball (manifest.json + layer tars), or a single root filesystem tarball or directory (a
 * one-layer image, what the image builder produces). Everything is staged first and committed
 * only once the whole image checked out; on any failure the store is as it was.
 */
import { realpath, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join, posix, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { createHash } from 'node:crypto';
import { extract } from 'tar-stream';
import { z } from 'zod';
import { RealmError } from '../util/errors.js';
import { type Ingested, type Staging, ingest, ingestFile } from './blobs.js';
import { type ImportedImage, type ProgressFn, assemble, checkManifest } from './assemble.js';
import { INDEX_TYPES, MAX_JSON_BYTES, MT, indexSchema, type Descriptor } from './media.js';
import { parseRef } from './ref.js';
import type { ImageStore } from './store.js';
import { cleanName, sniffCompression } from './unpack.js';
import { packDir } from './pack.js';

export interface ImportOptions {
  /** Name (`NAME[:TAG]`) for the image; required when the archive names none, and then it must hold one image. */
  name?: string;
  onProgress?: ProgressFn;
}

/** Files of a layout or archive, by relative path, turned into staged or stored blobs on demand. */
interface Source {
  get(path: string, expect?: Descriptor): Promise<{ digest: string; path: string; size: number } | null>;
}

/** An image archive holds a few files per layer; more entries than this is not one. */
const MAX_ARCHIVE_ENTRIES = 10_000;

function invalid(message: string): RealmError {
  return new RealmError('IMAGE_INVALID', message);
}

async function withStaging<T>(store: ImageStore, fn: (s: Staging) => Promise<T>): Promise<T> {
  const s = await store.stage();
  try {
    return await fn(s);
  } finally {
    await store.release(s);
  }
}

/** Import an OCI archive or a `docker save` tarball (plain or gzip'd) from a stream. */
export function importArchive(
  store: ImageStore,
  input: NodeJS.ReadableStream,
  opts: ImportOptions = {},
): Promise<ImportedImage[]> {
  return withStaging(store, async (s) => {
    const files = new Map<string, Ingested>();
    const links = new Map<string, string>();
    let total = 0;
    let entries = 0;
    const ex = extract();
    ex.on('entry', (h, stream, next) => {
      (async () => {
        const rel = cleanName(h.name, 'archive entry');
        if (++entries > MAX_ARCHIVE_ENTRIES)
          throw invalid(`the archive has more than ${MAX_ARCHIVE_ENTRIES} entries; an image archive holds a few files per layer`);
        if (h.type === 'file' || h.type === 'contiguous-file') {
          const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(rel);
          const got = await ingest(s, stream as unknown as NodeJS.ReadableStream, {
            ...(m ? { digest: `sha256:${m[1]}` } : {}),
            max: store.maxLayerBytes,
            what: `archive file ${rel}`,
            code: 'IMAGE_INVALID',
            onBytes: (n) => {
              total += n;
            },
          });
          files.set(rel, got);
          opts.onProgress?.({ type: 'status', message: `read ${rel} (${got.size} bytes, ${total} in all)` });
        } else {
          if (h.type === 'symlink') links.set(rel, posix.normalize(posix.join(posix.dirname(rel), h.linkname ?? '')));
          else if (h.type === 'link') links.set(rel, cleanName(h.linkname ?? '', 'archive link'));
          stream.resume();
          await new Promise<void>((r) => stream.on('end', () => r()));
        }
      })().then(
        () => next(),
        (e: unknown) => {
          stream.resume();
          ex.destroy(e as Error);
        },
      );
    });
    const head = await peek(input);
    const stages = head.gzip ? [createGunzip(), ex] : [ex];
    try {
      await pipeline(head.stream, ...(stages as unknown as [NodeJS.ReadWriteStream]));
    } catch (e) {
      if (e instanceof RealmError) throw e;
      throw invalid(`the archive is not a valid tar${head.gzip ? '.gz' : ''} (corrupt or truncated): ${(e as Error).message}`);
    }
    const source: Source = {
      get(path) {
        let p = cleanName(path, 'archive path');
        for (let i = 0; i < 8 && !files.has(p) && links.has(p); i++) p = links.get(p)!;
        const f = files.get(p);
        return Promise.resolve(f ? { digest: f.digest, path: f.path, size: f.size } : null);
      },
    };
    if (files.has('manifest.json')) return importDocker(store, s, source, opts);
    if (files.has('index.json')) return importLayout(store, s, source, opts);
    throw invalid(
      'the archive holds neither index.json (an OCI archive) nor manifest.json (docker save); export images with `docker save` or as an OCI archive',
    );
  });
}

/** Import an OCI image layout directory (oci-layout, index.json, blobs/sha256/...). */
export function importLayoutDir(store: ImageStore, dir: string, opts: ImportOptions = {}): Promise<ImportedImage[]> {
  return withStaging(store, async (s) => {
    const root = await realpath(dir).catch(() => {
      throw invalid(`${dir} does not exist; give an OCI image layout directory`);
    });
    const source: Source = {
      async get(path, expect) {
        const rel = cleanName(path, 'layout path');
        const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(rel);
        const digest = m ? `sha256:${m[1]}` : undefined;
        if (digest) {
          const have = store.locate(s, digest);
          if (have) return { digest, path: have, size: (await stat(have)).size };
        }
        const real = await realpath(join(root, rel)).catch(() => null);
        if (!real || !(real + sep).startsWith(root + sep)) return null;
        const got = await ingest(s, createReadStream(real), {
          ...(digest ? { digest } : {}),
          ...(expect ? { size: expect.size } : {}),
          max: store.maxLayerBytes,
          what: `layout file ${rel}`,
          code: 'IMAGE_INVALID',
        });
        return got;
      },
    };
    if (!(await source.get('index.json'))) throw invalid(`${dir} has no index.json; it is not an OCI image layout`);
    return importLayout(store, s, source, opts);
  });
}

/** Read the first bytes to tell gzip from plain tar, and hand back a stream that still has them. */
async function peek(input: NodeJS.ReadableStream): Promise<{ gzip: boolean; stream: Readable }> {
  const it = (input as Readable)[Symbol.asyncIterator]();
  const first = await it.next();
  const chunk = first.done ? Buffer.alloc(0) : Buffer.from(first.value as Uint8Array);
  async function* rest(): AsyncGenerator<Buffer> {
    if (chunk.length) yield chunk;
    for (let r = await it.next(); !r.done; r = await it.next()) yield Buffer.from(r.value as Uint8Array);
  }
  if (chunk.length === 0) throw invalid('the archive is empty');
  return { gzip: chunk[0] === 0x1f && chunk[1] === 0x8b, stream: Readable.from(rest()) };
}

async function readJson(
  store: ImageStore,
  source: Source,
  path: string,
  expect?: Descriptor,
): Promise<{ bytes: Buffer; json: unknown }> {
  if (expect && expect.size > MAX_JSON_BYTES)
    throw new RealmError(
      'IMAGE_TOO_LARGE',
      `${path} is declared as ${expect.size} bytes; at most ${MAX_JSON_BYTES} are accepted`,
    );
  const f = await source.get(path, expect);
  if (!f) throw invalid(`the image archive lacks ${path}`);
  if (expect && f.digest !== expect.digest) throw invalid(`${path} has digest ${f.digest}, not ${expect.digest}`);
  return store.readJsonBlob(f.path, path);
}

const blobPath = (digest: string): string => `blobs/sha256/${digest.slice(7)}`;

/** Names for an image: the caller's, else the archive's; each checked. */
function namesFor(found: string[], opts: ImportOptions, count: number): string[] {
  if (opts.name) {
    if (count > 1) throw invalid(`the archive holds ${count} images; import it without a name to keep theirs`);
    return [parseRef(opts.name).ref ?? invalidName(opts.name)];
  }
  const refs = [...new Set(found.map((n) => parseRef(n).ref).filter((r): r is string => r !== null))];
  if (refs.length === 0) throw invalid('the archive names no image; give it a name (realm image import FILE --name NAME:TAG)');
  return refs;
}

function invalidName(n: string): never {
  throw invalid(`"${n}" is a digest; name an image NAME[:TAG]`);
}

async function importLayout(store: ImageStore, s: Staging, source: Source, opts: ImportOptions): Promise<ImportedImage[]> {
  const idx = indexSchema.safeParse((await readJson(store, source, 'index.json')).json);
  if (!idx.success) throw invalid('index.json is not an OCI image index');
  const out: ImportedImage[] = [];
  for (const d of idx.data.manifests) {
    const a = d.annotations ?? {};
    const full = a['io.containerd.image.name'];
    const tag = a['org.opencontainers.image.ref.name'];
    const found = full ? [full] : tag && (tag.includes('/') || tag.includes(':')) ? [tag] : [];
    let desc: Descriptor = d;
    if (INDEX_TYPES.includes(d.mediaType)) {
      const inner = indexSchema.safeParse((await readJson(store, source, blobPath(d.digest), d)).json);
      if (!inner.success) throw invalid(`nested index ${d.digest} is malformed`);
      const pick = inner.data.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
      if (!pick) throw invalid('the image index has no linux/amd64 image');
      desc = pick;
    }
    const { bytes } = await readJson(store, source, blobPath(desc.digest), desc);
    out.push(await importManifest(store, s, source, bytes, namesFor(found, opts, idx.data.manifests.length), opts));
  }
  if (out.length === 0) throw invalid('index.json lists no images');
  return out;
}

/** Fetch every blob a manifest names from the source (config and layers), then unpack and commit. */
async function importManifest(
  store: ImageStore,
  s: Staging,
  source: Source,
  bytes: Buffer,
  names: string[],
  opts: ImportOptions,
): Promise<ImportedImage> {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalid('a manifest in the archive is not valid JSON');
  }
  const json = checkManifest(raw, 'IMAGE_INVALID');
  for (const d of [json.config, ...json.layers]) {
    if (d.size > store.maxLayerBytes)
      throw new RealmError(
        'IMAGE_TOO_LARGE',
        `layer ${d.digest} is declared as ${d.size} bytes; at most ${store.maxLayerBytes} are accepted (raise maxLayerBytes)`,
      );
    const f = await source.get(blobPath(d.digest), d);
    if (!f) throw invalid(`blob ${d.digest} is missing from the archive`);
    if (f.digest !== d.digest) throw invalid(`blob ${d.digest} in the archive has digest ${f.digest}; the archive is corrupt`);
    if (f.size !== d.size)
      throw invalid(`blob ${d.digest} is ${f.size} bytes, its descriptor says ${d.size}; the archive is corrupt or truncated`);
  }
  return assemble(store, s, bytes, names, 'import', opts.onProgress);
}

const dockerManifest = z
  .array(z.object({ Config: z.string(), RepoTags: z.array(z.string()).nullish(), Layers: z.array(z.string()).max(256) }).loose())
  .min(1)
  .max(64);

async function importDocker(store: ImageStore, s: Staging, source: Source, opts: ImportOptions): Promise<ImportedImage[]> {
  const parsed = dockerManifest.safeParse((await readJson(store, source, 'manifest.json')).json);
  if (!parsed.success) throw invalid('manifest.json is not a docker save manifest ([{Config, RepoTags, Layers}])');
  const out: ImportedImage[] = [];
  for (const entry of parsed.data) {
    const config = await source.get(entry.Config);
    if (!config) throw invalid(`the archive lacks the config ${entry.Config}`);
    if (config.size > MAX_JSON_BYTES)
      throw new RealmError(
        'IMAGE_TOO_LARGE',
        `the config ${entry.Config} is ${config.size} bytes; at most ${MAX_JSON_BYTES} are accepted`,
      );
    const layers: Descriptor[] = [];
    for (const l of entry.Layers) {
      const f = await source.get(l);
      if (!f) throw invalid(`the archive lacks the layer ${l}`);
      const kind = await sniffCompression(f.path);
      layers.push({ mediaType: kind === 'gzip' ? MT.ociLayerGzip : MT.ociLayer, digest: f.digest, size: f.size });
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: { mediaType: MT.ociConfig, digest: config.digest, size: config.size },
      layers,
    };
    const names = namesFor(entry.RepoTags ?? [], opts, parsed.data.length);
    out.push(await assemble(store, s, Buffer.from(JSON.stringify(manifest)), names, 'import', opts.onProgress));
  }
  return out;
}

/** Options of the one-layer imports (a root filesystem tarball, file or directory). */
export interface RootfsImportOptions {
  onProgress?: ProgressFn;
  /** Fields of the image config (e.g. `{ config: { Labels: {...} } }`); a field set to undefined is left out. */
  config?: Record<string, unknown>;
  /** What `image ls` says the image came from (default `rootfs`). */
  source?: string;
}

/**
 * Add a one-layer image from a root filesystem tarball (plain or gzip'd), e.g. what mmdebstrap
 * writes. The tarball's entries are the root's contents (`./usr/bin/...` or `usr/bin/...`).
 *
 * @example
 *   const img = await importRootfsTar(engine.images, 'debian:bookworm', createReadStream('rootfs.tar'));
 *   // sandboxes can now use { image: 'debian:bookworm' }
 */
export function importRootfsTar(
  store: ImageStore,
  name: string,
  tar: NodeJS.ReadableStream | AsyncIterable<Uint8Array>,
  o: RootfsImportOptions = {},
): Promise<ImportedImage> {
  const ref = parseRef(name).ref ?? invalidName(name);
  return withStaging(store, async (s) => {
    let n = 0;
    const layer = await ingest(s, tar, {
      max: store.maxLayerBytes,
      what: 'the root filesystem tarball',
      code: 'IMAGE_INVALID',
      onBytes: (b) => o.onProgress?.({ type: 'status', message: `read ${(n += b)} bytes` }),
    });
    return oneLayer(store, s, ref, layer, o);
  });
}

/**
 * Add a one-layer image from a root filesystem tarball file on this host (the image builder's
 * cache): hard-linked into the store when on the same file system, so nothing is copied.
 *
 * @example await importRootfsFile(engine.images, 'py', '/var/cache/realm/images/ab12….tar', { source: 'build' });
 */
export function importRootfsFile(
  store: ImageStore,
  name: string,
  file: string,
  o: RootfsImportOptions = {},
): Promise<ImportedImage> {
  const ref = parseRef(name).ref ?? invalidName(name);
  return withStaging(store, async (s) => {
    const layer = await ingestFile(s, file, {
      max: store.maxLayerBytes,
      what: `the root filesystem tarball ${file}`,
      code: 'IMAGE_INVALID',
    });
    return oneLayer(store, s, ref, layer, o);
  });
}

/**
 * Add a one-layer image from a root filesystem directory on this host (packed into a layer
 * first, so it can be exported and shared like any other image).
 *
 * @example await importRootfsDir(engine.images, 'mybase:1', '/srv/rootfs');
 */
export function importRootfsDir(
  store: ImageStore,
  name: string,
  dir: string,
  o: RootfsImportOptions = {},
): Promise<ImportedImage> {
  return importRootfsTar(store, name, packDir(dir), o);
}

/** The staged `layer` as a one-layer image named `ref`: its config, its manifest, unpacked and committed. */
async function oneLayer(
  store: ImageStore,
  s: Staging,
  ref: string,
  layer: Ingested,
  o: RootfsImportOptions,
): Promise<ImportedImage> {
  const kind = await sniffCompression(layer.path);
  if (kind === 'zstd') throw invalid('zstd-compressed tarballs are not supported; use gzip or plain tar');
  let diffId = layer.digest;
  if (kind === 'gzip') {
    const h = createHash('sha256');
    try {
      await pipeline(createReadStream(layer.path), createGunzip(), async (src: AsyncIterable<Buffer>) => {
        for await (const c of src) h.update(c);
      });
    } catch (e) {
      throw invalid(`the tarball is not valid gzip: ${(e as Error).message}`);
    }
    diffId = `sha256:${h.digest('hex')}`;
  }
  const cfg = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: new Date().toISOString(),
      config: {},
      ...o.config,
      rootfs: { type: 'layers', diff_ids: [diffId] },
    }),
  );
  const c = await ingest(s, Readable.from([cfg]), { max: MAX_JSON_BYTES, what: 'the image config', code: 'IMAGE_INVALID' });
  const manifest = {
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: { mediaType: MT.ociConfig, digest: c.digest, size: c.size },
    layers: [{ mediaType: kind === 'gzip' ? MT.ociLayerGzip : MT.ociLayer, digest: layer.digest, size: layer.size }],
  };
  return assemble(store, s, Buffer.from(JSON.stringify(manifest)), [ref], o.source ?? 'rootfs', o.onProgress);
}
