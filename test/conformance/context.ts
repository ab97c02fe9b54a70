/** What every conformance case gets: a live daemon for one driver, and a way to restart it. */
import { Client, Sandbox, type SandboxCreateOptions } from '@realm/sdk';
import type { DriverName } from '../../src/drivers/driver.js';
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

export interface ConformanceCase {
  name: string;
  /** A driver that cannot support the case says why; the case is then skipped with that reason. */
  skip?: Partial<Record<DriverName, string>>;
  run(ctx: ConformanceContext): Promise<void>;
}
