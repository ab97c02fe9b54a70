/**
 * The content-addressed image store under `<data-dir>/images/`:
 *
 *   blobs/sha256/<hex>    manifests, configs and layers, by digest (never changed once there)
 *   unpacked/<hex>/       the flattened read-only root filesystem of manifest <hex>
 *   index.json            image name (`NAME:TAG`) → manifest digest, written atomically
 *   tmp/<id>/             one import or pull in progress (removed on failure and at start-up)
 *
 * Many sandboxes share one unpacked image read-only; each has its own writable layers.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { readFile, rename, rm, stat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { RealmError } from '../util/errors.js';
import { Staging } from './blobs.js';
import {
  DEFAULT_MAX_LAYER_BYTES,
  MAX_JSON_BYTES,
  configSchema,
  manifestSchema,
  type ImageConfig,
  type Manifest,
} from './media.js';
import { DIGEST_RE, parseRef } from './ref.js';

export interface ImageStoreOptions {
  /** `<data-dir>/images`. */
  dir: string;
  /** Most bytes one layer may have, compressed or not. */
  maxLayerBytes?: number;
  /** Image strings of every sandbox (live or stopped), for IMAGE_IN_USE and prune. */
  sandboxImages?: () => Promise<string[]>;
  /** Roots that live sandboxes and runs were built on (they stay, whatever names point at now). */
  rootsInUse?: () => Promise<string[]>;
  /** Called before an unpacked root is deleted, so warm sandboxes built on it are discarded. */
  releaseRootfs?: (dir: string) => Promise<void>;
}

interface IndexEntry {
  digest: string;
  createdAt: number;
  source: string;
}

interface IndexFile {
  version: 1;
  images: Record<string, IndexEntry>;
  /** Bytes of file content in each unpacked image, by manifest digest. */
  unpacked: Record<string, number>;
}

/** One stored image as listed. */
export interface ImageInfo {
  /** `NAME:TAG` names pointing at it. */
  names: string[];
  digest: string;
  /** Sum of the manifest's config and layer blob sizes (compressed). */
  size: number;
  /** Bytes of file content once unpacked. */
  unpackedSize: number;
  layers: number;
  createdAt: string;
  source: string;
}

export interface ImageDetail extends ImageInfo {
  manifest: Manifest;
  config: ImageConfig;
  rootfs: string;
}

/** What a committed import or pull hands over. */
export interface CommitSpec {
  names: string[];
  manifestDigest: string;
  /** The unpacked root in the staging area, or null when it is already in the store. */
  rootfs: string | null;
  unpackedBytes: number;
  /** Every blob the image uses (manifest, config, layers). */
  blobs: string[];
  source: string;
}

const hex = (digest: string): string => digest.slice('sha256:'.length);

