/**
 * Static and config trees on a node: each stored once per content digest under
 * DATA/packages/trees/<hex>, the storage uid's, complete whenever it is there (copied whole under
 * a temporary name, then renamed in).
 */
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, renameSync } from 'node:fs';
import type { Engine } from '../engine/engine.js';
import { chownTree, removeTree } from '../util/safe-tree.js';
import { treeDir } from './replica-mounts.js';
import { treeDigest } from './tree.js';

/** Store the checked tree at `src` (unpacked from a package, tree.ts's checkTree) by its content; its digest. */
export async function storeTree(engine: Engine, src: string): Promise<string> {
  const tree = await treeDigest(src);
  const dir = treeDir(engine.config.dataDir, tree);
  if (!existsSync(dir)) {
    const storage = engine.hostIds.storage;
    const tmp = `${dir}.${randomBytes(4).toString('hex')}.tmp`;
    cpSync(src, tmp, { recursive: true, dereference: false, errorOnExist: true, preserveTimestamps: false });
    await chownTree(tmp, storage, storage);
    try {
      renameSync(tmp, dir);
    } catch {
      await removeTree(tmp); // another deploy stored the same content first
    }
  }
  return tree;
}
