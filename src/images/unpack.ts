/**
 * Apply one layer tar onto a root filesystem directory, the way overlay filesystems stack layers:
 * later entries replace earlier ones, `.wh.NAME` deletes NAME from lower layers and
 * `.wh..wh..opq` empties a directory of what lower layers put there.
 *
 * Safety: entries are relative with no `..`; nothing is ever written through a symlink (every
 * parent on the way to an entry must be a real directory); hard links point inside the root;
 * device nodes and FIFOs are skipped; setuid/setgid bits are dropped; ownership is not kept and
 * every file gets read (and, where its owner may execute, execute) permission for others, so the
 * sandbox's unprivileged host uid can read the image.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, lstat, lutimes, mkdir, open, readdir, rm, symlink, chmod } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract, type Header } from 'tar-stream';

import { RealmError } from '../util/errors.js';

/** What persists across the layers of one image while it is unpacked. */
export interface UnpackState {
  root: string;
  /** Relative paths known to be real directories (not symlinks): skips an lstat per entry. */
  dirs: Set<string>;
}

export interface LayerResult {
  /** sha256 of the uncompressed tar (the config's diff_id). */
  diffId: string;
  /** Bytes of file content written. */
  fileBytes: number;
}

function invalid(message: string): RealmError {
  return new RealmError('IMAGE_INVALID', message);
}

/** The file's compression, from its first bytes: gzip, zstd (unsupported) or none. */
export async function sniffCompression(file: string): Promise<'gzip' | 'zstd' | 'none'> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    if (bytesRead >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return 'gzip';
    if (bytesRead === 4 && buf.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'none';
  } finally {
    await fh.close();
  }
}

/** Others may read; others may execute what its owner may; no setuid/setgid. */
function safeMode(mode: number, dir: boolean): number {
  let m = mode & (dir ? 0o1777 : 0o777);
  m |= 0o004;
  if (dir || m & 0o100) m |= 0o001;
  if (dir) m |= 0o700;
  return m;
}

/** `./a/b/` → `a/b`; refuses absolute paths, `..` and NUL. Returns '' for the root itself. */
export function cleanName(raw: string, what = 'tar entry'): string {
  if (raw.includes('\0')) throw invalid(`${what} "${raw.replace(/\0/g, '\\0')}" has a NUL byte`);
  if (raw.startsWith('/'))
    throw invalid(`${what} "${raw}" is an absolute path; layer entries must be relative to the image root`);
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw invalid(`${what} "${raw}" contains ".." and would leave the image root`);
  return parts.join('/');
}

export function newUnpackState(root: string): UnpackState {
  return { root, dirs: new Set(['']) };
}

/** Make sure every directory on the way to `rel` (itself included when `self`) is real, creating missing ones. */
async function ensureDirs(st: UnpackState, rel: string, entry: string): Promise<void> {
  if (st.dirs.has(rel)) return;
  const parts = rel.split('/');
  let cur = '';
  for (const p of parts) {
    cur = cur ? `${cur}/${p}` : p;
    if (st.dirs.has(cur)) continue;
    const abs = join(st.root, cur);
    const s = await lstat(abs).catch(() => null);
    if (!s) {
      await mkdir(abs, { mode: 0o755 });
      await chmod(abs, 0o755);
    } else if (!s.isDirectory()) {
      throw invalid(
        `tar entry "${entry}" would be written through "${cur}", which is ${s.isSymbolicLink() ? 'a symlink' : 'not a directory'}; layers may not write through links`,
      );
    }
    st.dirs.add(cur);
  }
}

/** Is `rel` an existing directory reached through real directories only? Throws on a link on the way. */
async function isRealDir(st: UnpackState, rel: string, entry: string): Promise<boolean> {
  if (st.dirs.has(rel)) return true;
  let cur = '';
  for (const p of rel.split('/')) {
    cur = cur ? `${cur}/${p}` : p;
    if (st.dirs.has(cur)) continue;
    const s = await lstat(join(st.root, cur)).catch(() => null);
    if (!s) return false;
    if (!s.isDirectory())
      throw invalid(
        `tar entry "${entry}" would delete through "${cur}", which is ${s.isSymbolicLink() ? 'a symlink' : 'not a directory'}; layers may not reach through links`,
      );
    st.dirs.add(cur);
  }
  return true;
}

function forgetUnder(st: UnpackState, rel: string): void {
  for (const d of st.dirs) if (d === rel || d.startsWith(`${rel}/`)) st.dirs.delete(d);
}

/** Remove whatever is at `rel` (never following a link). */
async function removePath(st: UnpackState, rel: string): Promise<void> {
  await rm(join(st.root, rel), { recursive: true, force: true });
  forgetUnder(st, rel);
}

function drain(stream: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
    stream.resume();
  });
}

/**
 * Apply the layer in `file` (plain or gzip'd tar) onto `st.root`. `maxBytes` caps the uncompressed
 * size; `onBytes` reports compressed bytes read.
 */