export class ImageStore {
  readonly dir: string;
  readonly maxLayerBytes: number;
  private readonly active = new Set<Staging>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: ImageStoreOptions) {
    this.dir = opts.dir;
    this.maxLayerBytes = opts.maxLayerBytes ?? DEFAULT_MAX_LAYER_BYTES;
    // The sandbox uid walks through images/ and unpacked/ to its image; blobs and tmp are private.
    for (const [d, mode] of [
      [this.dir, 0o711],
      [join(this.dir, 'unpacked'), 0o711],
      [join(this.dir, 'blobs', 'sha256'), 0o700],
      [this.tmpDir, 0o700],
    ] as const) {
      mkdirSync(d, { recursive: true, mode });
    }
    // Imports of an earlier run that never finished.
    for (const e of readdirSync(this.tmpDir)) rmSync(join(this.tmpDir, e), { recursive: true, force: true });
  }

  get tmpDir(): string {
    return join(this.dir, 'tmp');
  }

  blobPath(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', hex(digest));
  }

  rootfsPath(digest: string): string {
    return join(this.dir, 'unpacked', hex(digest));
  }

  hasBlob(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  /** Start an import: a private staging directory; `release` it when done (commit or not). */
  async stage(): Promise<Staging> {
    const s = await Staging.create(this.tmpDir);
    this.active.add(s);
    return s;
  }

  async release(s: Staging): Promise<void> {
    this.active.delete(s);
    await s.cleanup();
  }

  /** Where a blob is: staged by this import, or already in the store (then pinned). */
  locate(s: Staging, digest: string): string | null {
    const staged = s.blobs.get(digest);
    if (staged) return staged;
    if (this.hasBlob(digest)) {
      s.pins.add(digest);
      return this.blobPath(digest);
    }
    return null;
  }

  /** Read a small JSON blob (manifest or config), refusing anything over the JSON cap. */
  async readJsonBlob(path: string, what: string): Promise<{ bytes: Buffer; json: unknown }> {
    const st = await stat(path);
    if (st.size > MAX_JSON_BYTES)
      throw new RealmError('IMAGE_TOO_LARGE', `${what} is ${st.size} bytes; at most ${MAX_JSON_BYTES} are accepted`);
    const bytes = await readFile(path);
    try {
      return { bytes, json: JSON.parse(bytes.toString('utf8')) as unknown };
    } catch (e) {
      throw new RealmError('IMAGE_INVALID', `${what} is not valid JSON: ${(e as Error).message}`);
    }
  }

  /** Run `fn` alone: index writes, commits, removals and prunes never interleave. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private readIndex(): IndexFile {
    try {
      const data = JSON.parse(readFileSync(join(this.dir, 'index.json'), 'utf8')) as IndexFile;
      return { version: 1, images: data.images ?? {}, unpacked: data.unpacked ?? {} };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, images: {}, unpacked: {} };
      throw e;
    }
  }

  /** Write the index: a new file, then a rename, so a reader sees the old or the new one whole. */
  private writeIndex(idx: IndexFile): void {
    const tmp = join(this.tmpDir, `index.json.${process.pid}`);
    writeFileSync(tmp, JSON.stringify(idx, null, 1), { mode: 0o600, flush: true });
    renameSync(tmp, join(this.dir, 'index.json'));
  }

  /** Every image name with the manifest digest it names now. */
  names(): Map<string, string> {
    return new Map(Object.entries(this.readIndex().images).map(([name, e]) => [name, e.digest]));
  }

  /** The manifest digest an image reference names, or IMAGE_NOT_FOUND. */
  resolveDigest(text: string): string {
    const r = parseRef(text);
    if (r.digest) {
      if (!existsSync(this.rootfsPath(r.digest))) throw notFound(text);
      return r.digest;
    }
    const e = this.readIndex().images[r.ref!];
    if (!e) throw notFound(text);
    return e.digest;
  }

  /** The unpacked root filesystem of an image (synchronous: sandbox creation asks on its hot path). */
  resolveRootfs(text: string): string {
    const dir = this.rootfsPath(this.resolveDigest(text));
    if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw notFound(text);
    return dir;
  }

  /** Move a staged image into the store and name it. */
  commit(s: Staging, spec: CommitSpec): Promise<void> {
    return this.locked(async () => {
      for (const d of spec.blobs) {
        const staged = s.blobs.get(d);
        if (this.hasBlob(d)) continue;
        if (!staged) throw new RealmError('INTERNAL', `blob ${d} is neither staged nor stored`);
        await rename(staged, this.blobPath(d));
      }
      const dest = this.rootfsPath(spec.manifestDigest);
      if (spec.rootfs && !existsSync(dest)) await rename(spec.rootfs, dest);
      const idx = this.readIndex();
      if (spec.rootfs || idx.unpacked[spec.manifestDigest] === undefined) idx.unpacked[spec.manifestDigest] = spec.unpackedBytes;
      for (const n of spec.names) idx.images[n] = { digest: spec.manifestDigest, createdAt: Date.now(), source: spec.source };
      this.writeIndex(idx);
    });
  }

  private async manifestOf(digest: string): Promise<Manifest> {
    const { json } = await this.readJsonBlob(this.blobPath(digest), `manifest ${digest}`);
    return manifestSchema.parse(json);
  }

  /** Every image, one row per manifest digest with all its names. */
  async list(): Promise<ImageInfo[]> {
    const idx = this.readIndex();
    const byDigest = new Map<string, { names: string[]; entry: IndexEntry }>();
    for (const [name, e] of Object.entries(idx.images).sort(([a], [b]) => a.localeCompare(b))) {
      const row = byDigest.get(e.digest);
      if (row) {
        row.names.push(name);
        if (e.createdAt > row.entry.createdAt) row.entry = e;
      } else byDigest.set(e.digest, { names: [name], entry: e });
    }
    const out: ImageInfo[] = [];
    for (const [digest, { names, entry }] of byDigest) {
      const m = await this.manifestOf(digest).catch(() => null);
      out.push({
        names,
        digest,
        size: m ? m.config.size + m.layers.reduce((a, l) => a + l.size, 0) : 0,
        unpackedSize: idx.unpacked[digest] ?? 0,
        layers: m?.layers.length ?? 0,
        createdAt: new Date(entry.createdAt).toISOString(),
        source: entry.source,
      });
    }
    return out;
  }

  /** One image in detail: its manifest, config and where it is unpacked. */
  async inspect(text: string): Promise<ImageDetail> {
    const digest = this.resolveDigest(text);
    const row = (await this.list()).find((i) => i.digest === digest);
    const manifest = await this.manifestOf(digest);
    const { json } = await this.readJsonBlob(this.blobPath(manifest.config.digest), 'the image config');
    const config = configSchema.parse(json);
    return {
      names: row?.names ?? [],
      digest,
      size: manifest.config.size + manifest.layers.reduce((a, l) => a + l.size, 0),
      unpackedSize: this.readIndex().unpacked[digest] ?? 0,
      layers: manifest.layers.length,
      createdAt: row?.createdAt ?? '',
      source: row?.source ?? '',
      manifest,
      config,
      rootfs: this.rootfsPath(digest),
    };
  }

  /** Digests sandboxes use, and the image strings of those that name `ref` exactly. */
  private async usage(): Promise<{ digests: Set<string>; names: Set<string> }> {
    const digests = new Set<string>();
    const names = new Set<string>();
    for (const root of (await this.opts.rootsInUse?.()) ?? []) {
      const m = /\/unpacked\/([a-f0-9]{64})$/.exec(root);
      if (m && root === this.rootfsPath(`sha256:${m[1]}`)) digests.add(`sha256:${m[1]}`);
    }
    for (const image of (await this.opts.sandboxImages?.()) ?? []) {
      try {
        const r = parseRef(image);
        if (r.ref) names.add(r.ref);
        digests.add(this.resolveDigest(image));
      } catch {
        /* host, a directory, or an image already gone */
      }
    }
    return { digests, names };
  }

  /**
   * Remove a name. Refused (IMAGE_IN_USE) when a sandbox, live or stopped, was created from it,
   * or from its digest and this is the digest's last name. The unpacked root goes with the last
   * name; blobs stay until `prune`.
   */
  remove(text: string): Promise<{ removed: string[] }> {
    return this.locked(async () => {
      const r = parseRef(text);
      const idx = this.readIndex();
      const digest = this.resolveDigest(text);
      // NAME:TAG removes that name; NAME@sha256:… that entry if listed; a bare digest every name of it.
      const names = r.ref
        ? [r.ref]
        : idx.images[text]
          ? [text]
          : Object.keys(idx.images).filter((n) => idx.images[n]?.digest === digest);
      const use = await this.usage();
      const rest = Object.keys(idx.images).filter((n) => idx.images[n].digest === digest && !names.includes(n));
      for (const n of names) {
        if (use.names.has(n))
          throw new RealmError(
            'IMAGE_IN_USE',
            `image ${n} is used by a sandbox; destroy the sandboxes made from it first (realm sandbox ls)`,
          );
      }
      if (rest.length === 0 && use.digests.has(digest)) {
        throw new RealmError(
          'IMAGE_IN_USE',
          `image ${text} (${digest}) is used by a sandbox; destroy the sandboxes made from it first (realm sandbox ls)`,
        );
      }
      for (const n of names) delete idx.images[n];
      if (rest.length === 0) delete idx.unpacked[digest];
      this.writeIndex(idx);
      if (rest.length === 0) await this.discard(this.rootfsPath(digest));
      return { removed: names.length ? names : [digest] };
    });
  }

  /** Rename away, then delete: a half-deleted root is never visible under unpacked/. */
  private async discard(dir: string): Promise<void> {
    if (!existsSync(dir)) return;
    await this.opts.releaseRootfs?.(dir);
    const trash = join(this.tmpDir, `trash-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`);
    await rename(dir, trash);
    await rm(trash, { recursive: true, force: true });
  }

  /** Remove blobs and unpacked roots no name, no sandbox and no import in progress uses. */
  prune(): Promise<{ blobs: number; unpacked: number; bytes: number }> {
    return this.locked(async () => {
      const idx = this.readIndex();
      const use = await this.usage();
      const keepManifests = new Set([...Object.values(idx.images).map((e) => e.digest), ...use.digests]);
      const keep = new Set<string>();
      for (const s of this.active) for (const d of [...s.pins, ...s.blobs.keys()]) keep.add(d);
      for (const d of keepManifests) {
        keep.add(d);
        const m = await this.manifestOf(d).catch(() => null);
        if (m) for (const x of [m.config, ...m.layers]) keep.add(x.digest);
      }
      let blobs = 0;
      let bytes = 0;
      for (const f of await readdir(join(this.dir, 'blobs', 'sha256'))) {
        const d = `sha256:${f}`;
        if (keep.has(d)) continue;
        bytes += (await stat(this.blobPath(d)).catch(() => ({ size: 0 }))).size;
        await rm(this.blobPath(d), { force: true });
        blobs++;
      }
      let unpacked = 0;
      for (const f of await readdir(join(this.dir, 'unpacked'))) {
        const d = `sha256:${f}`;
        if (keepManifests.has(d) || [...this.active].some((s) => s.pins.has(d))) continue;
        if (!DIGEST_RE.test(d)) continue;
        await this.discard(this.rootfsPath(d));
        delete idx.unpacked[d];
        unpacked++;
      }
      this.writeIndex(idx);
      return { blobs, unpacked, bytes };
    });
  }
}

function notFound(text: string): RealmError {
  return new RealmError(
    'IMAGE_NOT_FOUND',
    `image "${text}" not found; list images with \`realm image ls\`, or import or pull it first`,
  );
}
