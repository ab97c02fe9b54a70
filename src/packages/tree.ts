/**
 * Trees unpacked from a package, as the host sees them after tar ran in a sandbox: checked entry
 * by entry without following anything (only files and directories, within the limits), their
 * modes made plain (0755 directories, 0644 or 0755 files), and named by a digest of what they
 * hold, so that a static tree is stored once per content and a package whose archive two tar
 * readers read differently cannot pass one tree off under another's digest: the digest is of
 * what was unpacked, computed here.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, lstat, open, readdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { MAX_ENTRIES, MAX_UNPACKED_BYTES } from './archive.js';
import { invalid } from './manifest.js';

/** Check every entry under `root` (links, devices, fifos and sockets refused; nothing followed) and make modes plain. */
export async function checkTree(root: string): Promise<void> {
  let entries = 0;
  let bytes = 0;
  const visit = async (rel: string): Promise<void> => {
    const path = join(root, rel);
    const st = await lstat(path);
    if (++entries > MAX_ENTRIES) throw invalid(`the package holds more than ${MAX_ENTRIES} entries; make it smaller`);
    if (st.isDirectory()) {
      await chmod(path, 0o755);
      for (const name of await readdir(path)) await visit(posix.join(rel, name));
      return;
    }
    if (!st.isFile())
      throw invalid(`package entry "${rel}" unpacked as something other than a file or directory; a package holds only those`, {
        entry: rel,
      });
    bytes += st.size;
    if (bytes > MAX_UNPACKED_BYTES)
      throw invalid(`the package unpacks to more than ${MAX_UNPACKED_BYTES} bytes; make it smaller`);
    await chmod(path, st.mode & 0o100 ? 0o755 : 0o644);
  };
  await visit('');
}

/** The digest of a checked tree: each entry's path, kind, exec bit and content, in sorted order (`sha256:<hex>`). */
export async function treeDigest(root: string): Promise<string> {
  const h = createHash('sha256');
  const visit = async (rel: string): Promise<void> => {
    const path = join(root, rel);
    const st = await lstat(path);
    if (st.isDirectory()) {
      h.update(`${JSON.stringify(['d', rel])}\n`);
      for (const name of (await readdir(path)).sort()) await visit(posix.join(rel, name));
      return;
    }
    if (!st.isFile()) throw invalid(`package entry "${rel}" is not a file or directory`, { entry: rel });
    const f = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    const fh = createHash('sha256');
    try {
      for await (const c of f.createReadStream({ autoClose: false })) fh.update(c as Buffer);
    } finally {
      await f.close();
    }
    h.update(`${JSON.stringify(['f', st.mode & 0o100 ? 'x' : '-', rel, fh.digest('hex')])}\n`);
  };
  await visit('');
  return `sha256:${h.digest('hex')}`;
}
