/**
 * Which root filesystem a sandbox gets for `image`: `host` (the host's read-only /usr), an
 * absolute root filesystem directory, the name of one under `<data-dir>/images/<name>/rootfs`,
 * or an image of the content-addressed store (`NAME`, `NAME:TAG`, `sha256:…`; see src/images).
 */
import { statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { RealmError } from '../util/errors.js';
import type { ImageStore } from '../images/store.js';

/**
 * What the driver mounts for `image`: 'host', or an absolute directory (given as such, the name
 * of one under `<data-dir>/images/<name>/rootfs`, or an image of the store).
 */
export function resolveImage(image: string, dataDir: string, sandboxUid: number, store?: ImageStore): string {
  if (image === 'host') return 'host';
  const plainDir = isAbsolute(image) ? image : join(dataDir, 'images', image, 'rootfs');
  let dir = plainDir;
  let st = statSync(plainDir, { throwIfNoEntry: false });
  if (/(^|\/)\.\.(\/|$)/.test(image)) st = undefined;
  if (!st && store && !isAbsolute(image) && !/(^|\/)\.\.(\/|$)/.test(image)) {
    try {
      dir = store.resolveRootfs(image);
      st = statSync(dir, { throwIfNoEntry: false });
    } catch (e) {
      if (!(e instanceof RealmError) || (e.code !== 'IMAGE_NOT_FOUND' && e.code !== 'IMAGE_INVALID')) throw e;
    }
  }
  if (!st?.isDirectory()) {
    throw new RealmError('IMAGE_NOT_FOUND', `image "${image}" not found: use "host", an absolute path to a root filesystem directory, an image of \`realm image ls\` (import or pull it first), or the name of a directory under ${join(dataDir, 'images')}`);
  }
  // Sandboxes are built by an unprivileged uid: it must be able to enter and read the image.
  if ((st.mode & 0o005) !== 0o005 && st.uid !== sandboxUid) {
    throw new RealmError('IMAGE_NOT_FOUND', `image directory ${dir} is not readable by the sandbox user (uid ${sandboxUid}); make it so with chmod o+rx ${dir}`);
  }
  return dir;
}
