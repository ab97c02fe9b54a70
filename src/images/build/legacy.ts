/**
 * One-time migration of images from before the content-addressed store: builds used to be
 * unpacked into `<data-dir>/images/NAME/rootfs` (with `image.json` beside it), and a root
 * filesystem directory could be put there by hand. At daemon start each such directory becomes
 * an image of the store named NAME — a built one from its cached tarball when the cache still
 * has it (labels from `image.json`), else packed from the directory — and the directory is
 * removed once no sandbox record names NAME (a running sandbox may have it mounted; a later
 * start removes it then).
 */
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../../util/errors.js';
import { importRootfsDir } from '../import.js';
import { parseRef } from '../ref.js';
import type { ImageStore } from '../store.js';
import { LABELS, storeBuiltImage } from './install.js';

/** The store's own entries under `<data-dir>/images`. */
const STORE_ENTRIES = new Set(['blobs', 'unpacked', 'tmp', 'index.json']);

export interface LegacyOptions {
  store: ImageStore;
  /** Where build tarballs are cached (`HASH.tar`). */
  cacheDir: string;
  /** Whether a sandbox record (live or stopped) names this image. */
  inUse: (name: string) => boolean;
  log: (line: string) => void;
}

/** Migrate the legacy image directories under the store's directory; returns how many moved in. */
export async function migrateLegacyImages(o: LegacyOptions): Promise<number> {
  let moved = 0;
  for (const name of readdirSync(o.store.dir)) {
    const dir = join(o.store.dir, name);
    // What an interrupted legacy install left.
    if (/^\.(tmp|old)-/.test(name)) {
      rmSync(dir, { recursive: true, force: true });
      continue;
    }
    if (STORE_ENTRIES.has(name) || !statSync(join(dir, 'rootfs'), { throwIfNoEntry: false })?.isDirectory()) continue;
    let ref: string | null = null;
    try {
      ref = parseRef(name).ref;
    } catch {
      /* reported below */
    }
    if (!ref || ref.includes('/')) {
      o.log(`realm: ${dir} is an image directory from an older realm whose name is not an image name; import it with \`realm image import\` under a new name, then remove it`);
      continue;
    }
    try {
      if (!(await o.store.list()).some((i) => i.names.includes(ref))) {
        await migrateOne(o, name, dir);
        o.log(`realm: moved image ${name} from ${dir} into the image store`);
        moved++;
      }
      if (!o.inUse(name)) rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      o.log(`realm: could not move image ${name} from ${dir} into the image store (${errorMessage(e)}); rebuild it with \`realm image build ${name}\``);
    }
  }
  return moved;
}

async function migrateOne(o: LegacyOptions, name: string, dir: string): Promise<void> {
  let meta: { hash?: unknown; from?: unknown; packages?: unknown } = {};
  try {
    meta = JSON.parse(readFileSync(join(dir, 'image.json'), 'utf8')) as typeof meta;
  } catch {
    /* a directory put there by hand */
  }
  const hash = typeof meta.hash === 'string' && /^[0-9a-f]{64}$/.test(meta.hash) ? meta.hash : undefined;
  const from = typeof meta.from === 'string' ? meta.from : '';
  const packages = Array.isArray(meta.packages) ? meta.packages.filter((p): p is string => typeof p === 'string') : [];
  const tarball = hash ? join(o.cacheDir, `${hash}.tar`) : undefined;
  if (hash && tarball && existsSync(tarball)) {
    await storeBuiltImage(o.store, name, tarball, { hash, from, packages }, () => undefined);
    return;
  }
  const labels = hash ? { [LABELS.recipe]: hash, [LABELS.base]: from, [LABELS.packages]: packages.join(' ') } : {};
  await importRootfsDir(o.store, name, join(dir, 'rootfs'), { source: hash ? 'build' : 'rootfs', config: { config: { Labels: labels } } });
}
