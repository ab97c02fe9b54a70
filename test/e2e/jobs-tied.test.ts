/**
 * A job's attempt on the gvisor and microvm drivers dies with its daemon, as on namespace
 * (test/cluster/jobs.test.ts): a daemon killed with -9 takes the attempt's whole sandbox (gVisor's
 * sandbox process, the microVM's QEMU) with it, and its one-shot runs too, so an attempt placed
 * again elsewhere never overlaps it — while an ordinary sandbox, with a command in flight, lives
 * on and is recovered by the next daemon.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Client, Sandbox } from '@realm/sdk';
import { probeCgroups } from '../../src/drivers/shared/cgroups.js';
import { gvisorSkipReason, leftovers, microvmSkipReason, namespaceSkipReason, removeTestDirs } from '../helpers/daemon.js';
import { freePort } from '../helpers/port.js';
import { type SpawnedDaemon, spawnDaemon } from '../helpers/spawned-daemon.js';
import { until } from '../helpers/until.js';

const DRIVERS = [
  { driver: 'gvisor', skip: (await namespaceSkipReason()) ?? (await gvisorSkipReason()), oneShot: true },
  // One VM fewer under emulation: its one-shot runs are tied by the same exec path (execIn).
  { driver: 'microvm', skip: (await namespaceSkipReason()) ?? (await microvmSkipReason()), oneShot: false },
] as const;

for (const { driver, skip, oneShot } of DRIVERS) {
  void describe(`job attempts on the ${driver} driver`, { skip }, () => {
    void it("a daemon killed with -9: the attempts' sandboxes die with it; an ordinary sandbox lives on and is recovered", async () => {
      const dataDir = mkdtempSync(join(tmpdir(), `realm-test-tied-${driver}-`));
      const cgroupRoot = `realm-test-tied-${driver}-${process.pid}`;
      const port = await freePort();
      const start = (): Promise<SpawnedDaemon> =>
        spawnDaemon({ dataDir, cgroupRoot, listen: `127.0.0.1:${port}`, env: { REALM_MICROVM_ALLOW_EMULATION: '1' } });
      const cg = probeCgroups();
      assert.ok(cg.ok);
      const procs = (id: string): number[] => cg.manager.open(`${cgroupRoot}/${id}`).pids();
      let daemon: SpawnedDaemon | undefined;
      try {
        daemon = await start();
        let c: Client = daemon.client;
        // An attempt in a sandbox of the store (it has an artifact), one in a one-shot sandbox;
        // each leaves a writer that left its session (setsid) behind, and runs on.
        const command = `echo start; (setsid sh -c 'while :; do echo x >> bg; sleep 0.2; done' &); sleep 600`;
        const names = ['in-store', ...(oneShot ? ['one-shot'] : [])];
        const runs: Record<string, string> = {};
        for (const name of names) {
          const job = await c.jobs.submit({
            name,
            run: { command, driver },
            retry: { attempts: 0 },
            ...(name === 'in-store' ? { artifacts: [{ path: 'bg', name: 'bg' }] } : {}),
          });
          runs[name] = job.runs[0]?.id ?? '';
        }
        for (const name of names) await until(`${name} started`, async () => /start/.test(await c.jobs.log(name)), 120_000);
        const listed = await c.request<{ sandboxes: { id: string; labels: Record<string, string> }[] }>('GET', '/v1/sandboxes');
        const inStore = listed.sandboxes.find((s) => s.labels['realm.job-run'] !== undefined)?.id;
        assert.ok(inStore, 'the attempt runs in a sandbox of the store');
        // An ordinary sandbox with a command in flight: unlike an attempt's, it outlives the daemon.
        const plain = await Sandbox.create({ driver }, c);
        const inFlight = plain.exec('sleep 600').catch(() => undefined);
        const oneShots = cg.manager
          .children(cgroupRoot)
          .map((rel) => rel.slice(cgroupRoot.length + 1))
          .filter((id) => id !== inStore && id !== plain.id);
        assert.equal(oneShots.length, oneShot ? 1 : 0, `the one-shot run's sandbox: ${oneShots.join(', ')}`);
        const tied = [inStore, ...oneShots];
        for (const id of [...tied, plain.id]) assert.ok(procs(id).length > 0, `sandbox ${id} runs`);
        const killedAt = Date.now();
        await daemon.stop('SIGKILL');
        await inFlight;
        await until(
          'no process left in the attempts’ sandboxes',
          () => Promise.resolve(tied.every((id) => !procs(id).length)),
          10_000,
        );
        console.log(`# ${driver}: the attempts' sandboxes emptied ${Date.now() - killedAt} ms after their daemon's kill -9`);
        assert.ok(procs(plain.id).length > 0, 'the ordinary sandbox outlives the daemon');

        daemon = await start();
        c = daemon.client;
        const recovered = await Sandbox.get(plain.id, c);
        assert.equal(recovered.info.status, 'running');
        assert.equal((await recovered.exec('echo still here')).stdout, 'still here\n');
        await recovered.destroy();
        for (const name of names) {
          const run = await until(
            `${name} ended`,
            async () => {
              const r = await c.jobs.run(runs[name] ?? '');
              return r.state === 'failed' ? r : undefined;
            },
            30_000,
          );
          assert.deepEqual(
            run.attempts.map((a) => a.state),
            ['lost'],
          );
          await c.jobs.remove(name);
        }
        await daemon.stop();
        assert.deepEqual(await leftovers({ dataDir, cgroupRoot }), []);
        daemon = undefined;
      } finally {
        // A case that failed half-way: a daemon removes what is left.
        if (daemon && (daemon.child.exitCode !== null || daemon.child.signalCode !== null))
          daemon = await start().catch(() => undefined);
        const left = await daemon?.client.request<{ sandboxes: { id: string }[] }>('GET', '/v1/sandboxes').catch(() => undefined);
        for (const sb of left?.sandboxes ?? [])
          await daemon?.client.request('DELETE', `/v1/sandboxes/${sb.id}`).catch(() => undefined);
        await daemon?.stop();
        removeTestDirs({ dataDir, cgroupRoot });
      }
    });
  });
}
