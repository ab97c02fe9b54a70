/**
 * `realm image build`: a recipe → a cached rootfs tarball → an installed image. The cache is
 * keyed by the recipe's hash (suite, sorted packages, mirror, files, builder version): the same
 * recipe is built once; asking again is instant when that image is installed, and an unpack
 * when only the tarball is cached.
 *
 * @example
 * const b = new ImageBuilder({ dataDir: '/var/lib/realm' });
 * const r = await b.build('py', { from: 'debian:bookworm', packages: ['python3'] }, { onProgress: console.log });
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { RealmError } from '../../util/errors.js';
import { type BuildProgress, buildDebianTarball } from './debian.js';
import { type ImageMeta, installRootfsTarball, installedImage } from './install.js';
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
  /** Bytes of the rootfs tarball. */
  bytes: number;
  /** Where the image's root filesystem is. */
  rootfs: string;
  /** Time the whole request took. */
  ms: number;
}

export interface ImageBuilderOptions {
  dataDir: string;
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
      const meta: Omit<ImageMeta, 'bytes'> = { name, hash, from: `debian:${recipe.suite}`, packages: recipe.packages, createdAt: Date.now() };
      const rootfs = join(this.opts.dataDir, 'images', name, 'rootfs');
      const done = (cache: BuildResult['cache'], bytes: number): BuildResult => {
        if (cache !== 'installed') {
          try {
            this.pruneCache(hash);
          } catch {
            // Another daemon sharing the cache pruned at the same time: nothing is lost.
          }
        }
        progress({ phase: 'done', message: cache === 'built' ? `built image ${name}` : `image ${name} is up to date (cache hit)`, percent: 100 });
        return { name, hash, cache, bytes, rootfs, ms: Math.round(performance.now() - started) };
      };
      const installed = installedImage(this.opts.dataDir, name);
      if (!o.noCache && installed?.hash === hash) return done('installed', installed.bytes);
      const tarball = join(this.cacheDir, `${hash}.tar`);
      if (!o.noCache && existsSync(tarball)) {
        progress({ phase: 'unpack', message: `unpacking cached ${hash.slice(0, 12)}`, percent: 92 });
        const bytes = statSync(tarball).size;
        await installRootfsTarball(this.opts.dataDir, name, tarball, { ...meta, bytes });
        return done('tarball', bytes);
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
      const bytes = statSync(tarball).size;
      progress({ phase: 'unpack', message: `installing image ${name} (${(bytes / 1024 ** 2).toFixed(0)} MiB)`, percent: 95 });
      await installRootfsTarball(this.opts.dataDir, name, tarball, { ...meta, bytes });
      return done('built', bytes);
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
   * After a crash: remove what builds of dead daemons left — work dirs in the cache (which other
   * daemons may share: only those whose pid is gone) and half-installed trees in this data dir.
   */
  recover(): void {
    if (existsSync(this.cacheDir)) {
      for (const f of readdirSync(this.cacheDir)) {
        const pid = Number(/^\.build-[0-9a-f]{12}-(\d+)-/.exec(f)?.[1]);
        if (pid && !alive(pid)) removeWorkDir(join(this.cacheDir, f));
      }
    }
    const images = join(this.opts.dataDir, 'images');
    if (existsSync(images)) {
      for (const f of readdirSync(images)) if (/^\.(tmp|old)-/.test(f)) rmSync(join(images, f), { recursive: true, force: true });
    }
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

  /** Installed images. */
  list(): ImageMeta[] {
    const dir = join(this.opts.dataDir, 'images');
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((n) => !n.startsWith('.')).map((n) => installedImage(this.opts.dataDir, n) ?? plainImage(dir, n)).filter((m): m is ImageMeta => !!m);
  }
}

/** A rootfs directory someone put under images/ by hand. */
function plainImage(dir: string, name: string): ImageMeta | undefined {
  try {
    const st = statSync(join(dir, name, 'rootfs'));
    return st.isDirectory() ? { name, hash: '', from: 'directory', packages: [], bytes: 0, createdAt: st.mtimeMs } : undefined;
  } catch {
    return undefined;
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

/** The recipe hash recorded for image `name` (for caches keyed by image content). */
export function imageHash(dataDir: string, name: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(dataDir, 'images', name, 'image.json'), 'utf8')) as ImageMeta).hash;
  } catch {
    return undefined;
  }
}
