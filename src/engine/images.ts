/** Images in this version: `host` (the host's read-only /usr), or a root filesystem directory. */
import { statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { RealmError } from '../util/errors.js';

/**
 * What the driver mounts for `image`: 'host', or an absolute directory (given as such, or the
 * name of one under `<data-dir>/images/<name>/rootfs`).
 */
export function resolveImage(image: string, dataDir: string, sandboxUid: number): string {
  if (image === 'host') return 'host';
  const dir = isAbsolute(image) ? image : join(dataDir, 'images', image, 'rootfs');
  let st;
  try {
    st = statSync(dir);
  } catch {
    st = undefined;
  }
  if (!st?.isDirectory() || /(^|\/)\.\.(\/|$)/.test(image)) {
    throw new RealmError('IMAGE_NOT_FOUND', `image "${image}" not found: use "host", an absolute path to a root filesystem directory, or the name of one under ${join(dataDir, 'images')}`);
  }
  // Sandboxes are built by an unprivileged uid: it must be able to enter and read the image.
  if ((st.mode & 0o005) !== 0o005 && st.uid !== sandboxUid) {
    throw new RealmError('IMAGE_NOT_FOUND', `image directory ${dir} is not readable by the sandbox user (uid ${sandboxUid}); make it so with chmod o+rx ${dir}`);
  }
  return dir;
}
