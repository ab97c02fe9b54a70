/**
 * Allow-list networking, enforced outside the sandbox. The "outside world" is servers this test
 * runs on host loopback addresses (127.0.0.2, 127.0.0.3), reached by names the daemon pins.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { type Server, createServer } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { type Server as HttpsServer, createServer as createHttpsServer } from 'node:https';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProxyCa } from '../../src/net/ca.js';
import { after, before, describe, it } from 'node:test';
import { InvalidRequestError, Sandbox, run } from '@realm/sdk';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping network policy tests: ${skip}`);

/** An HTTP server that answers with the headers it got. */
async function echoServer(host: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => res.end(JSON.stringify({ host, headers: req.headers })));
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  return { server, port: (server.address() as AddressInfo).port };
}

void describe('network allow-lists', { skip }, () => {
  let t: TestDaemon;
  let api: { server: Server; port: number };
  let evil: { server: Server; port: number };
  let other: { server: Server; port: number };
  before(async () => {
    api = await echoServer('127.0.0.2');
    evil = await echoServer('127.0.0.3');
    other = await echoServer('127.0.0.2');
    t = await startTestDaemon({
      allowPrivate: ['127.0.0.2/32', '127.0.0.3/32'],
      pinnedHosts: { 'api.example.com': '127.0.0.2', 'evil.example.com': '127.0.0.3' },
    });
  });
  after(async () => {
    await t.close();
    removeTestDirs(t);
    for (const s of [api, evil, other]) s.server.close();
  });

  void it('allowed hosts work through the proxy; everything else fails; secrets stay outside', async () => {
    const sb = await Sandbox.create(
      {
        allow: ['*.example.com'],
        deny: ['evil.example.com'],
        inject: [{ host: `api.example.com:${api.port}`, header: 'X-Api-Key', value: 's3cret-value' }],
      },
      t.client,
    );
    const curl = async (args: string): Promise<string> =>
      (await sb.exec(`curl -s -m 5 -o - -w ' HTTP%{http_code}' ${args} 2>&1; true`)).stdout;
    // Allowed: plain HTTP (with the injected header), CONNECT, and python's urllib.
    const plain = await curl(`http://api.example.com:${api.port}/x`);
    assert.match(plain, /"host":"127\.0\.0\.2"/);
    assert.match(plain, /"x-api-key":"s3cret-value"/);
    assert.match(plain, /HTTP200/);
    assert.match(await curl(`--proxytunnel http://api.example.com:${api.port}/`), /HTTP200/);
    const py = await sb.exec([
      '/usr/bin/python3',
      '-c',
      `import urllib.request; print(urllib.request.urlopen("http://api.example.com:${api.port}/").status)`,
    ]);
    assert.equal(py.stdout.trim(), '200', py.stderr);
    // Denied: a denied name, a raw IP, and the daemon's own API, through the proxy.
    assert.match(await curl(`http://evil.example.com:${evil.port}/`), /HTTP403/);
    assert.match(await curl(`--proxytunnel http://evil.example.com:${evil.port}/`), /HTTP000|HTTP403|CONNECT/);
    const viaProxy = "-x http://127.0.0.1:3128 --noproxy ''";
    assert.match(await curl(`${viaProxy} http://127.0.0.2:${api.port}/`), /HTTP403/);
    const apiPort = new URL(t.url).port;
    assert.match(await curl(`${viaProxy} http://127.0.0.1:${apiPort}/v1/health`), /HTTP403/);
    assert.match(await curl(`${viaProxy} http://localhost:${apiPort}/v1/health`), /HTTP403/);
    // Around the proxy: no route anywhere; the sandbox's loopback is its own.
    const direct = await sb.exec([
      '/usr/bin/python3',
      '-c',
      [
        'import socket',
        'def tcp(h, p, fam=socket.AF_INET):',
        '    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(2)',
        '    try:',
        '        s.connect((h, p)); return "connected"',
        '    except OSError as e:',
        '        return type(e).__name__',
        `print(tcp("127.0.0.2", ${api.port}), tcp("127.0.0.1", ${apiPort}), tcp("::1", ${apiPort}, socket.AF_INET6), tcp("10.0.0.1", 80), tcp("::ffff:127.0.0.2", ${api.port}, socket.AF_INET6))`,
      ].join('\n'),
    ]);
    assert.doesNotMatch(direct.stdout, /connected/, direct.stdout + direct.stderr);
    // UDP to a host listener never arrives.
    const udp = createSocket('udp4');
    let got = 0;
    udp.on('message', () => void got++);
    await new Promise<void>((r) => udp.bind(0, '127.0.0.2', () => r()));
    const udpPort = udp.address().port;
    await sb.exec([
      '/usr/bin/python3',
      '-c',
      `import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor h in ("127.0.0.2", "10.0.0.1"):\n    try: s.sendto(b"x", (h, ${udpPort}))\n    except OSError: pass`,
    ]);
    await new Promise((r) => setTimeout(r, 200));
    udp.close();
    assert.equal(got, 0, 'a UDP datagram from the sandbox reached the host');
    // The secret never entered the sandbox; the API does not show it either.
    assert.doesNotMatch(
      (await sb.exec('env; cat /proc/1/environ 2>/dev/null; grep -rs s3cret /etc /home /tmp /.realm; true')).stdout,
      /s3cret/,
    );
    assert.doesNotMatch(JSON.stringify(await Sandbox.get(sb.id, t.client)), /s3cret/);
    // Every refusal is logged with host and port.
    const net = await sb.network();
    const denied = net.denied.map((d) => `${d.host}:${d.port}`);
    for (const d of [`evil.example.com:${evil.port}`, `127.0.0.2:${api.port}`, `127.0.0.1:${apiPort}`])
      assert.ok(denied.includes(d), `${d} not in ${denied.join(' ')}`);
    await sb.destroy();
  });

  void it('ports in rules, and the proxy after a daemon restart', async () => {
    const sb = await Sandbox.create({ allow: [`api.example.com:${api.port}`] }, t.client);
    const code = async (url: string): Promise<string> =>
      (await sb.exec(`curl -s -m 5 -o /dev/null -w '%{http_code}' ${url}; true`)).stdout;
    assert.equal(await code(`http://api.example.com:${api.port}/`), '200');
    assert.equal(await code(`http://api.example.com:${other.port}/`), '403');
    const { dataDir, cgroupRoot } = t;
    await t.close({ keepSandboxes: true });
    t = await startTestDaemon({
      dataDir,
      cgroupRoot,
      allowPrivate: ['127.0.0.2/32', '127.0.0.3/32'],
      pinnedHosts: { 'api.example.com': '127.0.0.2', 'evil.example.com': '127.0.0.3' },
    });
    const again = await Sandbox.get(sb.id, t.client);
    assert.equal(
      (await again.exec(`curl -s -m 5 -o /dev/null -w '%{http_code}' http://api.example.com:${api.port}/; true`)).stdout,
      '200',
    );
    await again.destroy();
    assert.deepEqual(await leftovers(t), []);
  });

  void it('ssh goes through the proxy too: GIT_SSH_COMMAND tunnels to allowed host:port only', async () => {
    // A stand-in ssh server: its banner, then an echo of the first thing it gets, then it hangs up.
    const banner = createNetServer((c) => {
      c.write('SSH-2.0-realmtest\r\n');
      c.on('data', (d: Buffer) => c.end(d));
      c.on('error', () => undefined);
    });
    await new Promise<void>((r) => banner.listen(0, '127.0.0.2', () => r()));
    const port = (banner.address() as AddressInfo).port;
    try {
      const sb = await Sandbox.create({ allow: [`api.example.com:${port}`] }, t.client);
      const tunnel = await sb.exec(`/.realm/init connect api.example.com ${port}`, { stdin: 'hello\n' });
      assert.equal(tunnel.stdout, 'SSH-2.0-realmtest\r\nhello\n', tunnel.stderr);
      const ssh = await sb.exec(
        `eval "$GIT_SSH_COMMAND -v -o BatchMode=yes -o ConnectTimeout=5 -p ${port} git@api.example.com true" 2>&1; true`,
      );
      assert.match(ssh.stdout, /remote software version realmtest/, ssh.stdout);
      const denied = await sb.exec(`/.realm/init connect evil.example.com ${port}`, { stdin: 'x' });
      assert.equal(denied.exitCode, 1);
      assert.match(denied.stderr, /proxy refused evil\.example\.com/);
      await sb.destroy();
    } finally {
      banner.close();
    }
  });

  void it('SOCKS5 on the same port follows the same rules; UDP through it is refused', async () => {
    const sb = await Sandbox.create({ allow: ['api.example.com'] }, t.client);
    const curl = async (args: string): Promise<string> =>
      (await sb.exec(`curl -s -m 5 -o - -w ' HTTP%{http_code} EXIT' ${args} 2>&1; echo $?`)).stdout;
    assert.match(
      await curl(`--socks5-hostname 127.0.0.1:3128 http://api.example.com:${api.port}/`),
      /"host":"127\.0\.0\.2"[\s\S]*HTTP200 EXIT0/,
    );
    assert.match(await curl(`--socks5-hostname 127.0.0.1:3128 http://evil.example.com:${evil.port}/`), /HTTP000 EXIT97/);
    assert.match(await curl(`--socks5 127.0.0.1:3128 http://127.0.0.2:${api.port}/`), /HTTP000 EXIT97/);
    // UDP ASSOCIATE, by hand: the reply is "command not supported".
    const udp = await sb.exec([
      '/usr/bin/python3',
      '-c',
      [
        'import socket',
        's = socket.create_connection(("127.0.0.1", 3128))',
        's.sendall(bytes([5, 1, 0]))',
        'assert s.recv(2) == bytes([5, 0])',
        's.sendall(bytes([5, 3, 0, 1, 0, 0, 0, 0, 0, 53]))',
        'print(s.recv(10)[1])',
      ].join('\n'),
    ]);
    assert.equal(udp.stdout.trim(), '7', udp.stderr);
    const denied = (await sb.network()).denied.map((d) => `${d.host}:${d.port}`);
    assert.ok(
      denied.includes(`evil.example.com:${evil.port}`) && denied.includes(`127.0.0.2:${api.port}`),
      JSON.stringify(denied),
    );
    await sb.destroy();
  });

  void it('bad rules are refused with what to write instead', async () => {
    for (const bad of [
      { allow: ['not a host'] },
      { allow: ['a.com:99999'] },
      { allow: ['x.com'], network: 'all' as const },
      { deny: ['x.com'] },
      { allow: ['x.com'], inject: [{ host: 'x.com', header: 'Bad Header', value: 'v' }] },
    ]) {
      await assert.rejects(Sandbox.create(bad, t.client), InvalidRequestError, JSON.stringify(bad));
    }
  });
});

