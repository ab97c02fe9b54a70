/**
 * After a (re)start: re-attach sandboxes that are alive, stop the half-alive, finish destroys
 * that were under way, and remove anything in cgroups, mounts or on disk that no record owns.
 */
import type { Driver, DriverName } from '../drivers/driver.js';
import type { Store } from '../store/store.js';

export interface Recovered {
  running: number;
  stopped: number;
  removed: number;
}

export async function recoverSandboxes(
  store: Store,
  drivers: ReadonlyMap<DriverName, Driver>,
  available: Set<DriverName>,
  stateRoot: string,
): Promise<Recovered> {
  const counts: Recovered = { running: 0, stopped: 0, removed: 0 };
  const known = new Set<string>();
  for (const rec of await store.listSandboxes()) {
    const driver = drivers.get(rec.driver);
    if (!driver || !available.has(rec.driver)) {
      known.add(rec.id); // its driver is not here now: leave it be
      continue;
    }
    if (rec.status === 'creating' || rec.status === 'destroying') {
      await driver.destroy(rec.driverState).catch(() => undefined);
      await store.deleteSandbox(rec.id);
      counts.removed++;
      continue;
    }
    known.add(rec.id);
    if (rec.status !== 'running') continue;
    if ((await driver.recover(rec.driverState)) === 'stopped') {
      rec.status = 'stopped';
      await store.putSandbox(rec);
      counts.stopped++;
    } else counts.running++;
  }
  for (const d of drivers.values()) {
    if (available.has(d.name)) counts.removed += (await d.sweep(known, stateRoot)).length;
  }
  return counts;
}
