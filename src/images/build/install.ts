/**
 * Built images in the content-addressed store: a build's rootfs tarball becomes a one-layer OCI
 * image named NAME (`NAME:latest`), its config labelled with the recipe hash, the base and the
 * packages. The labels are how a later build knows the image is already this recipe, and how
 * `GET /v1/images/built` tells built images from imported ones.
 *
 * @example
 * await storeBuiltImage(store, 'py', '/var/cache/realm/images/ab12….tar', { hash, from: 'debian:bookworm', packages: ['python3'] });
 * (await builtImage(store, 'py'))?.hash; // ab12…
 */
import { existsSync } from 'node:fs';
import type { BuildProgress } from './debian.js';
import { importRootfsFile } from '../import.js';
import type { ImageStore } from '../store.js';
import { RealmError } from '../../util/errors.js';

/** Config labels of a built image. */
export const LABELS = {
  recipe: 'org.realm.recipe',
  base: 'org.realm.base',
  packages: 'org.realm.packages',
} as const;

/** What realm records about a built image (GET /v1/images/built). */
export interface ImageMeta {
  name: string;
  /** The recipe hash it was built from. */
  hash: string;
  from: string;
  packages: string[];
  /** Bytes of the image's layer (the rootfs tarball). */
  bytes: number;
  createdAt: number;
  /** The image's manifest digest in the store. */
  digest: string;
}

/** A stored image as the builder sees it: where it is unpacked, and its meta. */
export interface StoredBuild extends ImageMeta {
  rootfs: string;
}

/** `py:latest` → `py`: build names are untagged. */
const buildName = (ref: string): string => ref.replace(/:latest$/, '');

/** The built image named `name` (NAME or NAME:TAG), or undefined when there is none or it is not a build. */
export async function builtImage(store: ImageStore, name: string): Promise<StoredBuild | undefined> {
  let d;
  try {
    d = await store.inspect(name);
  } catch (e) {
    if (e instanceof RealmError && (e.code === 'IMAGE_NOT_FOUND' || e.code === 'IMAGE_INVALID')) return undefined;
    throw e;
  }
  const labels = (d.config.config?.Labels ?? {}) as Record<string, string>;
  const hash = labels[LABELS.recipe];
  if (!hash || !existsSync(d.rootfs)) return undefined;
  return {
    name: buildName(name.includes(':') ? name : `${name}:latest`),
    hash,
    from: labels[LABELS.base] ?? '',
    packages: (labels[LABELS.packages] ?? '').split(' ').filter(Boolean),
    bytes: d.manifest.layers.reduce((a, l) => a + l.size, 0),
    createdAt: Date.parse(d.createdAt) || 0,
    digest: d.digest,
    rootfs: d.rootfs,
  };
}

/** Every built image of the store, one row per name. */
export async function listBuilt(store: ImageStore): Promise<ImageMeta[]> {
  const out: ImageMeta[] = [];
  for (const img of await store.list()) {
    for (const n of img.names) {
      const b = await builtImage(store, n);
      if (b) out.push({ name: b.name, hash: b.hash, from: b.from, packages: b.packages, bytes: b.bytes, createdAt: b.createdAt, digest: b.digest });
    }
  }
  return out;
}

/**
 * Put the rootfs tarball of a build into the store as image `name`, replacing what the name
 * pointed at (the old image stays while sandboxes use it; `realm image prune` removes it after).
 */
export async function storeBuiltImage(store: ImageStore, name: string, tarball: string, meta: { hash: string; from: string; packages: string[] }, progress: (p: BuildProgress) => void): Promise<StoredBuild> {
  let last = 0;
  await importRootfsFile(store, name, tarball, {
    source: 'build',
    // No `created`: the same tarball makes the same image (digest) on every node.
    config: { created: undefined, config: { Labels: { [LABELS.recipe]: meta.hash, [LABELS.base]: meta.from, [LABELS.packages]: meta.packages.join(' ') } } },
    onProgress: (p) => {
      // Reported per chunk read: passed on only when the percentage moves.
      const percent = p.type === 'layer' && p.phase === 'unpack' && p.total > 0 ? Math.min(99, 92 + Math.floor((7 * p.bytes) / p.total)) : 0;
      if (percent > last) progress({ phase: 'unpack', message: `unpacking image ${name}`, percent: (last = percent) });
    },
  });
  const b = await builtImage(store, name);
  if (!b) throw new RealmError('INTERNAL', `image ${name} was stored but cannot be read back`);
  return b;
}
