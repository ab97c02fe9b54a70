/**
 * After a restart: remove what no sandbox record owns — cgroups under the driver's root, and
 * state directories (their writable layer unmounted first). Shared by the drivers that keep
 * sandboxes in realm's cgroups and state dirs (namespace, gvisor).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { CgroupManager } from './cgroups.js';
import { removeTree } from '../../util/safe-tree.js';
import { umount } from './helper.js';

export async function sweepOrphans(o: {
  cg: CgroupManager;
  cgroupRoot: string;
  known: Set<string>;
  stateRoot: string;
  /** Before a state dir of an unknown sandbox is removed (e.g. kill what runs from it). */
  beforeRemove?: (dir: string) => void;
}): Promise<string[]> {
  const removed: string[] = [];
  for (const rel of o.cg.children(o.cgroupRoot)) {
    const id = rel.slice(o.cgroupRoot.length + 1);
    if (o.known.has(id)) continue;
    const box = o.cg.open(rel);
    await box.kill();
    box.remove();
    removed.push(id);
  }
  let entries: string[] = [];
  try {
    entries = readdirSync(o.stateRoot);
  } catch {
    return removed;
  }
  for (const id of entries) {
    if (o.known.has(id)) continue;
    const dir = join(o.stateRoot, id);
    o.beforeRemove?.(dir);
    if (existsSync(join(dir, 'rw'))) await umount(join(dir, 'rw')).catch(() => undefined);
    await removeTree(dir); // written by a sandbox: no link is followed
    removed.push(id);
  }
  return removed;
}
