/** The conformance suite against the gvisor driver, and what only gvisor has to prove. */
import assert from 'node:assert/strict';
import { nodeInfo, volumes } from '@realm/sdk';
import { join } from 'node:path';
import { chownSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { STORAGE_UID, leftovers, gvisorSkipReason, removeTestDirs, startTestDaemon } from '../helpers/daemon.js';
import { ConformanceContext } from './context.js';
import { conformanceSuite } from './suite.js';

const DRIVER = 'gvisor';
const skip = await gvisorSkipReason();
conformanceSuite(DRIVER, skip);

/** What only the gvisor driver has to prove: its refusals, and that files and terminals work through runsc. */
void describe('gvisor driver specifics', { skip }, () => {
  let ctx: ConformanceContext;
  before(async () => {
    // 127.0.0.2: where the allow-list case's server listens (the proxy refuses loopback unless opened).
    ctx = new ConformanceContext(DRIVER, await startTestDaemon({ warm: 0, allowPrivate: ['127.0.0.2/32'] }));
  });
  after(async () => {
    await ctx.t.close();
    removeTestDirs(ctx.t);
  });

  void it("network all is gVisor's stack on tap0 of a namespace of its own; the host keeps nothing of it", async () => {
    const sb = await ctx.sandbox({ network: 'all' });
    // gVisor took tap0's address and routes over: inside they are gVisor's, with slirp's gateway.
    const route = await sb.exec('cat /proc/net/route');
    assert.match(route.stdout, /^tap0\s+00000000\s+0202000A\s/m, route.stdout);
    assert.match((await sb.exec('cat /etc/resolv.conf')).stdout, /nameserver 10\.0\.2\.3/);
    // No raw or packet sockets on tap0 (runsc without --net-raw, and the filter).
    const raw = await sb.exec([
      '/usr/bin/python3',
      '-c',
      [
        'import socket',
        'for args in [(socket.AF_PACKET, socket.SOCK_RAW, 0x0300), (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)]:',
        '    try:',
        '        socket.socket(*args); print("opened")',
        '    except OSError as e:',
        '        print(type(e).__name__)',
      ].join('\n'),
    ]);
    assert.equal(raw.stdout.includes('opened'), false, raw.stdout + raw.stderr);
    assert.equal(raw.stdout.trim().split('\n').length, 3, raw.stdout + raw.stderr);
    // runsc's sandbox process runs in a network namespace of its own, not the host's.
    const netns = sentryNetns(join(ctx.t.dataDir, 'sandboxes', sb.id, 'runsc'));
    assert.ok(netns && netns !== readlinkSync('/proc/self/ns/net'), `the sandbox's network namespace is ${netns ?? 'unknown'}`);
    await sb.destroy();
    assert.deepEqual(await leftovers(ctx.t), []);
    assert.deepEqual(processesIn(netns), [], 'processes outlived the sandbox in its network namespace');
  });

  void it('an allow-list sandbox keeps its proxy forwarder through a signal to all, and gets it again after a stop and start', async () => {
    const server = createServer((_, res) => res.end('through the proxy'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.2', () => r()));
    const port = (server.address() as AddressInfo).port;
    try {
      const sb = await ctx.sandbox({ allow: [`127.0.0.2:${port}`] });
      const get = async (): Promise<string> =>
        (await sb.exec(`curl -s -m 5 http://127.0.0.2:${port}/; true`, { env: { NO_PROXY: '', no_proxy: '' } })).stdout;
      assert.equal(await get(), 'through the proxy');
      const forwarder = await sb.exec('cat /proc/[0-9]*/stat | grep -c "(realm-proxy) . 1 "');
      assert.equal(forwarder.stdout.trim(), '1', 'one forwarder, a child of PID 1');
      const fwd = (
        await sb.exec(
          'grep -E "^(Uid|CapEff|CapPrm):" /proc/$(grep -l "(realm-proxy) . 1 " /proc/[0-9]*/stat | cut -d/ -f3)/status',
        )
      ).stdout;
      assert.match(fwd, /^Uid:\s+1000\s+1000\s+1000\s+1000/m, 'the forwarder runs as the sandbox user');
      assert.match(
        fwd,
        /^CapEff:\s+0+\nCapPrm:\s+0+$|^CapPrm:\s+0+\nCapEff:\s+0+$/m,
        `the forwarder holds no capability: ${fwd}`,
      );
      assert.match((await sb.exec('grep CapEff /proc/1/status')).stdout, /CapEff:\s+0+$/m, 'PID 1 kept no capability');
      await sb.signal('SIGTERM');
      assert.equal(await get(), 'through the proxy', 'the forwarder survived a signal to all');
      await sb.stop();
      await sb.start();
      assert.equal(await get(), 'through the proxy', 'a started-again sandbox has its forwarder again');
      await sb.destroy();
      assert.deepEqual(await leftovers(ctx.t), []);
    } finally {
      server.close();
    }
  });

  void it("a unix socket in a volume can be connected to, as under namespace (a workspace's forwarded SSH agent is one)", async () => {
    const sb = await ctx.sandbox({ volumes: [{ volume: 'gv-uds', path: '/data' }] });
    const path = join(ctx.t.dataDir, 'volumes', 'gv-uds', 'agent.sock');
    const server = createNetServer((c) => c.end('agent here\n'));
    await new Promise<void>((r) => server.listen(path, () => r()));
    try {
      chownSync(path, STORAGE_UID, STORAGE_UID);
      const r = await sb.exec([
        '/usr/bin/python3',
        '-c',
        'import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect("/data/agent.sock")\nprint(s.recv(100).decode(), end="")',
      ]);
      assert.equal(r.stdout, 'agent here\n', r.stderr);
    } finally {
      await new Promise((r) => server.close(r));
      await sb.destroy();
      await volumes.remove('gv-uds', ctx.client);
    }
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
    assert.deepEqual(
      (await sb.files.list('d')).map((f) => f.name),
      ['a.txt'],
    );
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

/** The network namespace of the runsc sandbox process (`runsc boot`) started with this --root. */
function sentryNetns(root: string): string | undefined {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.includes(`--root=${root}`) && argv.includes('boot')) return readlinkSync(`/proc/${pid}/ns/net`);
    } catch {
      /* gone */
    }
  }
  return undefined;
}

/** Host processes in network namespace `ns`. */
function processesIn(ns: string | undefined): string[] {
  return readdirSync('/proc').filter((p) => {
    try {
      return /^\d+$/.test(p) && readlinkSync(`/proc/${p}/ns/net`) === ns;
    } catch {
      return false;
    }
  });
}
