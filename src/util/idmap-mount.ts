/**
 * Idmapped bind mounts (`realm-helper idmap-mount`, native/idmap-mount.c): a volume stays on disk
 * owned by one storage uid, and each sandbox sees it owned by its own host uid. Through the mount,
 * files owned on disk by uid/gid `from` appear owned by `to`, and what `to` creates there is
 * stored as `from`; every other id appears as 65534 and cannot be given to a file. A uid that is
 * neither `to` nor mapped cannot create anything there (EOVERFLOW), root included: write a
 * volume's files as root through its source directory, never through such a mount.
 *
 * The paths must be absolute and hold no symbolic link; `dst` must be an empty directory.
 * Undo with `detachMount`; at start-up, `mountsUnder` finds what a previous daemon left.
 *
 * @example
 *   await idmapMount('/var/lib/realm/volumes/data', `${state}/vol/data`, STORAGE_UID, sandboxUid);
 *   // bwrap, as sandboxUid: --bind <state>/vol/data /data (inside, the files are uid 1000's)
 *   await detachMount(`${state}/vol/data`);
 *   for (const p of mountsUnder('/run/realm')) await detachMount(p); // leftovers, deepest first
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NATIVE_DIR } from './paths.js';
import { runCommand } from './run-command.js';

/** Runs `realm-helper ARGS...` to completion, throwing with its message when it fails (a driver may pass its fork server's `run`). */
export type HelperRun = (args: string[]) => Promise<void>;

const helperRun: HelperRun = async (args) => {
  const r = await runCommand(join(NATIVE_DIR, 'realm-helper'), args, { env: {}, timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`realm-helper ${args[0]} failed: ${r.stderr.trim() || `exit ${r.code} ${r.signal ?? ''}`}`);
};

/** Mount the directory `src` at the empty directory `dst`, ids `from` on disk shown as `to` (nosuid, nodev; read-only with `readOnly`). */
export function idmapMount(
  src: string,
  dst: string,
  from: number,
  to: number,
  opts: { readOnly?: boolean; run?: HelperRun } = {},
): Promise<void> {
  for (const id of [from, to])
    if (!Number.isInteger(id) || id <= 0 || id >= 0xffffffff)
      return Promise.reject(new Error(`idmapMount: ${id} is not a uid above 0`));
  return (opts.run ?? helperRun)(['idmap-mount', src, dst, String(from), String(to), ...(opts.readOnly ? ['ro'] : [])]);
}

/** Unmount `dst` (lazily if busy); nothing to do when it is not a mount point. */
export function detachMount(dst: string, run: HelperRun = helperRun): Promise<void> {
  return run(['umount', dst]);
}

/** A mountinfo field with its octal escapes (\040 space, \011 tab, \012 newline, \134 backslash) decoded. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * The mount points strictly below `dir` (this process's mount namespace), deepest first; a point
 * mounted over twice is listed twice, so detaching the list in order undoes everything.
 */
export function mountsUnder(dir: string, mountinfo = '/proc/self/mountinfo'): string[] {
  const root = resolve(dir);
  const prefix = root === '/' ? '/' : `${root}/`;
  const points = readFileSync(mountinfo, 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map(unescape)
    .filter((p) => p.startsWith(prefix) && p !== root);
  const depth = (p: string): number => p.split('/').length;
  return points.reverse().sort((a, b) => depth(b) - depth(a));
}
