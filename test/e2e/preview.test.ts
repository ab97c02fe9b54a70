/**
 * Preview URLs: `http://<port>-<sandbox>.realm.localhost:<gateway port>/` reaches a server bound
 * to 127.0.0.1 inside a namespace sandbox (python's http.server, and a WebSocket echo server of
 * the stdlib), only with a bearer token of the owner, a signed link (its cookie after) or a public
 * link; refused without, after revocation, after expiry and with another user's token. The
 * requests connect to the gateway's address and name the preview host in `Host` (Node does not
 * resolve *.localhost names itself; browsers and curl do).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { type IncomingHttpHeaders, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { WS_ECHO } from '../helpers/ws-echo.js';
import { Client, Sandbox } from '@realm/sdk';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { Tokens } from '../../src/daemon/auth.js';
import { realm } from '../helpers/cli.js';
import { daemonHooks, gvisorSkipReason, leftovers, namespaceSkipReason, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping preview URL tests: ${skip}`);

/** On 127.0.0.1:PORT: a POST's body is read as it comes and answered with its sha256 and length. */
const HASHER = String.raw`
import hashlib, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        n, h = int(self.headers["content-length"]), hashlib.sha256()
        left = n
        while left:
            b = self.rfile.read(min(left, 65536))
            if not b: break
            h.update(b); left -= len(b)
        out = ("%s %d" % (h.hexdigest(), n - left)).encode()
        self.send_response(200); self.send_header("content-length", str(len(out))); self.end_headers(); self.wfile.write(out)
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`;

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

