/**
 * The `.realm` file: a gzipped tar of `realm-package.toml` and the files it names. `createPackage`
 * makes one from a directory, deterministically (entries sorted, mtime 0, owner 0, modes 0644/0755,
 * gzip without a name or time), so the same directory gives the same bytes and its sha256 names it.
 * `scanPackage` reads one without writing anything: the manifest, and every entry checked —
 * relative, no `..`, only files and directories, within the size and count limits — so a hostile
 * archive is refused before it is unpacked (which then happens in a sandbox, unpack.ts).
 *
 *   const { bytes, digest } = await createPackage('./site');
 *   const { manifest, entries } = await scanPackage(bytes);
 */
import { createHash } from 'node:crypto';
import { lstat, readFile, readdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gzipSync } from 'node:zlib';
import { extract, pack } from 'tar-stream';
import { MANIFEST_FILE, assetsOf, invalid, parseManifest, type PackageManifest } from './manifest.js';

/** The largest `.realm` file taken (as stored). */
export const MAX_PACKAGE_BYTES = 256 * 1024 ** 2;
/** The most its files may add up to, unpacked: a gzip bomb stops here, unread further. */
export const MAX_UNPACKED_BYTES = 1024 ** 3;
/** The most entries (files and directories) a package may hold. */
export const MAX_ENTRIES = 100_000;

export interface PackageEntry {
  type: 'file' | 'directory';
  size: number;
}

export interface ScannedPackage {
  manifest: PackageManifest;
  manifestText: string;
  /** Every entry by its normalized path. */
  entries: Map<string, PackageEntry>;
  /** Sum of the files' sizes. */
  unpackedBytes: number;
  /** sha256 of the file as given, `sha256:<hex>`. */
  digest: string;
}

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const GZIP = Buffer.from([0x1f, 0x8b]);

/** Read and check a package; nothing is written. PACKAGE_INVALID (naming the entry or key) otherwise. */
export async function scanPackage(bytes: Buffer): Promise<ScannedPackage> {
  if (bytes.length > MAX_PACKAGE_BYTES)
    throw invalid(`the package is ${bytes.length} bytes; at most ${MAX_PACKAGE_BYTES} are taken (put large data elsewhere)`);
  const entries = new Map<string, PackageEntry>();
  let total = 0;
  let manifestText: string | undefined;
  const ex = extract();
  ex.on('entry', (h, stream, next) => {
    // Refusing an entry destroys the extractor, and with it this entry's stream: its error is the refusal's.
    stream.on('error', () => undefined);
    try {
      const name = checkName(h.name);
      if (h.type !== 'file' && h.type !== 'directory')
        throw invalid(`package entry "${h.name}" is a ${String(h.type)}; a package holds only files and directories`, {
          entry: h.name,
        });
      if (entries.has(name) || name === '') {
        if (name !== '' || h.type !== 'directory') throw invalid(`package entry "${h.name}" appears twice`, { entry: h.name });
      }
      const size = h.type === 'file' ? (h.size ?? 0) : 0;
      total += size;
      if (total > MAX_UNPACKED_BYTES)
        throw invalid(`the package unpacks to more than ${MAX_UNPACKED_BYTES} bytes; make it smaller`);
      if (entries.size >= MAX_ENTRIES) throw invalid(`the package holds more than ${MAX_ENTRIES} entries; make it smaller`);
      if (name !== '') entries.set(name, { type: h.type, size });
      const chunks: Buffer[] = [];
      const keep = name === MANIFEST_FILE && h.type === 'file' && size <= 1024 ** 2;
      stream.on('data', (c: unknown) => void (keep && chunks.push(c as Buffer)));
      stream.on('end', () => {
        if (keep) manifestText = Buffer.concat(chunks).toString('utf8');
        next();
      });
    } catch (e) {
      ex.destroy(e as Error);
    }
  });
  const source = Readable.from([bytes]);
  try {
    await (bytes.subarray(0, 2).equals(GZIP) ? pipeline(source, createGunzip(), ex) : pipeline(source, ex));
  } catch (e) {
    if (e instanceof Error && 'code' in e && e.code === 'PACKAGE_INVALID') throw e;
    throw invalid(`not a package: ${(e as Error).message}; make one with \`realm package create DIR\``);
  }
  if (manifestText === undefined)
    throw invalid(`the package has no ${MANIFEST_FILE} at its root; make one with \`realm package create DIR\``);
  const manifest = parseManifest(manifestText);
  // Parents of entries count as directories even when the tar names them only through their files.
  const dirs = new Set<string>();
  for (const [p, e] of entries) {
    if (e.type === 'directory') dirs.add(p);
    for (let d = posix.dirname(p); d !== '.'; d = posix.dirname(d)) {
      if (entries.get(d)?.type === 'file') throw invalid(`package entry "${p}" is under a file, ${d}`, { entry: p });
      dirs.add(d);
    }
  }
  for (const a of assetsOf(manifest)) {
    const found = a.dir ? dirs.has(a.path) : entries.get(a.path)?.type === 'file';
    if (!found)
      throw invalid(`${a.key}: ${a.path} is not a ${a.dir ? 'directory' : 'file'} in the package; add it or fix the path`, {
        key: a.key,
      });
  }
  return { manifest, manifestText, entries, unpackedBytes: total, digest: sha256(bytes) };
}

