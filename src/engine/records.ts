/**
 * The record format realm-fs speaks (see native/realm-fs.c):
 * "<type> <mode> <size> <mtime> <namelen>\n<name>[<content>]".
 */

export type EntryType = 'file' | 'dir' | 'link' | 'other';

export interface FsRecord {
  type: EntryType;
  mode: number;
  size: number;
  mtime: number;
  name: string;
  /** File bytes (pack) or a link's target. */
  content?: Buffer;
}

const TYPES: Record<string, EntryType> = { f: 'file', d: 'dir', l: 'link', o: 'other' };
const LETTER: Record<EntryType, string> = { file: 'f', dir: 'd', link: 'l', other: 'o' };

/** Parse records; files carry content only when `withContent`, links always. */
export function parseRecords(buf: Buffer, withContent: boolean): FsRecord[] {
  const out: FsRecord[] = [];
  let at = 0;
  while (at < buf.length) {
    const nl = buf.indexOf(10, at);
    if (nl < 0) throw new Error('truncated record header');
    const [t, mode, size, mtime, namelen] = buf.subarray(at, nl).toString('latin1').split(' ');
    const type = TYPES[t ?? ''];
    const n = Number(namelen);
    const sz = Number(size);
    if (!type || !Number.isSafeInteger(n) || !Number.isSafeInteger(sz)) throw new Error('bad record header');
    at = nl + 1;
    const name = buf.subarray(at, at + n).toString('utf8');
    at += n;
    const rec: FsRecord = { type, mode: parseInt(mode ?? '0', 8), size: sz, mtime: Number(mtime), name };
    if (type === 'link' || (type === 'file' && withContent)) {
      rec.content = buf.subarray(at, at + sz);
      at += sz;
    }
    out.push(rec);
  }
  return out;
}

/** Encode records for realm-fs unpack. */
export function encodeRecords(recs: FsRecord[]): Buffer {
  const parts: Buffer[] = [];
  for (const r of recs) {
    const name = Buffer.from(r.name);
    const content = r.content ?? Buffer.alloc(0);
    parts.push(
      Buffer.from(`${LETTER[r.type]} ${(r.mode & 0o7777).toString(8)} ${content.length} ${Math.floor(r.mtime)} ${name.length}\n`),
      name,
      content,
    );
  }
  return Buffer.concat(parts);
}