export async function applyLayer(
  st: UnpackState,
  file: string,
  maxBytes: number,
  onBytes?: (n: number) => void,
): Promise<LayerResult> {
  const kind = await sniffCompression(file);
  if (kind === 'zstd') throw invalid('zstd-compressed layers are not supported; use gzip or uncompressed layers');
  const hash = createHash('sha256');
  let size = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > maxBytes) {
        cb(
          new RealmError(
            'IMAGE_TOO_LARGE',
            `a layer unpacks to more than ${maxBytes} bytes; raise the layer limit (maxLayerBytes) or use a smaller image`,
          ),
        );
        return;
      }
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  const source = createReadStream(file);
  if (onBytes) source.on('data', (c) => onBytes(c.length));
  const layerPaths = new Set<string>();
  let fileBytes = 0;
  const ex = extract();
  ex.on('entry', (h, stream, next) => {
    // A layer cut off inside this entry errors its stream as well as the extract: the pipeline
    // below reports it, so a late error on the entry's stream must not go uncaught.
    stream.on('error', () => undefined);
    applyEntry(st, h, stream as unknown as Readable, layerPaths)
      .then((n) => {
        fileBytes += n;
        next();
      })
      .catch((e: unknown) => {
        stream.resume();
        ex.destroy(e as Error);
      });
  });
  const stages: NodeJS.ReadWriteStream[] = kind === 'gzip' ? [createGunzip(), counter] : [counter];
  try {
    await pipeline(source, ...(stages as [Transform]), ex);
  } catch (e) {
    if (e instanceof RealmError) throw e;
    throw invalid(`a layer is not a valid ${kind === 'gzip' ? "gzip'd " : ''}tar archive: ${(e as Error).message}`);
  }
  return { diffId: `sha256:${hash.digest('hex')}`, fileBytes };
}

/** Apply one entry; returns the file bytes written. */
async function applyEntry(st: UnpackState, h: Header, stream: Readable, layerPaths: Set<string>): Promise<number> {
  const rel = cleanName(h.name);
  if (rel === '') {
    await drain(stream);
    return 0;
  }
  const dir = posix.dirname(rel) === '.' ? '' : posix.dirname(rel);
  const base = posix.basename(rel);
  const mark = (p: string): void => {
    for (let cur = p; cur && !layerPaths.has(cur); cur = posix.dirname(cur) === '.' ? '' : posix.dirname(cur))
      layerPaths.add(cur);
  };
  if (base.startsWith('.wh.')) {
    await drain(stream);
    // Nothing below a missing directory to delete; never create one just for a whiteout.
    if (!(await isRealDir(st, dir, h.name))) return 0;
    if (base === '.wh..wh..opq') {
      // Opaque: what lower layers put in `dir` goes; what this layer put there stays.
      for (const child of await readdir(join(st.root, dir))) {
        const p = dir ? `${dir}/${child}` : child;
        if (!layerPaths.has(p)) await removePath(st, p);
      }
      mark(dir);
    } else if (!base.startsWith('.wh..wh.')) {
      const name = base.slice(4);
      // `.wh.`, `.wh..` and `.wh...` would name the directory itself or its parent (the root's parent at the top).
      if (name === '' || name === '.' || name === '..')
        throw invalid(
          `tar entry "${h.name}" is a whiteout of "${name}", which names no entry; a whiteout names one file or directory`,
        );
      await removePath(st, dir ? `${dir}/${name}` : name);
    }
    return 0;
  }
  await ensureDirs(st, dir, h.name);
  const abs = join(st.root, rel);
  const existing = await lstat(abs).catch(() => null);
  mark(rel);
  switch (h.type) {
    case 'directory': {
      if (existing && !existing.isDirectory()) await removePath(st, rel);
      if (!existing || !existing.isDirectory()) await mkdir(abs);
      await chmod(abs, safeMode(h.mode ?? 0o755, true));
      st.dirs.add(rel);
      await drain(stream);
      return 0;
    }
    case 'file':
    case 'contiguous-file':
    case null:
    case undefined: {
      if (existing) await removePath(st, rel);
      // 'wx': a fresh inode, so a hard link from a lower layer is broken, never written through.
      await pipeline(stream, createWriteStream(abs, { flags: 'wx', mode: 0o600 }));
      await chmod(abs, safeMode(h.mode ?? 0o644, false));
      if (h.mtime) await lutimes(abs, h.mtime, h.mtime).catch(() => undefined);
      return h.size ?? 0;
    }
    case 'symlink': {
      await drain(stream);
      if (existing) await removePath(st, rel);
      // The target is resolved inside the sandbox's root; realm itself never follows it.
      await symlink(h.linkname ?? '', abs);
      return 0;
    }
    case 'link': {
      await drain(stream);
      const target = cleanName(h.linkname ?? '', `hard link target of "${h.name}"`);
      if (target === '') throw invalid(`tar entry "${h.name}" is a hard link to the image root`);
      const tdir = posix.dirname(target) === '.' ? '' : posix.dirname(target);
      await ensureDirs(st, tdir, h.name);
      const ts = await lstat(join(st.root, target)).catch(() => null);
      if (!ts || ts.isDirectory())
        throw invalid(
          `tar entry "${h.name}" is a hard link to "${h.linkname ?? ''}", which is ${ts ? 'a directory' : 'missing'}`,
        );
      if (target === rel) return 0;
      if (existing) await removePath(st, rel);
      await link(join(st.root, target), abs);
      return 0;
    }
    case 'block-device':
    case 'character-device':
    case 'fifo':
    default:
      // Device nodes, FIFOs and anything else have no place in a sandbox image.
      await drain(stream);
      if (existing === null) layerPaths.delete(rel);
      return 0;
  }
}
