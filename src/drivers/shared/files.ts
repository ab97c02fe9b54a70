/**
 * Writing files into a sandbox's writable layer from the host, safely: relative paths only, no
 * `..`, and no symlink is ever followed (a program inside may have planted one).
 */
import { constants, fchownSync, closeSync, lstatSync, mkdirSync, openSync, writeSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { RealmError } from '../../util/errors.js';

import type { FileToWrite } from '../driver.js';

export function checkRelativePath(p: string): string[] {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (p.startsWith('/') || p.includes('\0') || parts.length === 0 || parts.some((x) => x === '..')) {
    throw new RealmError('INVALID_REQUEST', `file path "${p}" must be relative to the working directory, without ".."`);
  }
  return parts;
}

/** Write files under `root` (a host directory), owned by uid:gid. */
export function writeFilesUnder(root: string, files: FileToWrite[], uid: number, gid: number): void {
  for (const f of files) {
    const parts = checkRelativePath(f.path);
    let dir = root;
    for (const part of parts.slice(0, -1)) {
      dir = join(dir, part);
      try {
        const st = lstatSync(dir);
        if (!st.isDirectory()) throw new RealmError('INVALID_REQUEST', `cannot write ${f.path}: ${part} is not a directory`);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        mkdirSync(dir, { mode: 0o755 });
        chownSync(dir, uid, gid);
      }
    }
    const fd = openSync(
      join(root, ...parts),
      constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
      f.mode ?? 0o644,
    );
    try {
      writeSync(fd, typeof f.content === 'string' ? Buffer.from(f.content) : f.content);
      fchownSync(fd, uid, gid);
    } finally {
      closeSync(fd);
    }
  }
}
