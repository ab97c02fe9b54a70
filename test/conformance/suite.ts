/** Every conformance case against one driver, in its own daemon; after every case nothing may be left. */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DriverName } from '../../src/drivers/driver.js';
import { leftovers, removeTestDirs, startTestDaemon } from '../helpers/daemon.js';
import { execCases } from './cases-exec.js';
import { imageCases } from './cases-image.js';
import { limitCases } from './cases-limits.js';
import { programCases } from './cases-programs.js';
import { runCases } from './cases-run.js';
import { ConformanceContext, unmet } from './context.js';
import { nodeInfo } from '@realm/sdk';

/** Describe the suite for `driver`; `skip` (the driver's probe reason) skips it whole. */
export function conformanceSuite(
  driver: DriverName,
  skip: string | undefined,
  daemonOptions: Parameters<typeof startTestDaemon>[0] = {},
): void {
  if (skip) console.log(`# skipping the ${driver} conformance suite: ${skip}`);
  void describe(`conformance: ${driver} driver`, { skip }, () => {
    let ctx: ConformanceContext;
    // Root filesystem directories are images only inside a directory the operator allows.
    const imageDir = mkdtempSync(join(tmpdir(), 'realm-images-'));
    chmodSync(imageDir, 0o755); // the sandbox's host uid must be able to reach its images
    const opts = { ...daemonOptions, imageDirs: [imageDir] };
    before(async () => {
      ctx = new ConformanceContext(driver, await startTestDaemon(opts), opts);
    });
    after(async () => {
      await ctx.t.close();
      removeTestDirs(ctx.t);
      rmSync(imageDir, { recursive: true, force: true });
    });

    for (const c of [...execCases, ...limitCases, ...runCases, ...imageCases, ...programCases]) {
      const reason = c.skip?.[driver];
      // A case that hangs fails with its name instead of stalling the whole run (an emulated VM
      // boots slowly: microvm cases get longer).
      void it(c.name, { skip: reason ?? false, timeout: (driver === 'microvm' ? 10 : 3) * 60_000 }, async (t) => {
        // By what the node says the driver can do here, as a client would find out.
        const caps = (await nodeInfo(ctx.client)).drivers.find((d) => d.name === driver)?.capabilities;
        assert.ok(caps, `the node declares no capabilities for ${driver}`);
        const missing = unmet(c.needs ?? [], caps);
        if (missing.length) {
          t.skip(`the ${driver} driver lacks ${missing.join(', ')} here`);
          return;
        }
        try {
          await c.run(ctx);
        } finally {
          // Whatever the case left running is destroyed, then nothing at all may remain.
          for (const s of await ctx.t.daemon.engine.listSandboxes().catch(() => []))
            await ctx.t.daemon.engine.destroySandbox(s.id);
        }
        assert.deepEqual(await leftovers(ctx.t), []);
        const health = await fetch(`${ctx.t.url}/v1/health`);
        assert.equal(health.status, 200);
      });
    }
  });
}
