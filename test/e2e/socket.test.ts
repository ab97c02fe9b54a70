/**
 * The daemon's unix socket: root there is the admin without a token; the SDK (socketPath or a
 * `unix:` URL) and the CLI work over it, streams and WebSockets included; the socket is 0666 in
 * a directory nobody else may write, removed on close; a stale one is replaced, a live one is not.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Sandbox, tokens } from '@realm/sdk';
import { egressProblem } from '../../src/net/egress.js';
import { realm } from '../helpers/cli.js';
import {
  egressRootLeft,
  leftovers,
  namespaceSkipReason,
  removeTestDirs,
  startTestDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping socket tests: ${skip}`);

void describe('unix socket', { skip }, () => {
  let t: TestDaemon;
  let dir = '';
  before(async () => {
    if (skip) return;
    dir = mkdtempSync(join(tmpdir(), 'realm-sock-'));
    chmodSync(dir, 0o755);
    t = await startTestDaemon({ warm: 0, socket: join(dir, 'api.sock') });
  });
  after(async () => {
    if (skip) return;
    await t.close();
    assert.ok(!existsSync(t.socket), 'the socket is left after close');
    assert.deepEqual(await leftovers({ dataDir: t.dataDir, cgroupRoot: t.cgroupRoot }), []);
    removeTestDirs(t);
    rmSync(dir, { recursive: true, force: true });
  });

  void it('is mode 0666; root there is the admin without a token; the SDK streams and attaches over it', async () => {
    assert.equal(statSync(t.socket).mode & 0o777, 0o666);
    const c = new Client({ socketPath: t.socket, token: '' });
    const made = await tokens.create('over-socket', c);
    assert.equal((await tokens.list(c)).find((x) => x.id === made.id)?.owner, 'uid:0');
    await tokens.revoke(made.id, c);
    const sb = await Sandbox.create({}, new Client({ url: `unix:${t.socket}`, token: '' }));
    try {
      assert.equal((await sb.exec('echo hi')).stdout, 'hi\n');
      let streamed = '';
      for await (const e of sb.execStream('echo one; echo two')) if (e.type === 'stdout') streamed += e.data;
      assert.equal(streamed, 'one\ntwo\n');
      await sb.files.write('/home/user/f.txt', 'over the socket');
      assert.equal(await sb.files.readText('/home/user/f.txt'), 'over the socket');
      const p = await sb.attach(['/bin/sh', '-c', 'cat'], { tty: false });
      let out = '';
      p.onData((_s, d) => (out += d));
      p.write('typed\n');
      p.eof();
      assert.equal((await p.exited).exitCode, 0);
      assert.equal(out, 'typed\n');
    } finally {
      await sb.destroy();
    }
  });

  void it('the CLI talks over it by default (REALM_SOCKET, no REALM_URL, no token)', async () => {
    const r = await realm(['run', 'bash', '-c', 'echo via-socket'], {
      env: { REALM_SOCKET: t.socket, REALM_URL: undefined, REALM_TOKEN: undefined },
    });
    assert.equal(r.stdout, 'via-socket\n', r.stderr);
    assert.doesNotMatch(r.stderr, /started/);
  });

  void it('a second daemon does not take a live socket; a stale one is replaced', async () => {
    // Each with a cgroup root of its own: a start that fails (or a daemon that stops) leaves none behind.
    const root = (n: number): string => `realm-test-sock-${process.pid}-${n}`;
    await assert.rejects(startTestDaemon({ warm: 0, socket: t.socket, cgroupRoot: root(1) }), /another daemon serves/);
    assert.deepEqual(egressRootLeft(root(1)), [], 'a daemon that failed to start left its cgroup root');
    const d = mkdtempSync(join(tmpdir(), 'realm-sock-'));
    try {
      // A socket file nobody listens on, as a daemon that was killed leaves it.
      const stale = join(d, 'api.sock');
      execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', stale]);
      assert.ok(statSync(stale).isSocket());
      const second = await startTestDaemon({ warm: 0, socket: stale, cgroupRoot: root(2) });
      try {
        assert.equal((await new Client({ socketPath: stale }).request<{ status: string }>('GET', '/v1/health')).status, 'ok');
        // Where network "all" can be guarded, a running daemon has one (so this check can see it).
        if (!egressProblem()) assert.equal(egressRootLeft(root(2)).length, 1);
      } finally {
        await second.close();
        assert.deepEqual(egressRootLeft(root(2)), [], 'a daemon that stopped left its cgroup root');
        removeTestDirs(second);
      }
      chmodSync(d, 0o777);
      await assert.rejects(startTestDaemon({ warm: 0, socket: stale, cgroupRoot: root(3) }), /writable by others/);
      assert.deepEqual(egressRootLeft(root(3)), [], 'a daemon that failed to start left its cgroup root');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
