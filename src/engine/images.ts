/**
 * Which root filesystem a sandbox or run gets: `host` (the host's read-only /usr), a root
 * filesystem directory inside one the operator allows (`--image-dir`), or an image of the content-addressed store (`NAME`, `NAME:TAG`,
 * `sha256:…`; see src/images) — imported, pulled, or built from a recipe. Also every change to
 * the store (build, import, pull, remove, prune: one seam, and warm sandboxes of a root a name
 * no longer names are dropped after each), export, and the version probe of languages that run
 * in images.
 *
 * @example
 * const roots = new ImageRoots({ dataDir }, deps);
 * roots.rootOf('sb-1', 'langs'); // '/var/lib/realm/images/unpacked/54ac…'
 */
import { traced } from '../telemetry/trace.js';
import { statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { RealmError } from '../util/errors.js';
import { ImageDirs } from './image-dirs.js';
import { ImageStore } from '../images/store.js';
import { type BuildOptions, type BuildResult, ImageBuilder } from '../images/build/builder.js';
import { findRecipe } from '../images/build/recipe.js';
import { type ImportOptions, importArchive } from '../images/import.js';
import type { ImportedImage } from '../images/assemble.js';
import { type PullOptions, pullImage } from '../images/pull.js';
import { exportImage } from '../images/export.js';
import type { Readable } from 'node:stream';
import { IMAGE_RECIPES_DIR } from '../util/paths.js';
import type { SandboxRecord } from '../store/store.js';
import { type Language, type VersionProbe, imageVersionProbe } from './languages.js';
import { log } from '../logs/log.js';

/**
 * What the driver mounts for `image`: 'host', or an absolute directory (a host directory inside
 * one the operator allows, see image-dirs.ts, or the unpacked root of an image of the store).
 */
export function resolveImage(image: string, o: { dirs: ImageDirs; store?: ImageStore }): string {
  if (image === 'host') return 'host';
  let dir = image;
  let st;
  if (isAbsolute(image)) {
    dir = o.dirs.resolve(image);
    st = statSync(dir, { throwIfNoEntry: false });
  } else if (o.store) {
    try {
      dir = o.store.resolveRootfs(image);
      st = statSync(dir, { throwIfNoEntry: false });
    } catch (e) {
      if (!(e instanceof RealmError) || (e.code !== 'IMAGE_NOT_FOUND' && e.code !== 'IMAGE_INVALID')) throw e;
    }
  }
  if (!st?.isDirectory()) {
    throw new RealmError(
      'IMAGE_NOT_FOUND',
      `image "${image}" not found: use "host", a root filesystem directory inside one given to \`realm serve --image-dir\`, or an image of \`realm image ls\` (build, import or pull it first)`,
    );
  }
  // Sandboxes are built by unprivileged uids, each its own: every one must enter and read the image.
  if ((st.mode & 0o005) !== 0o005) {
    throw new RealmError(
      'IMAGE_NOT_FOUND',
      `image directory ${dir} is not readable by sandbox users (each runs as a host uid of its own); make it so with chmod o+rx ${dir}`,
    );
  }
  return dir;
}

export interface ImageRootsConfig {
  dataDir: string;
  /** Most bytes one image layer may have (compressed or unpacked). */
  maxLayerBytes?: number;
  /** Where built image tarballs are cached (default `<data-dir>/cache/images`). */
  imageCacheDir?: string;
  /** Host directories whose subdirectories may be images (`realm serve --image-dir`). */
  imageDirs?: string[];
}

/** What the engine lends: its sandbox records, its warm pools, and a way to run one command. */
export interface ImageRootsDeps {
  listSandboxes(): Promise<SandboxRecord[]>;
  /** Discard warm sandboxes whose shape key matches (their root is going or has moved). */
  dropWarm(match: (key: string) => boolean): Promise<void>;
  /** Run one command in a throwaway sandbox of `image` (small limits, no network): its output. */
  runInImage(image: string, argv: string[], env: Record<string, string>): Promise<string>;
}

export class ImageRoots {
  /** The content-addressed image store under <data-dir>/images (imports, pulls, exports, builds). */
  readonly store: ImageStore;
  /** Builds images from recipes (`realm image build`) into the store. */
  readonly builder: ImageBuilder;
  /** The root each sandbox and one-shot run was built on (a name may since point elsewhere). */
  readonly roots = new Map<string, string>();
  /** The operator's image directories (refused at construction when one is unfit). */
  private readonly dirs: ImageDirs;

  constructor(
    private readonly config: ImageRootsConfig,
    private readonly deps: ImageRootsDeps,
  ) {
    this.dirs = new ImageDirs(config.imageDirs ?? [], config.dataDir);
    this.store = new ImageStore({
      dir: join(config.dataDir, 'images'),
      ...(config.maxLayerBytes ? { maxLayerBytes: config.maxLayerBytes } : {}),
      sandboxImages: async () => (await deps.listSandboxes()).map((r) => r.image),
      rootsInUse: async () => {
        const recs = new Map((await deps.listSandboxes()).map((r) => [r.id, r]));
        const out: string[] = [];
        for (const [id, root] of this.roots) {
          const rec = recs.get(id);
          if (id.startsWith('run:') || (rec && rec.status !== 'stopped')) out.push(root);
          else if (!rec) this.roots.delete(id);
        }
        return out;
      },
      // Warm sandboxes of an image about to be deleted go first.
      releaseRootfs: (dir) => deps.dropWarm((key) => key.includes(JSON.stringify(dir))),
    });
    this.builder = new ImageBuilder({
      dataDir: config.dataDir,
      store: this.store,
      ...(config.imageCacheDir ? { cacheDir: config.imageCacheDir } : {}),
    });
  }

  /** Directories holding named image recipes: the operator's first, then realm's. */
  get recipeDirs(): string[] {
    return [join(this.config.dataDir, 'recipes'), IMAGE_RECIPES_DIR];
  }

  /**
   * Where an image of the store this node lacks may come from (a cluster: another node that has
   * it, see cluster/image-peers.ts); it imports the image here and says whether it did.
   */
  elsewhere: ((image: string) => Promise<boolean>) | undefined;

  /**
   * Make sure `image` can be resolved here: an image of the store that this node lacks is
   * brought from `elsewhere` first, when set. Anything else is left for `resolve` to answer.
   */
  async ensure(image: string): Promise<void> {
    if (!this.elsewhere || image === 'host' || isAbsolute(image)) return;
    try {
      this.store.resolveRootfs(image);
      return;
    } catch (e) {
      if (!(e instanceof RealmError) || e.code !== 'IMAGE_NOT_FOUND') throw e;
    }
    await this.elsewhere(image);
  }

  /** The root `image` names now; a missing image that has a recipe says how to build it. */
  resolve(image: string): string {
    try {
      return resolveImage(image, { dirs: this.dirs, store: this.store });
    } catch (e) {
      if (e instanceof RealmError && e.code === 'IMAGE_NOT_FOUND' && findRecipe(image, this.recipeDirs)) {
        throw new RealmError(
          'IMAGE_NOT_FOUND',
          `image "${image}" is not built on this node; build it once with: realm image build ${image}`,
        );
      }
      throw e;
    }
  }

  /** Resolve `image` for sandbox or run `id`, remembering the root it was built on. */
  rootOf(id: string, image: string): string {
    const root = this.resolve(image);
    this.roots.set(id, root);
    return root;
  }

  /** The image a language runs in; a missing one is IMAGE_NOT_FOUND with the command that builds it. */
  languageImage(lang: Language): string {
    try {
      return this.resolve(lang.image);
    } catch (e) {
      if (!(e instanceof RealmError) || e.code !== 'IMAGE_NOT_FOUND' || !findRecipe(lang.image, this.recipeDirs)) throw e;
      // Not built on demand: a build downloads hundreds of megabytes and takes minutes, far
      // beyond a run's deadline; the operator builds it once.
      throw new RealmError(
        'IMAGE_NOT_FOUND',
        `language "${lang.name}" runs in image "${lang.image}", which is not built on this node; build it once with: realm image build ${lang.image}`,
      );
    }
  }

  /** Build image `name` (see ImageBuilder.build). */
  build(name: string, recipe: unknown, o: BuildOptions = {}): Promise<BuildResult> {
    return traced('image.build', { 'realm.image': name }, () => this.renaming(() => this.builder.build(name, recipe, o)));
  }

  /** Import an OCI archive or `docker save` tarball into the store. */
  import(input: NodeJS.ReadableStream, o: ImportOptions = {}): Promise<ImportedImage[]> {
    return traced('image.import', {}, () => this.renaming(() => importArchive(this.store, input, o)));
  }

  /** Pull an image from a registry into the store. */
  pull(ref: string, o: PullOptions = {}): Promise<ImportedImage> {
    return traced('image.pull', { 'realm.image.ref': ref }, () => this.renaming(() => pullImage(this.store, ref, o)));
  }

  /** Remove an image name (and its data once nothing names or uses it). */
  remove(ref: string): Promise<{ removed: string[] }> {
    return this.renaming(() => this.store.remove(ref));
  }

  prune(): Promise<{ blobs: number; unpacked: number; bytes: number }> {
    return this.store.prune();
  }

  /** An image as an OCI archive (a tar stream). */
  export(ref: string): Promise<Readable> {
    return exportImage(this.store, ref);
  }

  /**
   * Run `work`, which may point image names at other roots: warm sandboxes of a root a name no
   * longer names are discarded (new ones are made on the new root); the old image itself stays
   * in the store while sandboxes use it.
   */
  private async renaming<T>(work: () => Promise<T>): Promise<T> {
    const before = this.store.names();
    try {
      return await work();
    } finally {
      const after = this.store.names();
      const moved = [...before].filter(([name, digest]) => after.get(name) !== digest);
      const marks = moved.flatMap(([name, digest]) => [JSON.stringify(this.store.rootfsPath(digest)), JSON.stringify(name)]);
      if (marks.length) await this.deps.dropWarm((key) => marks.some((m) => key.includes(m)));
    }
  }

  /** Languages' versions: host tools on the host, the others in a sandbox of their image (per root). */
  versionProbe(): VersionProbe {
    return imageVersionProbe({
      resolve: (image) => this.resolve(image),
      run: (image, argv, env) => this.deps.runInImage(image, argv, env),
    });
  }

  /** At start: clean up after dead builds; move images of an older realm into the store. */
  async recover(): Promise<void> {
    const names = new Set((await this.deps.listSandboxes()).map((r) => r.image));
    await this.builder.recover({ inUse: (n) => names.has(n), log: (line) => log.info(line.replace(/^realm: /, '')) });
  }

  close(): Promise<void> {
    return this.builder.close();
  }
}
