/**
 * The conformance suite against the microvm driver; after every case nothing may be left. Where
 * KVM cannot boot guests (as on nested hosts) this file's daemon runs VMs under TCG emulation
 * (slow, but the same guest, agent and protocol).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Interactive, Sandbox, nodeInfo, volumes } from '@realm/sdk';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { guestUsage } from '../helpers/microvm-guest.js';
import { STORAGE_UID, leftovers, microvmSkipReason, removeTestDirs, startTestDaemon } from '../helpers/daemon.js';
import { ConformanceContext } from './context.js';
import { conformanceSuite } from './suite.js';

const DRIVER = 'microvm';
/** This file's daemons may run VMs under emulation where KVM cannot boot guests. */
const OPTS = { warm: 0, microvmAllowEmulation: true };
const skip = await microvmSkipReason();
conformanceSuite(DRIVER, skip, OPTS);

/** Wait until the terminal's output (so far) matches. */
async function until(out: () => string, re: RegExp, what: string): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    if (re.test(out())) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`never saw ${what}; output was:\n${out()}`);
}

/** An HTTP server on a host loopback address that answers with where it runs and the headers it got. */
async function echoServer(host: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => res.end(JSON.stringify({ host, headers: req.headers })));
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Host processes whose command line holds `needle` (slirp4netns names its VM's network namespace by QEMU's pid). */
function hostProcs(needle: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** What only the microvm driver has to prove: terminals and allow-lists through the agent, the files API, sweeping. */
void describe('microvm driver specifics', { skip }, () => {
  let ctx: ConformanceContext;
  let api: { server: Server; port: number };
  let evil: { server: Server; port: number };
  // The allow-list's "outside world": servers on host loopback addresses, reached by names the daemon pins.
  const opts = {
    ...OPTS,
    allowPrivate: ['127.0.0.2/32', '127.0.0.3/32'],
    pinnedHosts: { 'api.example.com': '127.0.0.2', 'evil.example.com': '127.0.0.3' },
  };
  before(async () => {
    api = await echoServer('127.0.0.2');
    evil = await echoServer('127.0.0.3');
    ctx = new ConformanceContext(DRIVER, await startTestDaemon(opts), opts);
  });
  after(async () => {
    await ctx.t.close();
    removeTestDirs(ctx.t);
    api.server.close();
    evil.server.close();
  });

  void it("a terminal: on the guest's own pseudo-terminal, its size and changes, Ctrl-C, the exit code", async () => {
    const sb = await ctx.sandbox();
    // A failure must not leave the WebSocket open: the daemon's close would wait for it.
    let term: Interactive | undefined;
    try {
      term = await sb.attach(['/bin/bash', '--norc', '-i'], { rows: 30, cols: 100 });
      let out = '';
      term.onData((_s, d) => (out += d));
      term.write('tty; stty size; stat -c "%U %a" $(tty); uname -r\n');
      await until(
        () => out,
        /\/dev\/pts\/\d+\s+30 100\s+user 620\s+\S+cloud-amd64/,
        'the tty, its size and owner, the guest kernel',
      );
      term.resize(40, 120);
      term.write('stty size\n');
      await until(() => out, /40 120/, 'the new size');
      term.write('sleep 100\n');
      // Ctrl-C once sleep runs (under emulation the shell takes a while), and the next line once the
      // shell is back: the signal character flushes whatever was typed ahead.
      const running = [
        '/usr/bin/python3',
        '-c',
        [
          'import os, time',
          'def running():',
          "    for p in os.listdir('/proc'):",
          '        try:',
          "            if p.isdigit() and open('/proc/%s/cmdline' % p, 'rb').read() == b'sleep' + bytes(1) + b'100' + bytes(1): return True",
          '        except OSError: pass',
          'while not running(): time.sleep(0.1)',
        ].join('\n'),
      ];
      assert.equal((await sb.exec(running, { timeout: '60s' })).exitCode, 0);
      term.resize(41, 121);
      term.write('\x03'); // Ctrl-C reaches the program as SIGINT through the terminal's line discipline
      await until(() => out, /\^C[\s\S]*\$ $/, 'the prompt after Ctrl-C');
      term.write('echo after-interrupt $?\n');
      await until(() => out, /after-interrupt 130/, 'the interrupted sleep');
      term.write('stty size; exit 7\n');
      assert.deepEqual(await term.exited, { exitCode: 7, signal: null });
      assert.match(out, /41 121/);
    } finally {
      term?.close();
      await sb.destroy();
    }
    assert.deepEqual(await leftovers(ctx.t), []);
  });

  void it('stdin the program has not read yet waits outside it: other execs run meanwhile', async () => {
    const sb = await ctx.sandbox();
    // 4 MiB for a program that reads only once another exec says so: the agent must go on
    // serving (the next exec) while the pipe is full, not block writing into it.
    const reader = sb.exec(
      [
        '/usr/bin/python3',
        '-c',
        'import os, sys, time\nwhile not os.path.exists("/tmp/go"): time.sleep(0.05)\nprint(len(sys.stdin.buffer.read()))',
      ],
      { stdin: 'x'.repeat(4 << 20), timeout: '120s' },
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await sb.exec('touch /tmp/go && echo told', { timeout: '60s' })).stdout, 'told\n');
    const r = await reader;
    assert.equal(r.stdout, `${4 << 20}\n`, r.stderr);
    await sb.destroy();
  });

  void it('an allow-list: allowed hosts through the proxy at 127.0.0.1:3128, others refused, no other way out', async () => {
    const sb = await ctx.sandbox({
      allow: ['api.example.com'],
      inject: [{ host: `api.example.com:${api.port}`, header: 'X-Api-Key', value: 's3cret-value' }],
    });
    const curl = async (args: string): Promise<string> =>
      (await sb.exec(`curl -s -m 20 -o - -w ' HTTP%{http_code}' ${args} 2>&1; true`, { timeout: '60s' })).stdout;
    const plain = await curl(`http://api.example.com:${api.port}/x`);
    assert.match(plain, /"host":"127\.0\.0\.2"/);
    assert.match(plain, /"x-api-key":"s3cret-value"/, 'the proxy adds the header outside the VM');
    assert.match(plain, /HTTP200/);
    assert.match(await curl(`--proxytunnel http://api.example.com:${api.port}/`), /HTTP200/);
    assert.match(await curl(`http://evil.example.com:${evil.port}/`), /HTTP403/);
    assert.match(
      await curl(`-x http://127.0.0.1:3128 --noproxy '' http://127.0.0.1:${new URL(ctx.t.url).port}/v1/health`),
      /HTTP403/,
    );
    // Around the proxy: only lo, no route, and the host's loopback is not the VM's.
    const around = await sb.exec(
      [
        '/usr/bin/python3',
        '-c',
        [
          'import socket',
          'def tcp(h, p):',
          '    s = socket.socket(); s.settimeout(3)',
          '    try:',
          '        s.connect((h, p)); return "connected"',
          '    except OSError as e:',
          '        return type(e).__name__',
          "print(open('/proc/net/dev').read().count(':'), len(open('/proc/net/route').read().splitlines()) - 1)",
          `print(tcp("127.0.0.2", ${api.port}), tcp("10.0.2.2", ${api.port}))`,
        ].join('\n'),
      ],
      { timeout: '60s' },
    );
    assert.equal(around.stdout.split('\n')[0], '1 0', 'an allow-list VM has only lo and no route');
    assert.doesNotMatch(around.stdout, /connected/, around.stdout + around.stderr);
    // ssh's ProxyCommand (GIT_SSH_COMMAND) is the agent itself inside: a refusal is its exit code.
    const denied = await sb.exec(`/.realm/init connect evil.example.com ${evil.port}`, { stdin: 'x', timeout: '60s' });
    assert.equal(denied.exitCode, 1);
    assert.match(denied.stderr, /proxy refused evil\.example\.com/);
    // The CA files of injections are where the namespace driver puts them; the secret never is.
    assert.equal(
      (await sb.exec('ls /.realm/net; grep -rs s3cret /.realm /etc /home /tmp; true')).stdout,
      'ca-bundle.crt\nproxy.sock\nrealm-ca.crt\n',
    );
    const refused = (await sb.network()).denied.map((d) => `${d.host}:${d.port}`);
    assert.ok(refused.includes(`evil.example.com:${evil.port}`), refused.join(' '));
    await sb.destroy();
    assert.deepEqual(await leftovers(ctx.t), []);
  });

  void it('a fork bomb meets the pids limit inside the guest; the sandbox lives on', async () => {
    const sb = await ctx.sandbox({ pids: 32 });
    const dir = join(ctx.t.dataDir, 'sandboxes', sb.id);
    // The bomb runs under a parent that cannot die of it (python), so the exec ends only by its
    // timeout, which kills the exec's whole cgroup: the same end however fast the guest runs.
    const r = await sb.exec(
      [
        '/usr/bin/python3',
        '-c',
        "import subprocess, time\nsubprocess.Popen(['/bin/sh', '-c', 'bomb() { bomb | bomb & }; bomb'])\ntime.sleep(600)",
      ],
      { timeout: '20s' },
    );
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

  void it("a volume is a virtiofs share: the guest user's files, the storage uid's on the host; kept after destroy; read-only where asked", async () => {
    const a = await ctx.sandbox({ volumes: [{ volume: 'mv-vol', path: '/home/user/v' }] });
    const w = await a.exec('echo kept > ~/v/f && mkdir ~/v/d && stat -c "%u %g" ~/v ~/v/f ~/v/d');
    assert.equal(w.stdout, '1000 1000\n1000 1000\n1000 1000\n', w.stderr);
    await a.destroy();
    const host = join(ctx.t.dataDir, 'volumes', 'mv-vol');
    assert.equal(readFileSync(join(host, 'f'), 'utf8'), 'kept\n');
    for (const f of ['f', 'd'])
      assert.equal(statSync(join(host, f)).uid, STORAGE_UID, `${f} on the host (volumes at rest are the storage uid's)`);
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
    assert.deepEqual(
      (await sb.files.list('d')).map((f) => f.name),
      ['a.txt'],
    );
    await sb.destroy();
    assert.deepEqual(await leftovers(ctx.t), []);
  });

  void it('a daemon killed hard: its network "all" and allow-list VMs carry on after the restart', async () => {
    const all = await ctx.sandbox({ network: 'all' });
    const listed = await ctx.sandbox({ allow: ['api.example.com'] });
    const get = `curl -s -m 20 -o /dev/null -w '%{http_code}' http://api.example.com:${api.port}/`;
    assert.equal((await listed.exec(get, { timeout: '60s' })).stdout, '200');
    await ctx.restart();
    // The relay's new session: the forwarder dropped what the old daemon carried and goes on.
    const again = await Sandbox.get(listed.id, ctx.client);
    assert.equal((await again.exec(get, { timeout: '60s' })).stdout, '200');
    const ifaces = await (
      await Sandbox.get(all.id, ctx.client)
    ).exec("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '");
    assert.equal(ifaces.stdout.trim(), 'eth0 lo');
    const qemu = (await ctx.t.daemon.engine.getSandbox(all.id)).driverState.pid as number;
    assert.equal(hostProcs(`/proc/${qemu}/ns/net`).length, 1, "one slirp4netns serves the VM's namespace");
    await again.destroy();
    await (await Sandbox.get(all.id, ctx.client)).destroy();
    assert.deepEqual(hostProcs(`/proc/${qemu}/ns/net`), [], 'slirp4netns outlived its VM');
    assert.deepEqual(await leftovers(ctx.t), []);
  });

  void it('a daemon killed hard leaves VMs that the next start sweeps when their records are gone', async () => {
    // Network "all": slirp4netns, outside QEMU's argv, must go with it.
    const sb = await ctx.sandbox({ network: 'all' });
    const pid = (await ctx.t.daemon.engine.getSandbox(sb.id)).driverState.pid as number;
    assert.equal(hostProcs(`/proc/${pid}/ns/net`).length, 1);
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
    for (let i = 0; i < 100 && hostProcs(`/proc/${pid}/ns/net`).length; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(hostProcs(`/proc/${pid}/ns/net`), [], "the orphan's slirp4netns was left");
    assert.deepEqual(await leftovers(ctx.t), []);
  });
});
