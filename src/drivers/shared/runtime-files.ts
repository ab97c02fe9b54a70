/**
 * Installing realm's own files (init, the files tool, a seccomp filter) into a driver's runtime
 * directory. Each is replaced by rename: running sandboxes keep executing (and reading) the old files.
 */
import { chmodSync, copyFileSync, renameSync } from 'node:fs';
import { writeSeccomp } from './helper.js';

/** Copy each `[from, to]` executable into place (mode 0755), replacing any older copy by rename. */
export function installExecutables(pairs: readonly (readonly [from: string, to: string])[]): void {
  for (const [from, to] of pairs) {
    copyFileSync(from, `${to}.new`);
    chmodSync(`${to}.new`, 0o755);
    renameSync(`${to}.new`, to);
  }
}

/** Write realm's seccomp program (from realm-helper) to `path`, replacing any older one by rename. */
export async function installSeccomp(path: string): Promise<void> {
  await writeSeccomp(`${path}.new`);
  renameSync(`${path}.new`, path);
}