/** An entry's name, normalized; refused when it leaves the package. */
function checkName(raw: string): string {
  const name = posix.normalize(raw).replace(/\/+$/, '');
  if (raw.includes('\0') || raw.startsWith('/') || name === '..' || name.startsWith('../') || raw.split('/').includes('..'))
    throw invalid(`package entry "${raw}" leaves the package; entries are relative paths without ".."`, { entry: raw });
  return name === '.' ? '' : name.replace(/^\.\//, '');
}

/** What goes in the tar, walked from `dir`: files and directories only (a link is refused, not followed). */
async function walk(dir: string, rel: string, out: { path: string; dir: boolean; exec: boolean }[], key: string): Promise<void> {
  const st = await lstat(join(dir, rel)).catch(() => undefined);
  if (!st) throw invalid(`${key}: ${rel} is not in ${dir}; add it or fix the path`, { key });
  if (st.isSymbolicLink())
    throw invalid(`${rel} in ${dir} is a symbolic link; a package holds only files and directories (copy what it points to)`, {
      key,
    });
  if (st.isFile()) {
    out.push({ path: rel, dir: false, exec: (st.mode & 0o100) !== 0 });
    return;
  }
  if (!st.isDirectory()) throw invalid(`${rel} in ${dir} is not a file or directory; a package holds only those`, { key });
  out.push({ path: rel, dir: true, exec: true });
  for (const name of await readdir(join(dir, rel))) await walk(dir, posix.join(rel, name), out, key);
}

/**
 * Pack `dir` (its realm-package.toml and what that names) into a `.realm` file's bytes. The
 * manifest is checked first; a missing asset, a link or a special file is PACKAGE_INVALID.
 */
export async function createPackage(dir: string): Promise<{ bytes: Buffer; digest: string; manifest: PackageManifest }> {
  const text = await readFile(join(dir, MANIFEST_FILE), 'utf8').catch(() => {
    throw invalid(`${dir} has no ${MANIFEST_FILE}; write one (name, version, [service], [[mounts]])`);
  });
  const manifest = parseManifest(text);
  const items: { path: string; dir: boolean; exec: boolean }[] = [{ path: MANIFEST_FILE, dir: false, exec: false }];
  for (const a of assetsOf(manifest)) {
    const found: typeof items = [];
    await walk(dir, a.path, found, a.key);
    if (found[0]?.dir !== a.dir)
      throw invalid(`${a.key}: ${a.path} is not a ${a.dir ? 'directory' : 'file'}; fix the path`, { key: a.key });
    // Its parents, as directories of their own.
    for (let d = posix.dirname(a.path); d !== '.'; d = posix.dirname(d)) items.push({ path: d, dir: true, exec: true });
    items.push(...found);
  }
  const unique = new Map(items.map((i) => [i.path, i]));
  const sorted = [...unique.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    p.on('end', resolve);
    p.on('error', reject);
  });
  let total = 0;
  for (const it of sorted) {
    const header = { name: it.dir ? `${it.path}/` : it.path, mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '' };
    if (it.dir) {
      p.entry({ ...header, type: 'directory', mode: 0o755 });
      continue;
    }
    const body = await readFile(join(dir, it.path));
    total += body.length;
    if (total > MAX_UNPACKED_BYTES) throw invalid(`${dir}: the package would unpack to more than ${MAX_UNPACKED_BYTES} bytes`);
    p.entry({ ...header, type: 'file', mode: it.exec ? 0o755 : 0o644, size: body.length }, body);
  }
  p.finalize();
  await done;
  const bytes = gzipSync(Buffer.concat(chunks), { level: 9 });
  return { bytes, digest: sha256(bytes), manifest };
}
