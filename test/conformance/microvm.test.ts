/**
 * The conformance suite against the microvm driver; after every case nothing may be left. Where
 * KVM cannot boot guests (as on nested hosts) this file's daemon runs VMs under TCG emulation
 * (slow, but the same guest, agent and protocol).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { Sandbox, nodeInfo, volumes } from '@realm/sdk';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { guestUsage } from '../../src/drivers/microvm/driver.js';
import { SANDBOX_UID, leftovers, microvmSkipReason, removeTestDirs, startTestDaemon } from '../helpers/daemon.js';
import { ConformanceContext } from './context.js';
import { conformanceSuite } from './suite.js';

const DRIVER = 'microvm';
/** This file's daemons may run VMs under emulation where KVM cannot boot guests. */
const OPTS = { warm: 0, microvmAllowEmulation: true };
const skip = await microvmSkipReason();
conformanceSuite(DRIVER, skip, OPTS);

/** What only the microvm driver has to prove: its refusals, and that the files API works through the agent. */
void describe('microvm driver specifics', { skip }, () => {
  let ctx: ConformanceContext;
  before(async () => {
    ctx = new ConformanceContext(DRIVER, await startTestDaemon(OPTS), OPTS);
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

  void it('a fork bomb meets the pids limit inside the guest; the sandbox lives on', async () => {
    const sb = await ctx.sandbox({ pids: 32 });
    const dir = join(ctx.t.dataDir, 'sandboxes', sb.id);
    // The bomb runs under a parent that cannot die of it (python), so the exec ends only by its
    // timeout, which kills the exec's whole cgroup: the same end however fast the guest runs.
    const r = await sb.exec(['/usr/bin/python3', '-c', "import subprocess, time\nsubprocess.Popen(['/bin/sh', '-c', 'bomb() { bomb | bomb & }; bomb'])\ntime.sleep(600)"], { timeout: '20s' });
    assert.equal(r.verdict, 'timeout', JSON.stringify(r));
    // The guest's sandbox cgroup kept its peak: the limit held, and the bomb did reach it.
    const peak = (await guestUsage(dir))?.pidsPeak ?? 0;
    assert.ok(peak <= 32, `the guest's sandbox cgroup reached ${peak} tasks with pids=32`);
    assert.ok(peak >= 16, `the bomb never got going (${peak} tasks)`);
    assert.equal((await sb.exec(['true'])).exitCode, 0, 'the sandbox still runs commands');
    // The kill is the cgroup's (cgroup.kill): give the guest's kernel a moment to finish it.
    let left = -1;
    for (let i = 0; i < 100 && left !== 0; i++) {
      if (i) await new Promise((res) => setTimeout(res, 100));
      left = (await guestUsage(dir))?.processes.filter((p) => p.uid === 1000).length ?? -1;
    }
    assert.equal(left, 0, 'bomb processes outlived their exec');
    await sb.destroy();
    assert.deepEqual(await leftovers(ctx.t), []);
  });

  void it('a volume is a virtiofs share: the guest user\'s files, the sandbox uid\'s on the host; kept after destroy; read-only where asked', async () => {
    const a = await ctx.sandbox({ volumes: [{ volume: 'mv-vol', path: '/home/user/v' }] });
    const w = await a.exec('echo kept > ~/v/f && mkdir ~/v/d && stat -c "%u %g" ~/v ~/v/f ~/v/d');
    assert.equal(w.stdout, '1000 1000\n1000 1000\n1000 1000\n', w.stderr);
    await a.destroy();
    const host = join(ctx.t.dataDir, 'volumes', 'mv-vol');
    assert.equal(readFileSync(join(host, 'f'), 'utf8'), 'kept\n');
    for (const f of ['f', 'd']) assert.equal(statSync(join(host, f)).uid, SANDBOX_UID, `${f} on the host`);
    const b = await ctx.sandbox({ volumes: [{ volume: 'mv-vol', path: '/data', readOnly: true }] });
    const r = await b.exec('cat /data/f; touch /data/g 2>&1; rm /data/f 2>&1; true');
    assert.match(r.stdout, /^kept\n.*Read-only.*\n.*Read-only/s, r.stdout);
    assert.ok(!existsSync(join(host, 'g')) && existsSync(join(host, 'f')), 'the read-only volume changed on the host');
    await b.destroy();
    await volumes.remove('mv-vol', ctx.client);
    assert.deepEqual(await leftovers(ctx.t), []);
  });

  void it('the node reports microvm with how it runs VMs', async () => {
    const info = await nodeInfo(ctx.client);
    const mv = info.drivers.find((d) => d.name === 'microvm');
    assert.equal(mv?.available, true);
    assert.match(String(mv?.details.accel), /^(kvm|tcg)/);
    assert.match(String(mv?.details.kvm), /./);
  });

  void it('runs a real guest kernel; the files API works through the agent', async () => {
    const sb = await ctx.sandbox();
    const uname = await sb.exec(['uname', '-r']);
    assert.match(uname.stdout, /cloud-amd64/, 'the program runs on the guest kernel, not the host one');
    await sb.files.write('d/a.txt', 'via files', { parents: true });
    assert.equal(await sb.files.readText('d/a.txt'), 'via files');
    assert.equal((await sb.exec('cat ~/d/a.txt')).stdout, 'via files');
    assert.deepEqual((await sb.files.list('d')).map((f) => f.name), ['a.txt']);
    await sb.destroy();
    assert.deepEqual(await leftovers(ctx.t), []);
  });

  void it('a daemon killed hard leaves VMs that the next start sweeps when their records are gone', async () => {
    const sb = await ctx.sandbox();
    const pid = (await ctx.t.daemon.engine.getSandbox(sb.id)).driverState.pid as number;
    await ctx.restart(async () => {
      // The store forgets the sandbox while the daemon is down: its VM is an orphan now.
      const { SqliteStore } = await import('../../src/store/sqlite/store.js');
      const store = new SqliteStore(`${ctx.t.dataDir}/state.db`);
      await store.deleteSandbox(sb.id);
      store.close();
    });
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.throws(() => process.kill(pid, 0), 'the orphaned QEMU was killed');
    assert.deepEqual(await leftovers(ctx.t), []);
  });
});
