/**
 * The gateway across a cluster of two nodes on etcd: a preview URL of a sandbox on the other node,
 * asked of this node's gateway, is relayed there (a bearer token checked here, a signed link and
 * its cookie there, nothing refused as it would be there); a service the other node runs is
 * served through this node's gateway by path and by Host (a local one to loopback clients only,
 * as on the node that runs it). WebSockets to a preview URL or a public service on the other node,
 * and a public wasm app pushed there, are reached through this node's gateway the same way (every
 * node serves wasm apps itself: a local one too, to its own loopback clients). A page's POST
 * relayed so reaches the server whole: its Origin, a form or text body, its length.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { Sandbox, apps } from '@realm/sdk';
import WebSocket from 'ws';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { freePort } from '../helpers/port.js';
import { until } from '../helpers/until.js';
import { wasmSkipReason, wat } from '../helpers/wasm.js';
import { WS_ECHO } from '../helpers/ws-echo.js';

const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# cluster gateway tests skipped: ${skip}`);
const wasmSkip = skip ?? (await wasmSkipReason());

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request to the gateway on `port` naming `host` (a POST when it has a body, sent with its length). */
function get(port: number, host: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: body === undefined ? 'GET' : 'POST',
        headers: { host, ...headers, ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A server that answers a POST with its body (Python's http.server: it reads Content-Length, never a chunked body). */
const ECHO_POST = `import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('content-length') or 0))
        self.send_response(200)
        self.send_header('content-length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(('127.0.0.1', 8000), H).serve_forever()
`;

/** A WebSocket through the gateway on `port` naming `host`: the echo of one message, or the refusal's status. */
function wsEcho(port: number, host: string, path: string, headers: Record<string, string> = {}): Promise<string | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host, ...headers } });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('open', () => ws.send('hi'));
    ws.once('message', (data: Buffer) => {
      resolve(data.toString());
      ws.close();
    });
    ws.once('error', reject);
  });
}

/** A CGI app (WASI preview 1, in WebAssembly text) that answers "wasm on b". */
const CGI_WAT = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "Content-Type: text/plain\\n\\nwasm on b\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 36))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`;

