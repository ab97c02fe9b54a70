/**
 * `realm image build`: a recipe → a cached rootfs tarball → a one-layer image in the
 * content-addressed store, named NAME and labelled with the recipe hash. The cache is keyed by
 * the recipe's hash (suite, sorted packages, mirror, files, builder version): the same recipe is
 * built once; asking again is instant when the stored image has that hash, and an import (the
 * tarball hard-linked as the layer, then unpacked) when only the tarball is cached.
 *
 * @example
 * const b = new ImageBuilder({ dataDir: '/var/lib/realm', store });
 * const r = await b.build('py', { from: 'debian:bookworm', packages: ['python3'] }, { onProgress: console.log });
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { RealmError } from '../../util/errors.js';
import { type BuildProgress, buildDebianTarball } from './debian.js';
import { type ImageMeta, type StoredBuild, builtImage, listBuilt, storeBuiltImage } from './install.js';
import { migrateLegacyImages } from './legacy.js';
import type { ImageStore } from '../store.js';
import { hostMirror, suiteSources } from './mirror.js';
import { imageNameSchema, recipeHash, resolveRecipe } from './recipe.js';
import { unmountUnder } from './mounts.js';

export type { BuildProgress } from './debian.js';

export interface BuildOptions {
  /** Build even when the cache has this recipe. */
  noCache?: boolean;
  onProgress?: (p: BuildProgress) => void;
  signal?: AbortSignal;
}

export interface BuildResult {
  name: string;
  /** The recipe hash (the cache key). */
  hash: string;
  /** 'installed': the image was already this recipe; 'tarball': unpacked from the cache; 'built'. */
  cache: 'installed' | 'tarball' | 'built';
  /** Bytes of the rootfs tarball (the image's one layer). */
  bytes: number;
  /** The image's manifest digest in the store. */
  digest: string;
  /** Where the image's root filesystem is unpacked. */
  rootfs: string;
  /** Time the whole request took. */
  ms: number;
}

export interface ImageBuilderOptions {
  dataDir: string;
  /** Where built images go. */
  store: ImageStore;
  /** Where tarballs are cached (default `<data-dir>/cache/images`); may be shared by daemons. */
  cacheDir?: string;
  /** The Debian mirror when a recipe names none (default: this host's apt mirror). */
  mirror?: string;
  /** Most bytes of tarballs kept in the cache; the least recently used go first (default 16 GiB). */
  cacheBytes?: number;
}

export class ImageBuilder {
  private readonly building = new Set<string>();
  /** Builds under way: aborted and awaited by close(). */
  private readonly inFlight = new Map<Promise<unknown>, AbortController>();
  readonly cacheDir: string;
  private probed: { available: boolean; reason?: string; version?: string } | undefined;

  constructor(private readonly opts: ImageBuilderOptions) {
    this.cacheDir = opts.cacheDir ?? join(opts.dataDir, 'cache', 'images');
  }

