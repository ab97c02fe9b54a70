/** A directory as a tar stream (files, directories, symlinks; ownership root; special files left out). */
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';

/** Pack `dir`'s contents (entries relative to it) into an uncompressed tar. */
export function packDir(dir: string): NodeJS.ReadableStream {
  const p = pack();
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = join(dir, r);
      const st = await lstat(abs);
      const base = { name: r, mode: st.mode & 0o7777, mtime: st.mtime, uid: 0, gid: 0 };
      if (st.isDirectory()) {
        p.entry({ ...base, type: 'directory' });
        await walk(r);
      } else if (st.isSymbolicLink()) {
        p.entry({ ...base, type: 'symlink', linkname: await readlink(abs) });
      } else if (st.isFile()) {
        const entry = p.entry({ ...base, type: 'file', size: st.size });
        await pipeline(createReadStream(abs), entry);
      }
    }
  };
  walk('').then(
    () => p.finalize(),
    (e: unknown) => p.destroy(e as Error),
  );
  return p as unknown as NodeJS.ReadableStream;
}