void describe('preview URLs', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d), { gateway: '127.0.0.1:0', publicListen: '127.0.0.1:0' });

  const gw = (): URL => new URL(t.daemon.gatewayUrl ?? '');
  const pub = (): URL => new URL(t.daemon.publicUrl ?? '');
  // URLs name the preview-only listener's port (it exists here); the gateway serves them too.
  const hostFor = (id: string, port: number): string => `${port}-${id}.realm.localhost:${pub().port}`;

  /** A request to the gateway (or `at`) naming `host`. */
  const get = (host: string, path: string, headers: Record<string, string> = {}, at: URL = gw()): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: at.port, path, headers: { host, ...headers } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });

  /** A WebSocket through the gateway: the echo of one message, or the refusal's status. */
  const wsEcho = (host: string, path: string, headers: Record<string, string> = {}): Promise<string | number> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${gw().port}${path}`, { headers: { host, ...headers } });
      ws.on('open', () => ws.send('hello'));
      ws.on('message', (m: Buffer) => {
        resolve(m.toString());
        ws.close();
      });
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
        ws.terminate();
      });
      ws.on('error', reject);
    });

  /** A sandbox with python's http.server on 127.0.0.1:8000 and the echo server on 127.0.0.1:8001. */
  async function serving(client: Client = t.client): Promise<Sandbox> {
    const sb = await Sandbox.create({}, client);
    await sb.files.write('index.html', 'hello from inside\n');
    await sb.files.write('ws.py', WS_ECHO);
    await sb.files.write('hash.py', HASHER);
    await sb.processes.start('/usr/bin/python3 -m http.server --bind 127.0.0.1 8000');
    await sb.processes.start('/usr/bin/python3 ws.py 8001');
    await sb.processes.start('/usr/bin/python3 hash.py 8002');
    // Ready when both answer from inside.
    for (let i = 0; i < 100; i++) {
      const r = await sb.exec([
        '/usr/bin/python3',
        '-c',
        'import socket; socket.create_connection(("127.0.0.1", 8000)); socket.create_connection(("127.0.0.1", 8001)); socket.create_connection(("127.0.0.1", 8002))',
      ]);
      if (r.exitCode === 0) return sb;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the servers inside did not start');
  }

  void it('a server bound to the sandbox loopback is reached with a token, a signed link and its cookie; refused without', async () => {
    const sb = await serving();
    const host = hostFor(sb.id, 8000);
    // Without anything: 401, a JSON error that says what to send.
    const bare = await get(host, '/index.html');
    assert.equal(bare.status, 401);
    const err = JSON.parse(bare.body) as { error: { code: string; message: string } };
    assert.equal(err.error.code, 'UNAUTHORIZED');
    assert.match(err.error.message, /Authorization: Bearer|realm sandbox url/);
    assert.equal((await get(host, '/index.html', { authorization: 'Bearer rlm_000000000000_nope' })).status, 401);
    // The owner's token.
    const ok = await get(host, '/index.html', { authorization: `Bearer ${t.token}` });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.body, 'hello from inside\n');
    // A signed link: exchanged for a host-only HttpOnly cookie, redirected to the clean URL.
    const link = await sb.url(8000, { expires: '1h' });
    // Listed (without its token) while it lives.
    assert.deepEqual(
      (await sb.urls()).map((l) => [l.id, l.port]),
      [[link.id, 8000]],
    );
    const u = new URL(link.url);
    assert.equal(u.host, host);
    const token = u.searchParams.get('realm_preview') ?? '';
    const visit = await get(host, `/index.html?realm_preview=${token}&x=1`);
    assert.equal(visit.status, 303);
    assert.equal(visit.headers.location, '/index.html?x=1');
    const setCookie = visit.headers['set-cookie']?.[0] ?? '';
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Lax/);
    assert.doesNotMatch(setCookie, /Domain=/i);
    const cookie = setCookie.split(';')[0] ?? '';
    const withCookie = await get(host, '/index.html', { cookie: `a=b; ${cookie}` });
    assert.equal(withCookie.status, 200);
    assert.equal(withCookie.body, 'hello from inside\n');
    // A token for another sandbox (or none that exists) is refused alike: 401 tells nothing of what exists.
    assert.equal((await get(hostFor('sb-none', 8000), `/?realm_preview=${token}`)).status, 401);
    // The link is for port 8000 only.
    assert.equal((await get(hostFor(sb.id, 8001), '/', { cookie })).status, 401);
    // Revoked: the link and its cookie stop working.
    assert.equal(await sb.revokeUrls(8000), 1);
    const after = await get(host, '/index.html', { cookie });
    assert.equal(after.status, 401);
    assert.match(after.body, /revoked/);
    assert.equal((await get(host, `/index.html?realm_preview=${token}`)).status, 401);
    // Expired.
    const short = await sb.url(8000, { expires: '1s' });
    const shortToken = new URL(short.url).searchParams.get('realm_preview') ?? '';
    await new Promise((r) => setTimeout(r, 1100));
    const late = await get(host, `/?realm_preview=${shortToken}`);
    assert.equal(late.status, 401);
    assert.match(late.body, /expired/);
    // A request body passes through as it comes (written in pieces here), every byte.
    const big = Buffer.alloc(3 * 1024 * 1024, 'abc');
    const posted = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: gw().port,
          method: 'POST',
          path: '/',
          headers: { host: hostFor(sb.id, 8002), authorization: `Bearer ${t.token}`, 'content-length': big.length },
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve(body));
        },
      );
      req.on('error', reject);
      for (let i = 0; i < big.length; i += 256 * 1024) req.write(big.subarray(i, i + 256 * 1024));
      req.end();
    });
    assert.equal(posted, `${createHash('sha256').update(big).digest('hex')} ${big.length}`);
    // A port nothing listens on: 502, saying so.
    const none = await get(hostFor(sb.id, 8999), '/', { authorization: `Bearer ${t.token}` });
    assert.equal(none.status, 502);
    const noneErr = JSON.parse(none.body) as { error: { code: string; message: string } };
    assert.equal(noneErr.error.code, 'PORT_UNREACHABLE');
    assert.match(noneErr.error.message, /nothing listens on port 8999/);
    await sb.destroy();
  });

  void it('WebSocket upgrades pass through with the same checks', async () => {
    const sb = await serving();
    const host = hostFor(sb.id, 8001);
    assert.equal(await wsEcho(host, '/'), 401);
    assert.equal(await wsEcho(host, '/', { authorization: `Bearer ${t.token}` }), 'echo:hello');
    const link = await sb.url(8001);
    const token = new URL(link.url).searchParams.get('realm_preview') ?? '';
    assert.equal(await wsEcho(host, `/?realm_preview=${token}`), 'echo:hello');
    assert.equal(await wsEcho(host, '/', { cookie: `realm_preview=${token}` }), 'echo:hello');
    await sb.revokeUrls(8001);
    assert.equal(await wsEcho(host, '/', { cookie: `realm_preview=${token}` }), 401);
    await sb.destroy();
  });

  void it("another user's token and links are refused; a public link opens the port to anyone", async () => {
    const store = new SqliteStore(join(t.dataDir, 'state.db'));
    let a: Client;
    let tokenB: string;
    try {
      const tokens = new Tokens(store, join(t.dataDir, 'admin-token'));
      a = new Client({ url: t.url, token: (await tokens.create('a', 'uid:4001')).token });
      tokenB = (await tokens.create('b', 'uid:4002')).token;
    } finally {
      store.close();
    }
    const sb = await serving(a);
    const host = hostFor(sb.id, 8000);
    const other = await get(host, '/index.html', { authorization: `Bearer ${tokenB}` });
    assert.equal(other.status, 404);
    assert.equal((JSON.parse(other.body) as { error: { code: string } }).error.code, 'SANDBOX_NOT_FOUND');
    // B cannot make a link to A's sandbox either.
    const b = new Client({ url: t.url, token: tokenB });
    await assert.rejects(b.request('POST', `/v1/sandboxes/${sb.id}/urls`, { port: 8000 }), /no sandbox/);
    // A public link: anyone, until revoked.
    const pub = await sb.url(8000, { public: true });
    assert.equal(pub.url, `http://${host}/`);
    assert.equal((await get(host, '/index.html')).body, 'hello from inside\n');
    await sb.revokeUrls(8000);
    assert.equal((await get(host, '/index.html')).status, 401);
    await sb.destroy();
    assert.deepEqual(await leftovers(t), []);
  });

  void it('the --public-listen address serves preview URLs only; the CLI prints and revokes links', async () => {
    const sb = await serving();
    const host = hostFor(sb.id, 8000);
    const viaPublic = await get(host, '/index.html', { authorization: `Bearer ${t.token}` }, pub());
    assert.equal(viaPublic.body, 'hello from inside\n');
    // Never the API, nor the gateway's apps.
    const api = await get(`127.0.0.1:${pub().port}`, '/v1/health', { authorization: `Bearer ${t.token}` }, pub());
    assert.equal(api.status, 404);
    assert.match(api.body, /serves preview URLs .* only/);
    const printed = await realm(['sandbox', 'url', sb.id, '8000', '--expires', '10m'], { url: t.url });
    assert.equal(printed.code, 0, printed.stderr);
    const u = new URL(printed.stdout.trim());
    assert.equal(u.host, host);
    const visit = await get(host, `/?${u.searchParams.toString()}`, {}, pub());
    assert.equal(visit.status, 303);
    const revoked = await realm(['sandbox', 'url', sb.id, '8000', '--revoke'], { url: t.url });
    assert.equal(revoked.stdout.trim(), `revoked 1 link to port 8000 of ${sb.id}`);
    assert.equal((await get(host, `/?${u.searchParams.toString()}`, {}, pub())).status, 401);
    await sb.destroy();
  });

  void it('the --public-listen address serves public services by Host, never local ones', async () => {
    const spec = {
      image: 'host',
      command: 'echo from a service > hello.txt && exec /usr/bin/python3 -m http.server 8000',
      port: 8000,
      health: { interval: '200ms' },
    };
    await t.client.services.push({ ...spec, name: 'pubsvc', visibility: 'public' });
    await t.client.services.push({ ...spec, name: 'locsvc', visibility: 'local' });
    for (let i = 0; i < 300; i++) {
      const all = await t.client.services.list();
      if (all.filter((s) => s.name.endsWith('svc') && s.healthy === 1).length === 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const p = pub().port;
    const served = await get(`pubsvc.realm.localhost:${p}`, '/hello.txt', {}, pub());
    assert.equal(served.status, 200);
    assert.equal(served.body, 'from a service\n');
    // A local service is this machine's own: not there, even to a loopback client naming a loopback host.
    const local = await get(`locsvc.realm.localhost:${p}`, '/hello.txt', {}, pub());
    assert.equal(local.status, 404);
    assert.equal((JSON.parse(local.body) as { error: { message: string } }).error.message, 'no public service "locsvc" here');
    assert.equal((await get(`locsvc.realm.localhost:${gw().port}`, '/hello.txt')).body, 'from a service\n');
    // Nor by path, nor a WebSocket to it.
    assert.equal((await get(`127.0.0.1:${p}`, '/pubsvc/hello.txt', {}, pub())).status, 404);
    const ws = await new Promise<number>((resolve) => {
      const c = new WebSocket(`ws://127.0.0.1:${p}/`, { headers: { host: `locsvc.realm.localhost:${p}` } });
      c.on('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
      c.on('open', () => resolve(101));
      c.on('error', () => resolve(0));
    });
    assert.equal(ws, 404);
    await t.client.services.remove('pubsvc');
    await t.client.services.remove('locsvc');
  });
});

void describe('preview URLs on a driver that cannot reach its ports', { skip: skip ?? (await gvisorSkipReason()) }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d), { gateway: '127.0.0.1:0' });

  void it('a gvisor sandbox is refused with DRIVER_UNAVAILABLE, saying which driver can', async () => {
    const sb = await Sandbox.create({ driver: 'gvisor' }, t.client);
    await assert.rejects(sb.url(8000), /namespace-driver sandbox/);
    await sb.destroy();
    assert.deepEqual(await leftovers(t), []);
  });
});
