/** Conformance cases: limits and their verdicts, network policy, volumes. */
import assert from 'node:assert/strict';
import { nodeInfo, volumes } from '@realm/sdk';
import type { ConformanceCase } from './context.js';
import { outsideWorld, outsideWorldSkipReason } from '../helpers/netns.js';

export const limitCases: ConformanceCase[] = [
  {
    name: 'memory limit: a program past it is killed with verdict oom',
    // gVisor's sentry is one host process in the sandbox's memory cgroup: no per-exec memory limit.
    needs: ['nativePrograms', 'perExecMemoryLimit'],
    async run(ctx) {
      const sb = await ctx.sandbox({ memory: '64m' });
      const r = await sb.exec(['/usr/bin/python3', '-c', 'x = bytearray(200 * 1024 * 1024); print(len(x))'], { timeout: '20s' });
      assert.equal(r.verdict, 'oom', JSON.stringify(r));
      assert.equal(r.stdout, '');
      // Per-exec limit, tighter than the sandbox's.
      const big = await ctx.sandbox({ memory: '512m' });
      const e = await big.exec(['/usr/bin/python3', '-c', 'x = bytearray(100 * 1024 * 1024)'], { memory: '32m', timeout: '20s' });
      assert.equal(e.verdict, 'oom');
      assert.equal(
        (await big.exec(['/usr/bin/python3', '-c', 'x = bytearray(100 * 1024 * 1024); print("fits")'])).stdout,
        'fits\n',
      );
      await sb.destroy();
      await big.destroy();
    },
  },
  {
    name: 'pids limit: forking past it fails inside, the host is untouched',
    needs: ['nativePrograms'],
    async run(ctx) {
      const sb = await ctx.sandbox({ pids: 32 });
      const r = await sb.exec(
        [
          '/usr/bin/python3',
          '-c',
          [
            'import os, time',
            'n = 0',
            'try:',
            '    for i in range(200):',
            '        if os.fork() == 0:',
            '            time.sleep(3); os._exit(0)',
            '        n += 1',
            'except OSError as e:',
            '    print("stopped at", n, e.errno)',
          ].join('\n'),
        ],
        { timeout: '20s' },
      );
      assert.match(r.stdout, /stopped at \d+ 11/);
      const n = Number(/stopped at (\d+)/.exec(r.stdout)?.[1]);
      assert.ok(n < 32, `forked ${n} children under a limit of 32`);
      await sb.destroy();
    },
  },
  {
    name: 'wall-time limit kills the whole tree, setsid and double-forked children included',
    needs: ['nativePrograms'],
    async run(ctx) {
      const sb = await ctx.sandbox();
      const r = await sb.exec(['/bin/sh', '-c', 'setsid sh -c "while :; do :; done" & (sh -c "sleep 1000 &" &) ; sleep 1000'], {
        timeout: '1s',
      });
      assert.equal(r.verdict, 'timeout');
      // Every live process's command line (zombies have none and are being reaped by init).
      const ps = await sb.exec(['/bin/sh', '-c', 'grep -a . /proc/[0-9]*/cmdline | tr "\\0" " "']);
      assert.doesNotMatch(ps.stdout, /sleep 1000|while/, `processes left after timeout:\n${ps.stdout}`);
      assert.match(ps.stdout, /realm\/init/);
      await sb.destroy();
    },
  },
  {
    name: 'output limit: a flood is cut at the limit with verdict output-limit',
    needs: ['nativePrograms'],
    async run(ctx) {
      const sb = await ctx.sandbox();
      const r = await sb.exec(['/usr/bin/yes'], { output: '64k', timeout: '20s' });
      assert.equal(r.verdict, 'output-limit');
      assert.equal(r.stdout.length + r.stderr.length, 64 * 1024);
      await sb.destroy();
    },
  },
  {
    name: 'cpu quota: a busy loop gets about the CPUs it was given',
    needs: ['nativePrograms'],
    async run(ctx) {
      const sb = await ctx.sandbox({ cpus: 0.25 });
      const r = await sb.exec(['/usr/bin/timeout', '1.5', '/bin/sh', '-c', 'while :; do :; done'], { timeout: '10s' });
      const share = r.cpuMs / r.wallMs;
      assert.ok(share < 0.5, `busy loop used ${share.toFixed(2)} CPUs under a 0.25 quota`);
      await sb.destroy();
    },
  },
  {
    name: 'disk limit: the writable layer and /tmp fill up at their sizes',
    needs: ['nativePrograms'],
    async run(ctx) {
      const sb = await ctx.sandbox({ disk: '8m', tmp: '4m' });
      const home = await sb.exec('dd if=/dev/zero of=$HOME/big bs=1M count=20 2>&1; echo rc=$?');
      assert.match(home.stdout, /No space left on device/);
      const tmp = await sb.exec('dd if=/dev/zero of=/tmp/big bs=1M count=20 2>&1; echo rc=$?');
      assert.match(tmp.stdout, /No space left on device/);
      await sb.destroy();
    },
  },
  {
    name: 'network none has only loopback; all has its own namespace with NAT out, not the host loopback',
    needs: ['nativePrograms', 'network:all'],
    async run(ctx) {
      const ifaces = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '";
      const skipWorld = outsideWorldSkipReason();
      const world = skipWorld ? undefined : await outsideWorld();
      try {
        const none = await ctx.sandbox();
        assert.equal((await none.exec(ifaces)).stdout.trim(), 'lo');
        // `all` is its own namespace too, with user-mode NAT, never the host's interfaces: slirp4netns's
        // tap0, or on microvm the VM's own NIC (on QEMU's user-mode network, in a namespace of its own).
        const all = await ctx.sandbox({ network: 'all' });
        assert.equal((await all.exec(ifaces)).stdout.trim(), ctx.driver === 'microvm' ? 'eth0 lo' : 'lo tap0');
        const apiPort = new URL(ctx.t.url).port;
        const toApi = await all.exec(
          `curl -s -m 3 -o /dev/null -w '%{http_code}' http://10.0.2.2:${apiPort}/v1/health; echo; curl -s -m 3 -o /dev/null -w '%{http_code}' http://127.0.0.1:${apiPort}/v1/health; true`,
        );
        assert.deepEqual(
          toApi.stdout.trim().split('\n'),
          ['000', '000'],
          'the daemon API is reachable from a network "all" sandbox',
        );
        // Out through the NAT to a host elsewhere: a network namespace of this test's, never beyond the machine.
        if (world) {
          const out = await all.exec(
            `curl -s -m 20 ${world.url}; echo; curl -s -m 60 -o /dev/null -w '%{size_download}' ${world.url}big`,
            { timeout: '90s' },
          );
          assert.equal(out.stdout, `${world.body}\n${world.bigBytes}`, out.stderr);
          assert.equal(
            (await none.exec(`curl -s -m 3 ${world.url}; echo " $?"`)).stdout.trim(),
            '7',
            'a network "none" sandbox reached the outside',
          );
        } else console.log(`# not checking the way out: ${skipWorld}`);
        await none.destroy();
        await all.destroy();
      } finally {
        world?.close();
      }
    },
  },
  {
    name: 'volumes are mounted read-write, outlive their sandbox, and cannot be removed while used',
    needs: ['nativePrograms'],
    async run(ctx) {
      const a = await ctx.sandbox({ volumes: [{ volume: 'conf-vol', path: '/data' }] });
      await a.exec('echo stays > /data/f');
      await assert.rejects(volumes.remove('conf-vol', ctx.client), (e) => (e as { code?: string }).code === 'VOLUME_IN_USE');
      await a.destroy();
      const b = await ctx.sandbox({ volumes: [{ volume: 'conf-vol', path: '/mnt/v', readOnly: true }] });
      assert.equal((await b.exec('cat /mnt/v/f')).stdout, 'stays\n');
      assert.match((await b.exec('touch /mnt/v/g 2>&1; true')).stdout, /Read-only/);
      await b.destroy();
      await volumes.remove('conf-vol', ctx.client);
      assert.ok(!(await volumes.list(ctx.client)).some((v) => v.name === 'conf-vol'));
    },
  },
  {
    name: 'the node declares what the driver can do; a request past it is refused before anything is made, naming the capability',
    needs: ['nativePrograms'],
    async run(ctx) {
      const caps = (await nodeInfo(ctx.client)).drivers.find((d) => d.name === ctx.driver)?.capabilities;
      assert.ok(caps, "the node declares the driver's capabilities");
      assert.ok(caps.networkModes.includes('none') && caps.networkModes.includes('allowlist'), caps.networkModes.join(', '));
      const refused =
        (capability: string) =>
        (e: unknown): boolean => {
          assert.equal((e as { code?: string }).code, 'DRIVER_UNAVAILABLE', String(e));
          assert.match((e as Error).message, new RegExp(`capability ${capability}\\)`));
          return true;
        };
      const before = (await volumes.list(ctx.client)).length;
      if (caps.maxVolumes !== null) {
        const many = Array.from({ length: caps.maxVolumes + 1 }, (_, i) => ({ volume: `conf-cap-${i}`, path: `/mnt/v${i}` }));
        await assert.rejects(ctx.sandbox({ volumes: many }), refused('maxVolumes'));
      }
      if (!caps.networkModes.includes('all')) await assert.rejects(ctx.sandbox({ network: 'all' }), refused('networkModes:all'));
      assert.equal((await volumes.list(ctx.client)).length, before, 'a refused create made no volume');
      assert.deepEqual(await ctx.t.daemon.engine.listSandboxes(), [], 'a refused create left no sandbox');
      const sb = await ctx.sandbox({ memory: '256m', cpus: 1 });
      const tighter = [
        ['perExecMemoryLimit', { memory: '64m' }],
        ['perExecCpuLimit', { cpus: 0.5 }],
      ] as const;
      for (const [cap, limit] of tighter) {
        if (caps[cap]) assert.equal((await sb.exec('true', limit)).exitCode, 0);
        else await assert.rejects(sb.exec('true', limit), refused(cap));
      }
      // A limit no tighter than the sandbox's asks for nothing the driver lacks.
      assert.equal((await sb.exec('true', { memory: '256m', cpus: 1 })).exitCode, 0);
      await sb.destroy();
    },
  },
];