  /** Build (or take from the cache) image `name` from `input`, a recipe (see recipe.ts). */
  build(name: string, input: unknown, o: BuildOptions = {}): Promise<BuildResult> {
    const ctrl = new AbortController();
    const signal = o.signal ? AbortSignal.any([o.signal, ctrl.signal]) : ctrl.signal;
    const p = this.run(name, input, { ...o, signal });
    this.inFlight.set(p, ctrl);
    const forget = (): void => void this.inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** Cancel the builds under way and wait until they have cleaned up (daemon shutdown). */
  async close(): Promise<void> {
    for (const ctrl of this.inFlight.values()) ctrl.abort();
    await Promise.allSettled([...this.inFlight.keys()]);
  }

  private async run(name: string, input: unknown, o: BuildOptions): Promise<BuildResult> {
    const started = performance.now();
    const progress = o.onProgress ?? ((): void => undefined);
    const checked = imageNameSchema.safeParse(name);
    if (!checked.success || name === 'host') throw new RealmError('IMAGE_RECIPE_INVALID', `bad image name "${name}": ${checked.success ? '"host" is the host\'s own root' : (checked.error.issues[0]?.message ?? '')}`);
    const recipe = resolveRecipe(input, this.opts.mirror ?? hostMirror());
    const hash = recipeHash(recipe);
    if (this.building.has(name)) throw new RealmError('IMAGE_BUILD_BUSY', `image "${name}" is being built already; wait for that build to finish`);
    this.building.add(name);
    try {
      const meta = { hash, from: `debian:${recipe.suite}`, packages: recipe.packages };
      const done = (cache: BuildResult['cache'], img: StoredBuild): BuildResult => {
        if (cache !== 'installed') {
          try {
            this.pruneCache(hash);
          } catch {
            // Another daemon sharing the cache pruned at the same time: nothing is lost.
          }
        }
        progress({ phase: 'done', message: cache === 'built' ? `built image ${name}` : `image ${name} is up to date (cache hit)`, percent: 100 });
        return { name, hash, cache, bytes: img.bytes, digest: img.digest, rootfs: img.rootfs, ms: Math.round(performance.now() - started) };
      };
      const installed = o.noCache ? undefined : await builtImage(this.opts.store, name);
      if (installed?.hash === hash) return done('installed', installed);
      const tarball = join(this.cacheDir, `${hash}.tar`);
      if (!o.noCache && existsSync(tarball)) {
        progress({ phase: 'unpack', message: `storing cached ${hash.slice(0, 12)} as image ${name}`, percent: 92 });
        return done('tarball', await storeBuiltImage(this.opts.store, name, tarball, meta, progress));
      }
      const sources = await suiteSources(recipe.suite, recipe.mirror);
      mkdirSync(this.cacheDir, { recursive: true, mode: 0o700 });
      // The pid in the name tells recover() whether the build's daemon still lives.
      const work = join(this.cacheDir, `.build-${hash.slice(0, 12)}-${process.pid}-${randomBytes(4).toString('hex')}`);
      mkdirSync(work, { mode: 0o700 });
      try {
        const out = join(work, 'rootfs.tar');
        await buildDebianTarball(recipe, sources, out, work, progress, o.signal);
        renameSync(out, tarball);
      } finally {
        removeWorkDir(work);
      }
      progress({ phase: 'unpack', message: `storing image ${name} (${(statSync(tarball).size / 1024 ** 2).toFixed(0)} MiB)`, percent: 92 });
      return done('built', await storeBuiltImage(this.opts.store, name, tarball, meta, progress));
    } finally {
      this.building.delete(name);
    }
  }

  /**
   * Keep the cache under its size: mark `used` as just used (mtime), then remove the least
   * recently used tarballs beyond the limit. Another daemon sharing the cache may be reading one:
   * it keeps its open file.
   */
  private pruneCache(used: string): void {
    const limit = this.opts.cacheBytes ?? 16 * 1024 ** 3;
    const now = new Date();
    try {
      utimesSync(join(this.cacheDir, `${used}.tar`), now, now);
    } catch {
      return;
    }
    const entries = readdirSync(this.cacheDir).filter((f) => /^[0-9a-f]{64}\.tar$/.test(f)).map((f) => {
      const st = statSync(join(this.cacheDir, f));
      return { f, size: st.size, mtime: st.mtimeMs };
    }).sort((a, b) => b.mtime - a.mtime);
    let total = 0;
    for (const e of entries) {
      total += e.size;
      if (total > limit && e.f !== `${used}.tar`) rmSync(join(this.cacheDir, e.f), { force: true });
    }
  }

  /**
   * At start: remove the work dirs builds of dead daemons left in the cache (which other daemons
   * may share: only those whose pid is gone), and move images of an older realm's
   * `<data-dir>/images/NAME/rootfs` into the store (see legacy.ts).
   */
  async recover(o: { inUse: (name: string) => boolean; log: (line: string) => void } = { inUse: () => false, log: () => undefined }): Promise<void> {
    if (existsSync(this.cacheDir)) {
      for (const f of readdirSync(this.cacheDir)) {
        const pid = Number(/^\.build-[0-9a-f]{12}-(\d+)-/.exec(f)?.[1]);
        if (pid && !alive(pid)) removeWorkDir(join(this.cacheDir, f));
      }
    }
    await migrateLegacyImages({ store: this.opts.store, cacheDir: this.cacheDir, ...o });
  }

  /** Whether images can be built here (mmdebstrap installed), asked once. */
  capability(): { available: boolean; reason?: string; version?: string } {
    if (!this.probed) {
      const r = spawnSync('mmdebstrap', ['--version'], { encoding: 'utf8', timeout: 10_000 });
      this.probed = r.status === 0
        ? { available: true, version: r.stdout.trim().split(/\s+/).pop() ?? '' }
        : { available: false, reason: 'mmdebstrap is not installed (apt-get install mmdebstrap, or scripts/setup.sh)' };
    }
    return this.probed;
  }

  /** Built images of the store (those whose config carries a recipe label). */
  list(): Promise<ImageMeta[]> {
    return listBuilt(this.opts.store);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove a build's work dir; first undo any mount a killed mmdebstrap left in its chroot. */
function removeWorkDir(work: string): void {
  if (!unmountUnder(work)) return; // never recurse into a mounted /dev or /proc
  rmSync(work, { recursive: true, force: true });
}
