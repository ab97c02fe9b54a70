/** Named volumes: directories under the data dir that outlive sandboxes, mounted read-write (or not). */
import { chownSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Mount } from '../drivers/driver.js';
import type { Store, VolumeRecord, VolumeMount } from '../store/store.js';
import { RealmError } from '../util/errors.js';
import { mayUse } from './owner.js';

/** Paths no volume may cover: they are the sandbox's own. */
const RESERVED_TARGETS = ['/', '/proc', '/dev', '/tmp', '/.realm', '/usr', '/etc', '/home/user'];

export type VolumeView = VolumeRecord & { usedBy: string[] };

export class Volumes {
  constructor(
    private readonly store: Store,
    private readonly dir: string,
    private readonly sandboxUid: number,
  ) {}

  /**
   * Check where volumes go and make the missing ones (for `owner`, who may mount only its own);
   * the mounts a driver needs.
   */
  async mounts(volumes: Pick<VolumeMount, 'volume' | 'path' | 'readOnly'>[], owner?: string): Promise<Mount[]> {
    const mounts: Mount[] = [];
    const seen = new Set<string>();
    for (const v of volumes) {
      const target = v.path.replace(/\/+$/, '') || '/';
      if (RESERVED_TARGETS.includes(target) || target.split('/').includes('..') || target.startsWith('/proc/') || target.startsWith('/dev/') || target.startsWith('/.realm')) {
        throw new RealmError('INVALID_REQUEST', `volume path ${v.path} is reserved; mount volumes elsewhere, e.g. /data or /home/user/data`);
      }
      if (seen.has(target)) throw new RealmError('INVALID_REQUEST', `two volumes are mounted at ${target}; give each its own path`);
      seen.add(target);
      mounts.push({ source: await this.ensure(v.volume, owner), target, readOnly: v.readOnly });
    }
    return mounts;
  }

  private async ensure(name: string, owner?: string): Promise<string> {
    const dir = join(this.dir, name);
    const rec = await this.store.getVolume(name);
    // Volume names are one namespace for the node: a name another user took is not yours to mount.
    if (rec && owner && !mayUse(owner, rec.owner)) throw new RealmError('VOLUME_IN_USE', `the volume name "${name}" is taken by another user; pick another name`);
    if (!rec) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chownSync(dir, this.sandboxUid, this.sandboxUid);
      await this.store.putVolume({ name, createdAt: Date.now(), labels: {}, ...(owner ? { owner } : {}) });
    }
    return dir;
  }

  async list(): Promise<VolumeView[]> {
    const sandboxes = await this.store.listSandboxes();
    return (await this.store.listVolumes()).map((v) => ({ ...v, usedBy: sandboxes.filter((s) => s.volumes.some((m) => m.volume === v.name)).map((s) => s.id) }));
  }

  async get(name: string): Promise<VolumeView> {
    const v = (await this.list()).find((x) => x.name === name);
    if (!v) throw new RealmError('VOLUME_NOT_FOUND', `no volume "${name}"; \`realm volume ls\` lists them`);
    return v;
  }

  async remove(name: string): Promise<void> {
    const v = await this.get(name);
    if (v.usedBy.length) throw new RealmError('VOLUME_IN_USE', `volume "${name}" is mounted by ${v.usedBy.join(', ')}; remove those sandboxes first`);
    const dir = join(this.dir, name);
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    await this.store.deleteVolume(name);
  }
}
