/**
 * A package deployed on another node of the cluster, made ready on this one before a replica of it
 * starts here: its `.realm` file (read from this node's blob store, or fetched from a peer by
 * digest and verified as it streams in, cluster/blob-peers.ts) is hashed again, unpacked in a
 * sandbox as a deploy unpacks it (unpack.ts), and each static and config tree is stored only if
 * its content digest is the one the service's desired state names: what runs here is exactly
 * what was deployed there.
 */
import { join } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { scanPackage } from './archive.js';
import { invalid } from './manifest.js';
import type { PackageRef } from './ref.js';
import { storeTree } from './store-tree.js';
import { unpackInSandbox } from './unpack.js';

/** Unpack `bytes` (package `pkg`'s file) into `staging` and store its static and config trees; PACKAGE_INVALID when they are not `pkg`'s. */
export async function unpackTrees(engine: Engine, bytes: Buffer, pkg: PackageRef, staging: string, owner: string): Promise<void> {
  const scanned = await scanPackage(bytes);
  if (scanned.digest !== pkg.digest) throw invalid(`the package read is ${scanned.digest}, not ${pkg.digest} as deployed`);
  const mounts = scanned.manifest.mounts;
  if (
    mounts.length !== pkg.mounts.length ||
    mounts.some((m, i) => m.kind !== pkg.mounts[i]?.kind || m.path !== pkg.mounts[i]?.path)
  )
    throw invalid(`package ${pkg.name} ${pkg.version}'s mounts are not those its service was deployed with`);
  const out = await unpackInSandbox(engine, bytes, staging, owner, scanned.manifestText);
  for (const [i, m] of mounts.entries()) {
    if (m.kind !== 'static' && m.kind !== 'config') continue;
    const want = pkg.mounts[i]?.tree;
    const tree = await storeTree(engine, join(out, m.source!));
    if (tree !== want)
      throw invalid(`mounts[${i}] (${m.kind} ${m.path}) unpacked here to tree ${tree}, not ${want ?? '?'} as deployed`);
  }
}
