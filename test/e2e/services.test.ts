/**
 * Process services on one node: push (API/SDK) a python http.server with replicas, reach them
 * through the gateway, crash one and see it restarted, scale, restart, health gating, removal
 * leaving nothing, and bad input refused with stable codes.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { RealmError, type ServiceInfo } from '@realm/sdk';
import { type CliResult, realm as realmCli } from '../helpers/cli.js';
import type { HeldEvent } from '../../src/engine/events.js';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { until } from '../helpers/until.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping service tests: ${skip}`);

/** Each replica writes an id of its own, then serves its home. */
const COMMAND =
  'head -c8 /dev/urandom | od -An -tx1 | tr -d " \\n" > id.txt && touch ok && exec /usr/bin/python3 -m http.server 8000';

void describe('process services', { skip }, () => {
  let t: TestDaemon;
  let gw = '';
  before(async () => {
    if (skip) return;
    t = await startTestDaemon({ warm: 0, gateway: '127.0.0.1:0' });
    gw = t.daemon.gatewayUrl ?? '';
  });
  after(async () => {
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  const ids = async (name: string, n: number): Promise<string[]> => {
    const seen: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${gw}/${name}/id.txt`);
      assert.equal(res.status, 200);
      seen.push(await res.text());
    }
    return seen;
  };
  const healthy = (name: string, n: number): Promise<ServiceInfo> =>
    until(`${n} healthy replicas of ${name}`, async () => {
      const s = await t.client.services.get(name);
      return s.healthy === n && s.replicaList.length === n ? s : undefined;
    });

  void it('serves a process service with 2 replicas through the gateway, both answering', async () => {
    const s = await t.client.services.push({
      name: 'web',
      image: 'host',
      command: COMMAND,
      port: 8000,
      replicas: 2,
      memory: '256m',
      tags: ['eu'],
      restart: { delay: '200ms' },
    });
    assert.equal(s.replicas, 2);
    assert.equal(s.visibility, 'local');
    assert.deepEqual(s.tags, ['eu']);
    assert.equal(s.health.intervalMs, 10_000);
    assert.equal(s.restart.maxDelayMs, 3_600_000);
    const up = await healthy('web', 2);
    const seen = new Set(await ids('web', 10));
    assert.equal(seen.size, 2, 'both replicas answered');
    // The prefix is stripped: the replica sees /, and its listing names its own files.
    const listing = await (await fetch(`${gw}/web/`)).text();
    assert.match(listing, /id\.txt/);
    assert.equal(
      up.replicaList.every((r) => r.healthy),
      true,
    );
    // A replica's life is its service's: no TTL of its own (it would be destroyed, then made again).
    await assert.rejects(
      t.client.request('PATCH', `/v1/sandboxes/${up.replicaList[0]?.sandbox ?? ''}`, { ttl: '1m' }),
      (e: Error & { code?: string }) =>
        e.code === 'INVALID_REQUEST' && /is a replica of service web, which decides its life/.test(e.message),
    );
    assert.equal(
      (await t.client.services.list()).some((x) => x.name === 'web'),
      true,
    );
  });

  void it('restarts a replica whose process was killed, the other serving meanwhile', async () => {
    const before = await healthy('web', 2);
    const victim = before.replicaList[0];
    assert.ok(victim);
    // Each change is an event (what /v1/events streams): the crash, the new replica, its health.
    const seen: HeldEvent[] = [];
    const off = t.daemon.engine.events.subscribe((e) => {
      if (e.type.startsWith('service.')) seen.push(e);
    });
    await t.client.request('POST', `/v1/sandboxes/${victim.sandbox}/processes/${victim.process}/signal`, { signal: 'SIGKILL' });
    // Traffic goes on meanwhile.
    assert.equal((await ids('web', 4)).length, 4);
    const after = await until('a restart', async () => {
      const s = await t.client.services.get('web');
      return s.restarts >= 1 && s.healthy === 2 && !s.replicaList.some((r) => r.id === victim.id) ? s : undefined;
    });
    assert.match(after.lastError ?? '', /exited/);
    off();
    const types = seen.filter((e) => e.ids.service === 'web').map((e) => e.type);
    const exited = seen.find((e) => e.type === 'service.replica.exited');
    assert.equal(exited?.data.replica, victim.id, JSON.stringify(seen));
    assert.equal(exited?.ids.sandbox, victim.sandbox);
    const fresh = seen.find((e) => e.type === 'service.replica.started');
    assert.ok(fresh && types.indexOf('service.replica.started') > types.indexOf('service.replica.exited'), types.join(' '));
    assert.ok(
      seen.some((e) => e.type === 'service.replica.healthy' && e.data.replica === fresh.data.replica),
      types.join(' '),
    );
    await assert.rejects(
      t.client.request('GET', `/v1/sandboxes/${victim.sandbox}`),
      (e: unknown) => e instanceof RealmError && e.code === 'SANDBOX_NOT_FOUND',
    );
    const logs: string[] = [];
    for await (const chunk of t.client.services.logs('web')) logs.push(chunk);
    assert.match(logs.join(''), /restarting in/);
    assert.match(logs.join(''), /GET \/id\.txt/);
  });

  void it('scales 2 → 1 → 3', async () => {
    const scaled: unknown[] = [];
    const off = t.daemon.engine.events.subscribe((e) => {
      if (e.type === 'service.scaled' && e.ids.service === 'web') scaled.push(e.data.replicas);
    });
    await t.client.services.scale('web', 1);
    await healthy('web', 1);
    await until('one sandbox left', async () =>
      (await t.daemon.engine.listSandboxes()).filter((s) => s.labels['realm.service'] === 'web').length === 1 ? true : undefined,
    );
    await t.client.services.scale('web', 3);
    await healthy('web', 3);
    off();
    assert.deepEqual(scaled, [1, 3]);
    assert.equal(new Set(await ids('web', 12)).size, 3);
  });

  void it('restart replaces every replica', async () => {
    const before = await healthy('web', 3);
    const restarted = await t.client.services.restart('web');
    assert.equal(restarted.generation, before.generation + 1);
    const after = await until('every replica replaced', async () => {
      const s = await t.client.services.get('web');
      return s.healthy === 3 && s.replicaList.length === 3 && s.replicaList.every((r) => r.generation === restarted.generation)
        ? s
        : undefined;
    });
    const old = new Set(before.replicaList.map((r) => r.sandbox));
    assert.equal(
      after.replicaList.some((r) => old.has(r.sandbox)),
      false,
    );
  });

  void it('a replica failing its health check gets no traffic', async () => {
    await t.client.services.push({
      name: 'checked',
      image: 'host',
      command: COMMAND,
      port: 8000,
      replicas: 2,
      health: { path: '/ok', interval: '200ms', threshold: 1 },
      restart: { delay: '200ms' },
    });
    const s = await healthy('checked', 2);
    const sick = s.replicaList[0];
    assert.ok(sick);
    const sickId = await t.daemon.engine.exec(sick.sandbox, {
      command: 'cat id.txt',
      env: {},
      cwd: '/home/user',
      timeout: 10_000,
      output: 1 << 20,
    });
    await t.daemon.engine.exec(sick.sandbox, { command: 'rm ok', env: {}, cwd: '/home/user', timeout: 10_000, output: 1 << 20 });
    await until('the replica unhealthy', async () => ((await t.client.services.get('checked')).healthy === 1 ? true : undefined));
    const seen = await ids('checked', 8);
    assert.equal(seen.includes(sickId.stdout), false, 'the unhealthy replica got no request');
    await t.client.services.remove('checked');
  });

  void it('streams request and response bodies both ways', async () => {
    const echo = [
      'import http.server',
      'class H(http.server.BaseHTTPRequestHandler):',
      '    protocol_version = "HTTP/1.1"',
      '    def do_POST(self):',
      '        n = int(self.headers["Content-Length"])',
      '        self.send_response(200)',
      '        self.send_header("Content-Length", str(n))',
      '        self.send_header("X-Path", self.path)',
      '        self.send_header("X-Prefix", self.headers.get("X-Forwarded-Prefix", ""))',
      '        self.end_headers()',
      '        while n > 0:',
      '            b = self.rfile.read(min(n, 65536))',
      '            self.wfile.write(b)',
      '            n -= len(b)',
      'http.server.HTTPServer(("127.0.0.1", 9000), H).serve_forever()',
    ].join('\n');
    await t.client.services.push({
      name: 'echo',
      image: 'host',
      command: `cat > echo.py <<'PY'\n${echo}\nPY\nexec /usr/bin/python3 echo.py`,
      port: 9000,
    });
    await healthy('echo', 1);
    const body = Buffer.alloc(4 << 20, 7);
    const res = await fetch(`${gw}/echo/a/b?c=1`, { method: 'POST', body });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-path'), '/a/b?c=1');
    assert.equal(res.headers.get('x-prefix'), '/echo');
    assert.equal(Buffer.from(await res.arrayBuffer()).equals(body), true);
    await t.client.services.remove('echo');
  });

  void it('passes an upgraded connection (as a WebSocket is) both ways', async () => {
    // A server that answers any request with 101 and then echoes bytes, in upper case.
    const server = [
      'import socket',
      's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
      's.bind(("127.0.0.1", 9100)); s.listen(8)',
      'while True:',
      '    c, _ = s.accept(); head = b""',
      '    while b"\\r\\n\\r\\n" not in head:',
      '        d = c.recv(4096)',
      '        if not d: break',
      '        head += d',
      '    if not head.startswith(b"GET /chat "): c.close(); continue',
      '    c.sendall(b"HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: echo\\r\\nConnection: Upgrade\\r\\n\\r\\n")',
      '    while True:',
      '        d = c.recv(4096)',
      '        if not d: break',
      '        c.sendall(d.upper())',
      '    c.close()',
    ].join('\n');
    await t.client.services.push({
      name: 'up',
      image: 'host',
      command: `cat > up.py <<'PY'\n${server}\nPY\nexec /usr/bin/python3 up.py`,
      port: 9100,
    });
    await healthy('up', 1);
    const echoed = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(`${gw}/up/chat`, { headers: { connection: 'Upgrade', upgrade: 'echo' } });
      req.once('error', reject);
      req.once('response', (r) => reject(new Error(`no upgrade: ${r.statusCode}`)));
      req.once('upgrade', (res, socket) => {
        assert.equal(res.statusCode, 101);
        let got = '';
        socket.on('data', (d: Buffer) => {
          got += d.toString();
          if (got.length >= 10) {
            socket.destroy();
            resolve(got);
          }
        });
        socket.write('hello');
        setTimeout(() => socket.write('world'), 50);
      });
      req.end();
    });
    assert.equal(echoed, 'HELLOWORLD');
    await t.client.services.remove('up');
  });

  void it('refuses bad input with stable codes', async () => {
    const bad = async (body: Record<string, unknown>, code: string): Promise<void> => {
      await assert.rejects(
        t.client.request('POST', '/v1/services', body),
        (e: unknown) => e instanceof RealmError && e.code === code,
      );
    };
    await bad({ name: 'x1', image: 'no-such-image', command: 'true', port: 8000 }, 'IMAGE_NOT_FOUND');
    await bad({ name: 'x1', image: 'host', command: 'true', port: 70000 }, 'INVALID_REQUEST');
    await bad({ name: 'x1', image: 'host', command: 'true', port: 0 }, 'INVALID_REQUEST');
    await bad({ name: 'Bad Name', image: 'host', command: 'true', port: 8000 }, 'INVALID_REQUEST');
    await assert.rejects(
      t.client.services.get('nope'),
      (e: unknown) => e instanceof RealmError && e.code === 'SERVICE_NOT_FOUND',
    );
    const res = await fetch(`${gw}/x1/`);
    assert.equal(res.status, 404);
  });

  void it('the CLI pushes, lists, inspects, scales, shows logs and removes', async () => {
    const cli = (args: string[]): Promise<CliResult> => realmCli(args, { url: t.url });
    const pushed = await cli([
      'push',
      'cli-web',
      '--image',
      'host',
      '--command',
      COMMAND,
      '--port',
      '8000',
      '--health-path',
      '/ok',
      '--tag',
      'x',
      '--stop-after-disconnect',
      '30s',
    ]);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stdout, /cli-web generation 1/);
    await healthy('cli-web', 1);
    const ls = await cli(['svc', 'ls']);
    assert.match(ls.stdout, /cli-web\s+process\s+1\s+1\s+1\s+0\s+8000\s+local/);
    const inspected = JSON.parse((await cli(['svc', 'inspect', 'cli-web'])).stdout) as ServiceInfo;
    assert.equal(inspected.health.path, '/ok');
    assert.deepEqual(inspected.tags, ['x']);
    assert.deepEqual(inspected.disconnect, { stopAfterMs: 30_000 }, 'taken alone too (it counts once the node is in a cluster)');
    assert.equal((await cli(['svc', 'scale', 'cli-web', '2'])).code, 0);
    await healthy('cli-web', 2);
    assert.match(
      (await cli(['svc', 'logs', 'cli-web'])).stdout,
      /\[cli-web-[0-9a-f]+ realm\] replica cli-web-[0-9a-f]+ is healthy/,
    );
    const both = await cli(['push', 'x2', '--image', 'host', '--file', 'a.wasm', '--command', 'true', '--port', '1']);
    assert.notEqual(both.code, 0);
    assert.match(both.stderr, /one or the other/);
    assert.equal((await cli(['svc', 'rm', 'cli-web'])).code, 0);
    assert.notEqual((await cli(['svc', 'inspect', 'cli-web'])).code, 0);
  });

  void it('rm leaves nothing: no sandbox, no process, no cgroup', async () => {
    await t.client.services.remove('web');
    assert.deepEqual(
      (await t.daemon.engine.listSandboxes()).map((s) => s.labels),
      [],
    );
    assert.deepEqual(await leftovers(t), []);
    // Nor a relay into a replica's network namespace.
    assert.equal((await fetch(`${gw}/web/id.txt`)).status, 404);
    await assert.rejects(t.client.services.get('web'), (e: unknown) => e instanceof RealmError && e.code === 'SERVICE_NOT_FOUND');
  });

  void it('a daemon restart brings the service back from its desired state, with fresh replicas', async () => {
    await t.client.services.push({ name: 'keep', image: 'host', command: COMMAND, port: 8000, restart: { delay: '200ms' } });
    const before = await healthy('keep', 1);
    const { dataDir, cgroupRoot } = t;
    await t.close({ keepSandboxes: true });
    t = await startTestDaemon({ warm: 0, gateway: '127.0.0.1:0', dataDir, cgroupRoot });
    gw = t.daemon.gatewayUrl ?? '';
    const after = await healthy('keep', 1);
    assert.notEqual(after.replicaList[0]?.sandbox, before.replicaList[0]?.sandbox);
    assert.equal((await ids('keep', 2)).length, 2);
    await t.client.services.remove('keep');
    assert.deepEqual(await leftovers(t), []);
  });
});
