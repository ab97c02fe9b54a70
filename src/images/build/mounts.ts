/** Mounts a killed build may leave in its chroot (proc, sys, dev binds), undone before removal. */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return readFileSync('/proc/self/mounts', 'utf8').split('\n')
    .map((l) => (l.split(' ')[1] ?? '').replace(/\\040/g, ' '))
    .filter((p) => p.startsWith(prefix));
}

/**
 * Unmount everything below `dir`, deepest first; true when nothing stays mounted there (only
 * then may the directory be removed recursively: a bound /dev must never be deleted into).
 */
export function unmountUnder(dir: string): boolean {
  for (const p of mountsUnder(dir).sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', p], { stdio: 'ignore' });
  return mountsUnder(dir).length === 0;
}
