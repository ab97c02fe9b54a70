/**
 * What a daemon finds of microVMs no record owns (after a crash, or a store that forgot them):
 * their QEMU and virtiofsd processes (named by their state dir's vm/ in their argv, even outside
 * any cgroup of ours), their host cgroups (with slirp4netns, which also ends with its QEMU) and
 * their state dirs.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { probeCgroups } from '../shared/cgroups.js';
import { removeTree } from '../../util/safe-tree.js';
import { vmmProcesses } from './vm.js';

/** Remove every trace of sandboxes not in `known`; their ids. */
export async function sweepOrphans(known: Set<string>, stateRoot: string, cgroupRoot: string): Promise<string[]> {
  const cgp = probeCgroups();
  if (!cgp.ok) return [];
  const cg = cgp.manager;
  const removed: string[] = [];
  for (const { pid, id } of vmmProcesses(stateRoot)) {
    if (known.has(id)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const rel of cg.children(cgroupRoot)) {
    const id = rel.slice(cgroupRoot.length + 1);
    if (known.has(id)) continue;
    const box = cg.open(rel);
    await box.kill();
    box.remove();
    removed.push(id);
  }
  let entries: string[] = [];
  try {
    entries = readdirSync(stateRoot);
  } catch {
    return removed;
  }
  for (const id of entries) {
    if (known.has(id)) continue;
    await removeTree(join(stateRoot, id)); // written by a VMM: no link is followed
    removed.push(id);
  }
  return removed;
}
