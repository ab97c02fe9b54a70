/**
 * Tarballs in and out of sandboxes. An uploaded tar is read whole and checked before anything is
 * written: entries are relative with no `..`, links stay inside the target, only files,
 * directories and symlinks — anything else is a clear error and nothing changes.
 */
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { extract, pack } from 'tar-stream';
import { RealmError } from '../util/errors.js';
import type { FsRecord } from './records.js';

/** Most entries one upload may hold. */
const MAX_ENTRIES = 100_000;

function invalid(message: string): RealmError {
  return new RealmError('FILE_INVALID', message);
}

/** Parse and check a tar; the records realm-fs unpacks. */
export async function tarToRecords(tar: Buffer): Promise<FsRecord[]> {
  const ex = extract();
  const recs: FsRecord[] = [];
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => void chunks.push(c as Buffer));
      stream.on('end', () => {
        try {
          const rec = checkEntry(header, Buffer.concat(chunks));
          if (rec) recs.push(rec);
          if (recs.length > MAX_ENTRIES) throw invalid(`the tar has more than ${MAX_ENTRIES} entries; upload it in parts`);
          next();
        } catch (e) {
          ex.destroy(e as Error);
        }
      });
      stream.on('error', reject);
    });
    ex.on('finish', resolve);
    ex.on('error', (e) =>
      reject(e instanceof RealmError ? e : invalid(`not a valid tar: ${e.message}; send a tar archive (tar -c)`)),
    );
  });
  Readable.from([tar]).pipe(ex);
  await done;
  if (tar.length > 0 && recs.length === 0) throw invalid('the tar holds no files');
  return recs;
}

function checkEntry(
  h: { name: string; type?: string | null; mode?: number | null; mtime?: Date | null; linkname?: string | null },
  content: Buffer,
): FsRecord | null {
  const raw = h.name;
  const name = posix.normalize(raw).replace(/\/+$/, '');
  if (raw.includes('\0') || raw.startsWith('/') || name === '..' || name.startsWith('../') || name.split('/').includes('..')) {
    throw invalid(`tar entry "${raw}" leaves the target directory; entries must be relative paths without ".."`);
  }
  if (name === '.' || name === '') return null;
  const mode = h.mode ?? 0o644;
  const mtime = (h.mtime?.getTime() ?? Date.now()) / 1000;
  switch (h.type) {
    case 'file':
    case 'contiguous-file':
    case null:
    case undefined:
      return { type: 'file', mode, size: content.length, mtime, name, content };
    case 'directory':
      return { type: 'dir', mode, size: 0, mtime, name };
    case 'symlink': {
      const target = h.linkname ?? '';
      const resolved = posix.normalize(posix.join(posix.dirname(name), target));
      if (target.startsWith('/') || resolved === '..' || resolved.startsWith('../')) {
        throw invalid(
          `tar entry "${raw}" is a link to "${target}", outside the target directory; only links within it are allowed`,
        );
      }
      return { type: 'link', mode: 0o777, size: target.length, mtime, name, content: Buffer.from(target) };
    }
    case 'link':
      throw invalid(`tar entry "${raw}" is a hard link; archive the file itself (tar --hard-dereference)`);
    default:
      throw invalid(`tar entry "${raw}" is a ${h.type}; only files, directories and symlinks can be uploaded`);
  }
}

/** Pack records (from realm-fs pack) into a tar. */
export async function recordsToTar(recs: FsRecord[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    p.on('end', resolve);
    p.on('error', reject);
  });
  for (const r of recs) {
    const base = { name: r.name, mode: r.mode, mtime: new Date(r.mtime * 1000) };
    if (r.type === 'dir') p.entry({ ...base, type: 'directory' });
    else if (r.type === 'link') p.entry({ ...base, type: 'symlink', linkname: r.content?.toString('utf8') ?? '' });
    else if (r.type === 'file') p.entry({ ...base, type: 'file' }, r.content ?? Buffer.alloc(0));
  }
  p.finalize();
  await ended;
  return Buffer.concat(chunks);
}
