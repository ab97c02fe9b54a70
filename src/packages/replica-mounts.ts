/**
 * The mounts of a packaged service's replica, made as the replica starts and given back as it
 * goes (the reconciler calls these; services/reconciler.ts):
 * - static and config: the tree of their content digest, bound read-only. A replica keeps the
 *   tree it started with, so during an upgrade each sees the old tree or the new, never a mix;
 * - work: an empty directory of its own, removed when the replica goes (so each start gets an
 *   empty one);
 * - state: the service's volume, mounted as any volume is.
 * Every directory is the storage uid's at rest and reaches the replica through a view of its uid
 * (engine/volume-views.ts), as volumes do.
 */
import { chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Mount } from '../drivers/driver.js';
import type { Engine } from '../engine/engine.js';
import { removeTree } from '../util/safe-tree.js';
import type { PackageRef } from './ref.js';

export interface ReplicaMountSet {
  binds: Mount[];
  volumes: { volume: string; path: string; readOnly: boolean }[];
}

/** DATA/packages: trees/<hex> (static and config content), work/<replica>, staging/<deploy>. */
export function packagesDir(dataDir: string): string {
  return join(dataDir, 'packages');
}

export function treeDir(dataDir: string, digest: string): string {
  return join(packagesDir(dataDir), 'trees', digest.replace(/^sha256:/, ''));
}

/** Gets the static and config trees of a package this node lacks (packages/deploy.ts: from the blob store or a peer). */
export type FetchTrees = (pkg: PackageRef, owner: string, service: string) => Promise<void>;

export class ReplicaMounts {
  private readonly workRoot: string;
  /** How to get a package's trees this node lacks (a cluster's nodes other than the one it was deployed on). */
  fetch: FetchTrees | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly dataDir: string,
  ) {
    this.workRoot = join(packagesDir(dataDir), 'work');
  }

  /**
   * The mounts of replica `id` of service `of` from `pkg` (none for a service pushed without one).
   * Trees this node lacks are got first (`fetch`); a package it cannot get is an error saying why.
   */
  async prepare(pkg: PackageRef | undefined, id: string, of: { owner: string; service: string }): Promise<ReplicaMountSet> {
    const set: ReplicaMountSet = { binds: [], volumes: [] };
    if (!pkg) return set;
    const missing = pkg.mounts.some(
      (m) => (m.kind === 'static' || m.kind === 'config') && !existsSync(treeDir(this.dataDir, m.tree ?? '')),
    );
    if (missing && this.fetch) await this.fetch(pkg, of.owner, of.service);
    const storage = this.engine.hostIds.storage;
    for (const m of pkg.mounts) {
      if (m.kind === 'static' || m.kind === 'config') {
        const source = treeDir(this.dataDir, m.tree ?? '');
        if (!m.tree || !existsSync(source))
          throw new Error(`the ${m.kind} tree ${m.tree ?? '?'} of ${pkg.name} is gone; deploy the package again`);
        set.binds.push({ source, target: m.path, readOnly: true });
      } else if (m.kind === 'work') {
        const dir = join(this.workRoot, id, String(set.binds.length));
        await removeTree(dir); // a replica id is fresh, but a crash may have left one
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        chownSync(dir, storage, storage);
        set.binds.push({ source: dir, target: m.path, readOnly: false });
      } else if (m.volume) {
        set.volumes.push({ volume: m.volume, path: m.path, readOnly: false });
      }
    }
    return set;
  }

  /** Replica `id` is gone: its work directories go. */
  async release(id: string): Promise<void> {
    const dir = join(this.workRoot, id);
    if (existsSync(dir)) await removeTree(dir);
  }

  /** No replica lives (the reconciler's start): every work directory a previous daemon left goes. */
  async sweep(): Promise<void> {
    if (!existsSync(this.workRoot)) return;
    for (const name of readdirSync(this.workRoot)) await removeTree(join(this.workRoot, name));
  }
}
