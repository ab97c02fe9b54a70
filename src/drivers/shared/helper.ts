/** Calls into the static native helper (`native/realm-helper.c`) for the privileged steps. */
import { chmodSync, chownSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { NATIVE_DIR } from '../../util/paths.js';
import { runCommand } from '../../util/run-command.js';

export const HELPER = join(NATIVE_DIR, 'realm-helper');
export const INIT = join(NATIVE_DIR, 'realm-init');
export const FS_TOOL = join(NATIVE_DIR, 'realm-fs');
export const BWRAP = ['/usr/bin/bwrap', '/usr/local/bin/bwrap'].find((p) => existsSync(p)) ?? 'bwrap';

/** Runs `realm-helper ARGS...` to completion; throws with its message when it fails. */
export type HelperRun = (args: string[]) => Promise<void>;

/** The helper as a child of this process (a driver with a fork server passes its own runner). */
export const helper: HelperRun = async (args) => {
  const r = await runCommand(HELPER, args, { env: {}, timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`realm-helper ${args[0]} failed: ${r.stderr.trim() || `exit ${r.code} ${r.signal ?? ''}`}`);
};

export const mountTmpfs = (path: string, bytes: number, uid: number, gid: number, run: HelperRun = helper): Promise<void> =>
  run(['mount-tmpfs', path, String(bytes), String(uid), String(gid)]);

/**
 * The sandbox's state dir and its writable layer: `<stateDir>/rw`, a host tmpfs of `bytes`
 * owned by `owner`, holding `home` owned by the sandbox uid. The state dir is root's alone unless
 * `traverse` (the namespace driver, whose bwrap runs as the sandbox uid and binds `rw/home` and
 * the proxy's `net/` from here): then the sandbox uid's group may pass through it, never list it.
 */
export async function makeWritableLayer(
  stateDir: string,
  bytes: number,
  owner: number,
  sandboxUid: number,
  run: HelperRun = helper,
  traverse = false,
): Promise<void> {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  chownSync(stateDir, process.getuid?.() ?? 0, traverse ? sandboxUid : (process.getgid?.() ?? 0));
  chmodSync(stateDir, traverse ? 0o710 : 0o700);
  const rw = join(stateDir, 'rw');
  mkdirSync(rw, { mode: 0o700 });
  await mountTmpfs(rw, bytes, owner, owner, run);
  const home = join(rw, 'home');
  mkdirSync(home, { mode: 0o755 });
  chownSync(home, sandboxUid, sandboxUid);
}

export const umount = (path: string, run: HelperRun = helper): Promise<void> => run(['umount', path]);

export const writeSeccomp = (path: string): Promise<void> => helper(['seccomp', path]);
