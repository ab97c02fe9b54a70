/** What every conformance case gets: a live daemon for one driver, and a way to restart it. */
import { Client, Sandbox, type SandboxCreateOptions } from '@realm/sdk';
import type { DriverCapabilities, DriverName, NetworkCapability } from '../../src/drivers/driver.js';
import { startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

export class ConformanceContext {
  constructor(
    readonly driver: DriverName,
    public t: TestDaemon,
    /** Daemon options a restart keeps (e.g. allowing microVM emulation). */
    private readonly daemonOpts: Parameters<typeof startTestDaemon>[0] = {},
  ) {}

  /** The directory the daemon allows root filesystem images in (`--image-dir`). */
  get imageDir(): string {
    const dir = this.daemonOpts?.imageDirs?.[0];
    if (!dir) throw new Error('this conformance daemon allows no image directory');
    return dir;
  }

  get client(): Client {
    return this.t.client;
  }

  /** Create a sandbox on this context's driver. */
  sandbox(opts: SandboxCreateOptions = {}): Promise<Sandbox> {
    return Sandbox.create({ driver: this.driver, ...opts }, this.client);
  }

  /** Stop the daemon as a crash would (sandboxes stay up), then start it again on the same state. */
  async restart(whileDown?: () => Promise<void>): Promise<void> {
    const { dataDir, cgroupRoot } = this.t;
    await this.t.close({ keepSandboxes: true });
    await whileDown?.();
    this.t = await startTestDaemon({ ...this.daemonOpts, dataDir, cgroupRoot });
  }
}

/** A capability a case needs: a boolean one by name, or a network mode (`network:all`). */
export type Need =
  | { [K in keyof DriverCapabilities]: DriverCapabilities[K] extends boolean ? K : never }[keyof DriverCapabilities]
  | `network:${NetworkCapability}`;

/** The needs `caps` do not meet. */
export function unmet(needs: readonly Need[], caps: DriverCapabilities): Need[] {
  return needs.filter((n) =>
    n.startsWith('network:')
      ? !caps.networkModes.includes(n.slice('network:'.length) as NetworkCapability)
      : !caps[n as Exclude<Need, `network:${string}`>],
  );
}

export interface ConformanceCase {
  name: string;
  /** Declared capabilities the case needs: a driver without one (on this host) skips it, saying which. */
  needs?: Need[];
  /**
   * A driver that meets the needs yet cannot pass the case says why, in words (a behaviour of
   * its kernel, not a missing capability); the case is then skipped with that reason.
   */
  skip?: Partial<Record<DriverName, string>>;
  run(ctx: ConformanceContext): Promise<void>;
}