void describe('secrets injected into HTTPS', { skip }, () => {
  let t: TestDaemon;
  let dir: string;
  let secure: HttpsServer;
  let port: number;
  before(async () => {
    // The "real" API: HTTPS with a certificate from a CA of its own, which the daemon is told to trust.
    dir = mkdtempSync(join(tmpdir(), 'realm-tls-'));
    const upstream = await ProxyCa.open(join(dir, 'upstream'), 'test upstream CA');
    const { cert, key } = await upstream.issue('api.example.com');
    writeFileSync(join(dir, 'upstream-ca.pem'), upstream.certPem);
    secure = createHttpsServer({ cert, key }, (req, res) => res.end(JSON.stringify({ tls: true, headers: req.headers })));
    await new Promise<void>((r) => secure.listen(0, '127.0.0.2', () => r()));
    port = (secure.address() as AddressInfo).port;
    t = await startTestDaemon({
      allowPrivate: ['127.0.0.2/32', '127.0.0.3/32'],
      pinnedHosts: { 'api.example.com': '127.0.0.2', 'other.example.com': '127.0.0.2' },
      proxyUpstreamCa: join(dir, 'upstream-ca.pem'),
    });
  });
  after(async () => {
    await t.close();
    removeTestDirs(t);
    secure.close();
    rmSync(dir, { recursive: true, force: true });
  });

  void it('the header reaches the HTTPS server; the sandbox never holds the secret; other hosts are not intercepted', async () => {
    const sb = await Sandbox.create(
      { allow: ['*.example.com'], inject: [{ host: 'api.example.com', header: 'Authorization', value: 'Bearer tls-s3cret' }] },
      t.client,
    );
    const got = await sb.exec(`curl -s -m 5 https://api.example.com:${port}/v1 2>&1`);
    assert.match(got.stdout, /"tls":true/, got.stdout);
    assert.match(got.stdout, /"authorization":"Bearer tls-s3cret"/);
    const py = await sb.exec([
      '/usr/bin/python3',
      '-c',
      `import urllib.request, json; print(json.loads(urllib.request.urlopen("https://api.example.com:${port}/").read())["headers"].get("authorization"))`,
    ]);
    assert.equal(py.stdout.trim(), 'Bearer tls-s3cret', py.stderr);
    // Another host on the same server is tunnelled untouched: its certificate is not one the sandbox trusts.
    const other = await sb.exec(`curl -s -m 5 -o /dev/null -w '%{http_code}' https://other.example.com:${port}/; echo " $?"`);
    assert.equal(other.stdout.trim(), '000 60', 'a host without injection is not intercepted');
    const inside = await sb.exec('env; cat /.realm/net/* 2>/dev/null; grep -rs tls-s3cret /home /tmp /etc /.realm; true');
    assert.doesNotMatch(inside.stdout, /tls-s3cret/);
    assert.doesNotMatch(inside.stdout, /PRIVATE KEY/, 'the proxy CA key never enters the sandbox');
    await sb.destroy();
    assert.deepEqual(await leftovers(t), []);
  });
});

