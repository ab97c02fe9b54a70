/**
 * Persistent sandboxes built ahead of demand, per shape (driver, image and the root it names
 * now, network, sizes): a create that fits one takes it and only has its limits set.
 */
import type { DriverName, DriverState } from '../drivers/driver.js';
import type { SandboxRecord } from '../store/store.js';
import { newId } from './ids.js';
import { WarmPool } from './pool.js';
import { recordWarm } from '../metrics/record.js';
import type { CreateSandboxOptions } from './schemas.js';
import type { SandboxLifecycle } from './sandboxes.js';

/** A persistent sandbox built ahead of demand. */
export interface WarmSandbox {
  id: string;
  /** Its host uid (its own, held until it is discarded or destroyed as a sandbox). */
  uid: number;
  state: DriverState;
  alive(): boolean;
  discard(): Promise<void>;
}

export class WarmSandboxes {
  readonly pool: WarmPool<WarmSandbox>;

  constructor(
    private readonly sandboxes: SandboxLifecycle,
    warm: number,
    warmMax?: number,
  ) {
    this.pool = new WarmPool<WarmSandbox>(warm, undefined, warmMax);
  }

  /** Take a ready sandbox of this shape (or none), and keep the shape warm. */
  take(opts: CreateSandboxOptions & { driver: DriverName }): WarmSandbox | undefined {
    // The resolved root is part of the shape: a name moved to a new image gets new sandboxes.
    const key = JSON.stringify([
      'sb',
      opts.driver,
      opts.image,
      this.sandboxes.resolveImage(opts.image),
      opts.network,
      opts.disk,
      opts.tmp,
    ]);
    const ready = this.pool.take(key, async () => {
      const driver = await this.sandboxes.drivers.available(opts.driver);
      const id = newId('sb');
      const { uid } = this.sandboxes.hostIds.take(id);
      const give = (): void => this.sandboxes.hostIds.give(id);
      const rec = {
        id,
        uid,
        image: opts.image,
        network: opts.network,
        env: {},
        labels: {},
        limits: { memoryBytes: opts.memory, pids: opts.pids, cpus: opts.cpus, diskBytes: opts.disk, tmpBytes: opts.tmp },
      } as SandboxRecord;
      const state = await driver.create(this.sandboxes.spec(rec, [])).catch((e: unknown) => {
        give();
        throw e;
      });
      return { id, uid, state, alive: () => true, discard: () => driver.destroy(state).finally(give) };
    });
    recordWarm('sandboxes', ready !== undefined);
    return ready;
  }
}
