/** The conformance suite against the gvisor driver, and what only gvisor has to prove. */
import assert from 'node:assert/strict';
import { Sandbox, nodeInfo } from '@realm/sdk';
import { after, before, describe, it } from 'node:test';
import { leftovers, gvisorSkipReason, removeTestDirs, startTestDaemon } from '../helpers/daemon.js';
import { ConformanceContext } from './context.js';
import { conformanceSuite } from './suite.js';

const DRIVER = 'gvisor';
const skip = await gvisorSkipReason();
conformanceSuite(DRIVER, skip);

/** What only the gvisor driver has to prove: its refusals, and that files and terminals work through runsc. */
void describe('gvisor driver specifics', { skip }, () => {
  let ctx: ConformanceContext;
  before(async () => {
    ctx = new ConformanceContext(DRIVER, await startTestDaemon({ warm: 0 }));
  });
  after(async () => {
    await ctx.t.close();
    removeTestDirs(ctx.t);
  });

  void it('refuses network all and allow-lists with a clear code, leaving nothing', async () => {
    const before = (await Sandbox.list({}, ctx.client)).length;
    await assert.rejects(ctx.sandbox({ network: 'all' }), (e) => (e as { code?: string }).code === 'DRIVER_UNAVAILABLE' && /network/.test((e as Error).message));
    await assert.rejects(ctx.sandbox({ allow: ['example.com'] }), (e) => (e as { code?: string }).code === 'DRIVER_UNAVAILABLE');
    assert.equal((await Sandbox.list({}, ctx.client)).length, before);
    assert.deepEqual(await leftovers(ctx.t), []);
  });

  void it('a fork bomb meets the pids limit inside; the sandbox lives on', async () => {
    const sb = await ctx.sandbox({ pids: 32 });
    const r = await sb.exec(['/bin/sh', '-c', 'bomb() { bomb | bomb & }; bomb; sleep 1; echo survived'], { timeout: '10s' });
    assert.match(r.stdout, /survived/, JSON.stringify(r));
    assert.equal((await sb.exec(['true'])).exitCode, 0, 'the sandbox still runs commands');
    await sb.destroy();
    assert.deepEqual(await leftovers(ctx.t), []);
  });

  void it('the node reports gvisor with its platform', async () => {
    const info = await nodeInfo(ctx.client);
    const gv = info.drivers.find((d) => d.name === 'gvisor');
    assert.equal(gv?.available, true);
    assert.match(String(gv?.details.platform), /^(ptrace|kvm)$/);
  });

  void it('the files API and a terminal work through runsc', async () => {
    const sb = await ctx.sandbox();
    await sb.files.write('d/a.txt', 'via files', { parents: true });
    assert.equal(await sb.files.readText('d/a.txt'), 'via files');
    assert.equal((await sb.exec('cat ~/d/a.txt')).stdout, 'via files');
    assert.deepEqual((await sb.files.list('d')).map((f) => f.name), ['a.txt']);
    const term = await sb.attach(['/bin/sh'], { rows: 30, cols: 100 });
    let out = '';
    term.onData((_, d) => (out += d));
    term.write('stty size; tty\n');
    for (let i = 0; i < 200 && !/\/dev\/pts/.test(out); i++) await new Promise((r) => setTimeout(r, 20));
    term.resize(40, 120);
    await new Promise((r) => setTimeout(r, 200));
    term.write('stty size; exit 3\n');
    const exit = await term.exited;
    assert.equal(exit.exitCode, 3);
    assert.match(out, /30 100/);
    assert.match(out, /40 120/);
    await sb.destroy();
    assert.deepEqual(await leftovers(ctx.t), []);
  });
});
