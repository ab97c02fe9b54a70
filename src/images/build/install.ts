/**
 * Put a built root filesystem tarball where sandboxes find it: `<data-dir>/images/NAME/rootfs`,
 * with `image.json` beside it. Atomic: unpacked into a temporary directory, then renamed into
 * place, so a sandbox never sees half an image. This is the one step a content-addressed image
 * store replaces (importing the tarball as a one-layer image).
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { RealmError } from '../../util/errors.js';

/** What realm records about an installed image. */
export interface ImageMeta {
  name: string;
  /** The recipe hash it was built from. */
  hash: string;
  from: string;
  packages: string[];
  /** Bytes of the tarball it was unpacked from. */
  bytes: number;
  createdAt: number;
}

export function imagesDir(dataDir: string): string {
  return join(dataDir, 'images');
}

/** The record of installed image `name`, or undefined when there is none. */
export function installedImage(dataDir: string, name: string): ImageMeta | undefined {
  const dir = join(imagesDir(dataDir), name);
  try {
    if (!existsSync(join(dir, 'rootfs'))) return undefined;
    return JSON.parse(readFileSync(join(dir, 'image.json'), 'utf8')) as ImageMeta;
  } catch {
    return undefined;
  }
}

/** Unpack `tarPath` as image `name`, replacing an older one of that name. */
export async function installRootfsTarball(dataDir: string, name: string, tarPath: string, meta: ImageMeta): Promise<void> {
  const root = imagesDir(dataDir);
  mkdirSync(root, { recursive: true, mode: 0o711 });
  const tmp = join(root, `.tmp-${name}-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(join(tmp, 'rootfs'), { recursive: true, mode: 0o755 });
    await untar(tarPath, join(tmp, 'rootfs'));
    // The image tree must be enterable by the sandbox's unprivileged uid.
    chmodSync(tmp, 0o755);
    chmodSync(join(tmp, 'rootfs'), 0o755);
    writeFileSync(join(tmp, 'image.json'), `${JSON.stringify(meta, null, 2)}\n`, { mode: 0o644 });
    const final = join(root, name);
    let old: string | undefined;
    if (existsSync(final)) {
      old = join(root, `.old-${name}-${randomBytes(4).toString('hex')}`);
      renameSync(final, old);
    }
    renameSync(tmp, final);
    // Sandboxes started from the old tree keep their bind mounts of it (open inodes).
    if (old) rmSync(old, { recursive: true, force: true });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function untar(tarPath: string, dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // --numeric-owner: the image's uids are its own, never mapped through the host's names.
    const child = spawn('tar', ['-x', '-f', tarPath, '-C', dir, '--numeric-owner', '--preserve-permissions'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      if (err.length < 4096) err += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new RealmError('IMAGE_BUILD_FAILED', `unpacking the image failed: ${err.trim().slice(0, 500)}`))));
  });
}
