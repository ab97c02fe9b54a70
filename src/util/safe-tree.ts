/**
 * Recursive removal and chown of trees a sandbox could write (volumes, a workspace's clone, a
 * sandbox's state dir), done as root without ever following a link: the static helper walks the
 * tree through directory descriptors (openat2 with RESOLVE_NO_SYMLINKS, unlinkat and fchownat
 * relative to the held descriptor) and never crosses a mount, so a process that swaps a
 * directory for a link to a host directory mid-walk gets its link removed, nothing else
 * (native/safe-tree.c). Never use fs.rm/rmSync({ recursive }) or a readdir-and-lchown walk on
 * such a tree: both resolve paths again after checking them.
 *
 * @example
 *   await removeTree('/var/lib/realm/volumes/data');
 *   await chownTree(clone, 65532, 65532);
 */
import { join } from 'node:path';
import { NATIVE_DIR } from './paths.js';
import { runCommand } from './run-command.js';

/** Runs `realm-helper ARGS...` to completion, throwing with its message when it fails (a driver may pass its fork server's). */
export type TreeRunner = (args: string[]) => Promise<void>;

const helperRun: TreeRunner = async (args) => {
  // Deep trees take a while; bounded all the same.
  const r = await runCommand(join(NATIVE_DIR, 'realm-helper'), args, { env: {}, timeoutMs: 10 * 60_000 });
  if (r.code !== 0) throw new Error(`realm-helper ${args[0]} failed: ${r.stderr.trim() || `exit ${r.code} ${r.signal ?? ''}`}`);
};

/** Remove `path` (a directory with all it holds, or a file, or a link itself) if it exists. */
export function removeTree(path: string, run: TreeRunner = helperRun): Promise<void> {
  return run(['rmtree', path]);
}

/** Give uid:gid the directory `path` and everything under it (a link itself, never its target). */
export function chownTree(path: string, uid: number, gid: number, run: TreeRunner = helperRun): Promise<void> {
  return run(['chowntree', path, String(uid), String(gid)]);
}
