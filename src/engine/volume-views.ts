/**
 * Volumes as one sandbox sees them. At rest every volume belongs to the storage uid; for each
 * sandbox that mounts one, an idmapped view of it is mounted in that sandbox's state dir, in
 * which the volume's files are the sandbox uid's and what the sandbox makes there is stored as
 * the storage uid's. Drivers bind the view, never the volume: sandboxes share no file owner,
 * and a volume moves between sandboxes (or is shared by several) without a chown.
 *
 *   const views = new VolumeViews(storageUid);
 *   const mounts = await views.attach(stateDir, uid, volumeMounts); // give these to the driver
 *   await views.detach(stateDir); // before the driver removes the state dir
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { Mount } from '../drivers/driver.js';
import { detachMount, idmapMount, mountsUnder } from '../util/idmap-mount.js';

const VIEWS = 'volumes';

export class VolumeViews {
  constructor(private readonly storage: number) {}

  /** Mount a view of each volume for `uid`; the mounts, with the views as their sources. */
  async attach(stateDir: string, uid: number, mounts: Mount[]): Promise<Mount[]> {
    if (!mounts.length) return mounts;
    await this.detach(stateDir); // what a crash left
    const root = join(stateDir, VIEWS);
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(root, { mode: 0o711 });
    const out: Mount[] = [];
    try {
      for (const [i, m] of mounts.entries()) {
        const view = join(root, String(i));
        mkdirSync(view, { mode: 0o700 });
        await idmapMount(m.source, view, this.storage, uid, { readOnly: m.readOnly });
        out.push({ ...m, source: view });
      }
    } catch (e) {
      await this.detach(stateDir);
      throw e;
    }
    return out;
  }

  /** Unmount a sandbox's views and remove their (empty) mount points. */
  async detach(stateDir: string): Promise<void> {
    const root = join(stateDir, VIEWS);
    if (!existsSync(root)) return;
    for (const m of mountsUnder(root)) await detachMount(m);
    // rmdir, never a recursive remove: a view still mounted fails here rather than lose its files.
    for (const name of readdirSync(root)) rmdirSync(join(root, name));
    rmdirSync(root);
  }

  /** After a restart: unmount the views of every sandbox but the running ones (`keep`, by id). */
  async sweep(sandboxesDir: string, keep: Set<string>): Promise<void> {
    const dirs = new Set<string>();
    for (const m of mountsUnder(sandboxesDir)) {
      const [id, views] = relative(sandboxesDir, m).split(sep);
      if (id && views === VIEWS && !keep.has(id)) dirs.add(join(sandboxesDir, id));
    }
    for (const d of dirs) await this.detach(d);
  }
}
