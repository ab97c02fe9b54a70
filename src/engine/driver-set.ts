/**
 * The node's drivers: the one a request names (or the default), and what each can do on this
 * host, probed once.
 *
 *   const drivers = new DriverSet(new Map([['namespace', ns]]), 'namespace');
 *   const d = await drivers.available('namespace'); // DRIVER_UNAVAILABLE when this host cannot
 */
import type { Driver, DriverInfo, DriverName } from '../drivers/driver.js';
import { RealmError } from '../util/errors.js';

export class DriverSet {
  private fingerprints: Promise<DriverInfo[]> | undefined;

  constructor(
    readonly byName: ReadonlyMap<DriverName, Driver>,
    /** The driver of creates and runs that name none. */
    readonly defaultName: DriverName,
  ) {}

  /** What each driver can do on this host (probed on first call). */
  fingerprint(): Promise<DriverInfo[]> {
    this.fingerprints ??= Promise.all([...this.byName.values()].map((d) => d.fingerprint()));
    return this.fingerprints;
  }

  /** Names of the drivers this host can run. */
  async availableNames(): Promise<Set<DriverName>> {
    return new Set((await this.fingerprint()).filter((f) => f.available).map((f) => f.name));
  }

  /** The driver of this name; DRIVER_UNAVAILABLE when the node offers none. */
  get(name: DriverName): Driver {
    const d = this.byName.get(name);
    if (!d)
      throw new RealmError(
        'DRIVER_UNAVAILABLE',
        `driver "${name}" is not offered by this node; run \`realm doctor\` to see which drivers are`,
      );
    return d;
  }

  /** The driver of this name if this host can run it; DRIVER_UNAVAILABLE with the reason otherwise. */
  async available(name: DriverName): Promise<Driver> {
    const d = this.get(name);
    const info = (await this.fingerprint()).find((f) => f.name === name);
    if (!info?.available)
      throw new RealmError('DRIVER_UNAVAILABLE', `driver "${name}" cannot run on this host: ${info?.reason ?? 'unknown'}`);
    return d;
  }

  /** Close every driver (fork servers and the like); sandboxes keep running. */
  async close(): Promise<void> {
    await Promise.all([...this.byName.values()].map((d) => d.close?.() ?? Promise.resolve()));
  }
}
