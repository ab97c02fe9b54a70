/** The conformance suite against the gvisor driver; after every case nothing may be left. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { leftovers, gvisorSkipReason, removeTestDirs, startTestDaemon } from '../helpers/daemon.js';
import { execCases } from './cases-exec.js';
import { limitCases } from './cases-limits.js';
import { runCases } from './cases-run.js';
import { imageCases } from './cases-image.js';
import { ConformanceContext } from './context.js';

const DRIVER = 'gvisor';
const skip = await gvisorSkipReason();
if (skip) console.log(`# skipping the gvisor conformance suite: ${skip}`);

void describe(`conformance: ${DRIVER} driver`, { skip }, () => {
  let ctx: ConformanceContext;
  before(async () => {
    ctx = new ConformanceContext(DRIVER, await startTestDaemon());
  });
  after(async () => {
    await ctx.t.close();
    removeTestDirs(ctx.t);
  });

  for (const c of [...execCases, ...limitCases, ...runCases, ...imageCases]) {
    const reason = c.skip?.[DRIVER];
    void it(c.name, { skip: reason ?? false }, async () => {
      try {
        await c.run(ctx);
      } finally {
        // Whatever the case left running is destroyed, then nothing at all may remain.
        for (const s of await ctx.t.daemon.engine.listSandboxes().catch(() => [])) await ctx.t.daemon.engine.destroySandbox(s.id);
      }
      assert.deepEqual(await leftovers(ctx.t), []);
      const health = await fetch(`${ctx.t.url}/v1/health`);
      assert.equal(health.status, 200);
    });
  }
});
