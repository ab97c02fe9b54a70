/**
 * Named volumes: directories under the data dir that outlive sandboxes, mounted read-write (or not).
 * A workspace's clone is a volume of its own kind: only that workspace's sandbox mounts it and
 * only the workspace removes it (see workspaces.ts).
 */
import { chownSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Mount } from '../drivers/driver.js';
import type { SandboxRecord, Store, VolumeRecord, VolumeMount, WorkspaceOf } from '../store/store.js';
import { RealmError } from '../util/errors.js';
import { chownTree, removeTree } from '../util/safe-tree.js';
import { RESERVED_NAME } from './schemas.js';
import { mayUse } from './owner.js';

/** Paths no volume may cover: they are the sandbox's own. */
const RESERVED_TARGETS = ['/', '/proc', '/dev', '/tmp', '/.realm', '/usr', '/etc', '/home/user'];

export type VolumeView = VolumeRecord & { usedBy: string[] };

export class Volumes {
  constructor(
    private readonly store: Store,
    readonly dir: string,
    /** Owner (uid and gid) of every volume at rest; each sandbox sees its files as its own uid's (volume-views.ts). */
    private readonly storageUid: number,
  ) {}

  /**
   * Check where volumes go and make the missing ones (for `owner`, who may mount only its own);
   * the mounts a driver needs. `workspace` is the workspace whose sandbox this is (none for any
   * other): a workspace's clone is its alone.
   */
  async mounts(
    volumes: Pick<VolumeMount, 'volume' | 'path' | 'readOnly'>[],
    workspace?: string,
    owner?: string,
  ): Promise<Mount[]> {
    const mounts: Mount[] = [];
    const seen = new Set<string>();
    for (const v of volumes) {
      const target = v.path.replace(/\/+$/, '') || '/';
      if (
        RESERVED_TARGETS.includes(target) ||
        target.split('/').includes('..') ||
        target.startsWith('/proc/') ||
        target.startsWith('/dev/') ||
        target.startsWith('/.realm')
      ) {
        throw new RealmError(
          'INVALID_REQUEST',
          `volume path ${v.path} is reserved; mount volumes elsewhere, e.g. /data or /home/user/data`,
        );
      }
      if (seen.has(target))
        throw new RealmError('INVALID_REQUEST', `two volumes are mounted at ${target}; give each its own path`);
      seen.add(target);
      const rec = await this.store.getVolume(v.volume);
      if (rec?.workspace && rec.workspace.name !== workspace) {
        throw new RealmError(
          'INVALID_REQUEST',
          `volume ${v.volume} is workspace ${rec.workspace.name}'s clone and is mounted only in that workspace (\`realm ws ${rec.workspace.name}\`); mount another volume`,
        );
      }
      if (!rec && workspace === undefined && RESERVED_NAME.test(v.volume)) {
        throw new RealmError(
          'INVALID_REQUEST',
          `volume names starting with ws- are workspaces' clones; pick another volume name`,
        );
      }
      // Volume names are one namespace for the node: a name another user took is not yours to mount.
      if (rec && owner && !mayUse(owner, rec.owner))
        throw new RealmError('VOLUME_IN_USE', `the volume name "${v.volume}" is taken by another user; pick another name`);
      mounts.push({ source: rec ? join(this.dir, v.volume) : await this.create(v.volume, owner), target, readOnly: v.readOnly });
    }
    return mounts;
  }

  /** Make an empty volume owned by the storage uid, for `owner` (a package's state volume is made so before it is seeded). */
  async create(name: string, owner?: string): Promise<string> {
    const dir = join(this.dir, name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownSync(dir, this.storageUid, this.storageUid);
    await this.store.putVolume({ name, createdAt: Date.now(), labels: {}, ...(owner ? { owner } : {}) });
    return dir;
  }

  /**
   * Make the volume for a workspace's clone: empty, root's (the clone is made into it, then
   * given to the sandbox uid), marked as the workspace's. Refused when the name is held.
   */
  async createForWorkspace(name: string, of: WorkspaceOf): Promise<string> {
    if (await this.store.getVolume(name))
      throw new RealmError(
        'SANDBOX_NAME_TAKEN',
        `a volume named ${name} exists; remove it (\`realm volume rm ${name}\`) or pick another workspace name`,
      );
    const dir = join(this.dir, name);
    // What a crash between making the directory and the record left: no sandbox ever had it.
    await removeTree(dir);
    mkdirSync(dir, { mode: 0o700 });
    await this.store.putVolume({
      name,
      createdAt: Date.now(),
      labels: {},
      workspace: of,
      ...(of.owner ? { owner: of.owner } : {}),
    });
    return dir;
  }

  /**
   * Give the storage uid the volumes another uid owns (an older realm's 65532, or the storage uid
   * of an earlier --uid-range), but not those `running` sandboxes mount; their names.
   */
  async adopt(running: SandboxRecord[]): Promise<string[]> {
    const inUse = new Set(running.flatMap((s) => s.volumes.map((v) => v.volume)));
    const adopted: string[] = [];
    for (const v of await this.store.listVolumes()) {
      const dir = join(this.dir, v.name);
      const st = statSync(dir, { throwIfNoEntry: false });
      if (!st || (st.uid === this.storageUid && st.gid === this.storageUid) || inUse.has(v.name)) continue;
      // Sandboxes wrote this tree: no link in it is followed.
      await chownTree(dir, this.storageUid, this.storageUid);
      adopted.push(v.name);
    }
    return adopted;
  }

  /** The stored record of a volume, or null. */
  record(name: string): Promise<VolumeRecord | null> {
    return this.store.getVolume(name);
  }

  async list(): Promise<VolumeView[]> {
    const sandboxes = await this.store.listSandboxes();
    return (await this.store.listVolumes()).map((v) => ({
      ...v,
      usedBy: sandboxes.filter((s) => s.volumes.some((m) => m.volume === v.name)).map((s) => s.id),
    }));
  }

  async get(name: string): Promise<VolumeView> {
    const v = (await this.list()).find((x) => x.name === name);
    if (!v) throw new RealmError('VOLUME_NOT_FOUND', `no volume "${name}"; \`realm volume ls\` lists them`);
    return v;
  }

  /** Remove a volume and its files; a workspace's clone only for that workspace (`workspace`). */
  async remove(name: string, workspace?: string): Promise<void> {
    const v = await this.get(name);
    if (v.workspace && v.workspace.name !== workspace) {
      throw new RealmError(
        'INVALID_REQUEST',
        `volume ${name} is workspace ${v.workspace.name}'s clone; \`realm ws ${v.workspace.name} --delete\` (DELETE /v1/workspaces/${v.workspace.name}) removes it`,
      );
    }
    if (v.usedBy.length)
      throw new RealmError(
        'VOLUME_IN_USE',
        `volume "${name}" is mounted by ${v.usedBy.join(', ')}; remove those sandboxes first`,
      );
    const dir = join(this.dir, name);
    // Sandboxes wrote this tree: no link in it is followed.
    if (existsSync(dir)) await removeTree(dir);
    await this.store.deleteVolume(name);
  }
}