void describe('the gateway across two nodes', { skip }, () => {
  let etcd: TestEtcd;
  let a: TestNode;
  let b: TestNode;
  let ga = 0;
  let gb = 0;

  const t0 = Date.now();

  before(async () => {
    etcd = await startEtcd();
    [ga, gb] = [await freePort(), await freePort()];
    a = await startNode(etcd.cluster, 'gw-a', { args: ['--gateway', `127.0.0.1:${ga}`] });
    const invite = await a.client.nodes.invite();
    b = await startNode(etcd.cluster, 'gw-b', { join: invite.token, args: ['--gateway', `127.0.0.1:${gb}`] });
  });

  after(async () => {
    for (const n of [a, b]) await n?.remove();
    await etcd?.stop();
    console.log(`# test/cluster/gateway.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  void it("a preview URL of a sandbox on the other node is relayed there, with that node's checks", async () => {
    const sb = await Sandbox.create({}, b.client);
    await sb.files.write('index.html', 'hello from node b\n');
    await sb.processes.start('/usr/bin/python3 -m http.server --bind 127.0.0.1 8000');
    await until('the server inside', async () =>
      (await sb.exec(['/usr/bin/python3', '-c', 'import socket; socket.create_connection(("127.0.0.1", 8000))'])).exitCode === 0
        ? true
        : undefined,
    );
    const host = `8000-${sb.id}.realm.localhost:${ga}`;
    // Through node a: refused without a credential, as on b.
    const bare = await get(ga, host, '/index.html');
    assert.equal(bare.status, 401, bare.body);
    // A's token (checked on a; the same user owns the sandbox on b).
    const ok = await get(ga, host, '/index.html', { authorization: `Bearer ${a.client.token ?? ''}` });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.body, 'hello from node b\n');
    assert.equal((await get(ga, host, '/index.html', { authorization: 'Bearer rlm_000000000000_nope' })).status, 401);
    // A signed link (made on b, asked through a): exchanged for its cookie, then served with it.
    const link = new URL((await (await Sandbox.get(sb.id, a.client)).url(8000, { expires: '10m' })).url);
    const visit = await get(ga, host, `/index.html${link.search}`);
    assert.equal(visit.status, 303, visit.body);
    const cookie = String(visit.headers['set-cookie']?.[0] ?? '').split(';')[0] ?? '';
    assert.match(cookie, /^realm_preview=/);
    const withCookie = await get(ga, host, '/index.html', { cookie });
    assert.equal(withCookie.status, 200, withCookie.body);
    assert.equal(withCookie.body, 'hello from node b\n');
    await sb.destroy();
  });

  void it('a service on the other node is served through this gateway, by its visibility', async () => {
    const spec = {
      image: 'host',
      command: 'echo served by b > hello.txt && exec /usr/bin/python3 -m http.server 8000',
      port: 8000,
      health: { interval: '200ms' },
    };
    await b.client.services.push({ ...spec, name: 'pub', visibility: 'public' });
    await b.client.services.push({ ...spec, name: 'loc', visibility: 'local' });
    // Healthy as node a sees them too: its gateway relays to b once b's report of the replicas reached it.
    for (const n of [b, a])
      await until(`both services healthy, as ${n.id} sees them`, async () =>
        (await n.client.services.list()).filter((s) => s.healthy === 1).length === 2 ? true : undefined,
      );
    const byPath = await get(ga, `127.0.0.1:${ga}`, '/pub/hello.txt');
    assert.equal(byPath.status, 200, byPath.body);
    assert.equal(byPath.body, 'served by b\n');
    // The app's answer as a gateway makes it: none of the API's own headers from b's relay route.
    assert.equal(byPath.headers['x-request-id'], undefined);
    assert.equal(byPath.headers['x-realm-node'], undefined);
    const byHost = await get(ga, `pub.realm.localhost:${ga}`, '/hello.txt');
    assert.equal(byHost.status, 200, byHost.body);
    assert.equal(byHost.body, 'served by b\n');
    // A local service is served to loopback clients under a loopback Host, through either gateway
    // (the one the client reached checks it); under another Host it is refused, as on a node alone.
    assert.equal((await get(gb, `127.0.0.1:${gb}`, '/loc/hello.txt')).status, 200);
    assert.equal((await get(ga, `127.0.0.1:${ga}`, '/loc/hello.txt')).status, 200);
    assert.notEqual((await get(ga, `example.com:${ga}`, '/loc/hello.txt')).status, 200);
    // The relay route is the peers' alone.
    const direct = await fetch(`${b.url}/v1/cluster/gateway/pub/hello.txt`, {
      headers: { authorization: `Bearer ${b.client.token ?? ''}` },
    });
    assert.equal(direct.status, 403);
    await b.client.services.remove('pub');
    await b.client.services.remove('loc');
  });

  void it("a page's POST to a sandbox on the other node reaches it whole through this gateway: its Origin, its body's type and length", async () => {
    const sb = await Sandbox.create({}, b.client);
    await sb.files.write('echo.py', ECHO_POST);
    await sb.processes.start('/usr/bin/python3 echo.py');
    await until('the server inside', async () =>
      (await sb.exec(['/usr/bin/python3', '-c', 'import socket; socket.create_connection(("127.0.0.1", 8000))'])).exitCode === 0
        ? true
        : undefined,
    );
    const host = `8000-${sb.id}.realm.localhost:${ga}`;
    // As a page of the preview would post (its own Origin): the relay was refused by b's API as a
    // foreign page's (403) or a body type its API takes not (415), and a body went on chunked (empty here).
    const page = { authorization: `Bearer ${a.client.token ?? ''}`, origin: `http://${host}` };
    const bodies: [string, string][] = [
      ['application/x-www-form-urlencoded', 'name=realm&n=1'],
      ['text/plain', 'hello from a page'],
      ['application/json', '{"a":1}'],
      ['application/octet-stream', 'x'.repeat(200_000)],
    ];
    for (const [type, body] of bodies) {
      const r = await get(ga, host, '/submit', { ...page, 'content-type': type }, body);
      assert.equal(r.status, 200, `${type}: ${r.body.slice(0, 300)}`);
      assert.equal(r.body.length, body.length, type);
      assert.equal(r.body, body, type);
    }
    await sb.destroy();
  });

  void it('WebSockets to a preview URL and to a public service on the other node pass through this gateway', async () => {
    const started = Date.now();
    const sb = await Sandbox.create({}, b.client);
    await sb.files.write('ws.py', WS_ECHO);
    await sb.processes.start('/usr/bin/python3 ws.py 8000');
    await until('the echo server inside', async () =>
      (await sb.exec(['/usr/bin/python3', '-c', 'import socket; socket.create_connection(("127.0.0.1", 8000))'])).exitCode === 0
        ? true
        : undefined,
    );
    const host = `8000-${sb.id}.realm.localhost:${ga}`;
    // The same checks as for a request: none refused, a's token (checked on a) let through.
    assert.equal(await wsEcho(ga, host, '/'), 401);
    assert.equal(await wsEcho(ga, host, '/', { authorization: 'Bearer rlm_000000000000_nope' }), 401);
    assert.equal(await wsEcho(ga, host, '/', { authorization: `Bearer ${a.client.token ?? ''}` }), 'echo:hi');
    await sb.destroy();
    const b64 = Buffer.from(WS_ECHO).toString('base64');
    await b.client.services.push({
      name: 'wspub',
      image: 'host',
      command: `echo ${b64} | base64 -d > ws.py && exec /usr/bin/python3 ws.py 8000`,
      port: 8000,
      visibility: 'public',
      health: { interval: '200ms' },
    });
    for (const n of [b, a])
      await until(`the service healthy, as ${n.id} sees it`, async () =>
        (await n.client.services.get('wspub')).healthy === 1 ? true : undefined,
      );
    assert.equal(await wsEcho(ga, `127.0.0.1:${ga}`, '/wspub/'), 'echo:hi');
    assert.equal(await wsEcho(ga, `wspub.realm.localhost:${ga}`, '/'), 'echo:hi');
    await b.client.services.remove('wspub');
    // The relay route on the API takes upgrades from peers alone.
    const api = new URL(b.url);
    assert.equal(
      await wsEcho(Number(api.port), api.host, '/v1/cluster/gateway/wspub/', { authorization: `Bearer ${b.client.token ?? ''}` }),
      403,
    );
    console.log(`# websockets across nodes: ${Date.now() - started} ms`);
  });

  void it(
    "a wasm app pushed to the other node is served through this gateway; a local one too, once it is this node's (apps are the cluster's)",
    { skip: wasmSkip },
    async () => {
      const started = Date.now();
      const mod = await wat(CGI_WAT);
      await apps.push({ name: 'wpub', module: mod, visibility: 'public' }, b.client);
      await apps.push({ name: 'wloc', module: mod }, b.client);
      const r = await get(ga, `127.0.0.1:${ga}`, '/wpub/x?y=1');
      assert.equal(r.status, 200, r.body);
      assert.equal(r.body, 'wasm on b\n');
      assert.equal((await get(gb, `127.0.0.1:${gb}`, '/wloc/x')).status, 200);
      // Never relayed: node a serves it itself, to its own loopback clients, once it has the module.
      await until('node a serves the local app itself', async () => (await get(ga, `127.0.0.1:${ga}`, '/wloc/x')).status === 200);
      await apps.remove('wpub', b.client);
      await apps.remove('wloc', b.client);
      console.log(`# wasm app across nodes: ${Date.now() - started} ms`);
    },
  );
});