void describe('network all', { skip }, () => {
  let t: TestDaemon;
  const ns = `realm-t${process.pid}`;
  const veth = `rlm${process.pid % 100000}`;
  let server: ChildProcess | undefined;
  const port = 18000 + (process.pid % 1000);
  const sh = (cmd: string): string => execSync(cmd, { encoding: 'utf8' });
  before(async () => {
    t = await startTestDaemon();
    // A host of our own: a network namespace joined to the host by a veth pair, serving HTTP.
    sh(`ip netns add ${ns}`);
    sh(`ip link add ${veth}h type veth peer name ${veth}n`);
    sh(`ip link set ${veth}n netns ${ns}`);
    sh(`ip addr add 198.19.7.1/30 dev ${veth}h && ip link set ${veth}h up`);
    sh(`ip netns exec ${ns} sh -c 'ip addr add 198.19.7.2/30 dev ${veth}n && ip link set ${veth}n up && ip link set lo up'`);
    server = spawn('ip', ['netns', 'exec', ns, '/usr/bin/python3', '-m', 'http.server', String(port), '--bind', '198.19.7.2'], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 100; i++) {
      try {
        if ((await fetch(`http://198.19.7.2:${port}/`)).ok) break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });
  after(async () => {
    server?.kill();
    try {
      sh(`ip link del ${veth}h 2>/dev/null; ip netns del ${ns}`);
    } finally {
      await t.close();
      removeTestDirs(t);
    }
  });

  void it('reaches other hosts through its own namespace, never the host loopback', async () => {
    const sb = await Sandbox.create({ network: 'all' }, t.client);
    assert.equal((await sb.exec(`curl -s -m 5 -o /dev/null -w '%{http_code}' http://198.19.7.2:${port}/; true`)).stdout, '200');
    const apiPort = new URL(t.url).port;
    assert.equal(
      (await sb.exec(`curl -s -m 3 -o /dev/null -w '%{http_code}' http://10.0.2.2:${apiPort}/v1/health; true`)).stdout,
      '000',
    );
    await sb.destroy();
    const r = await run(
      {
        language: 'python',
        code: `import urllib.request; print(urllib.request.urlopen("http://198.19.7.2:${port}/").status)`,
        network: 'all',
      },
      t.client,
    );
    assert.equal(r.stdout, '200\n', r.stderr);
    assert.deepEqual(await leftovers(t), []);
  });
});
