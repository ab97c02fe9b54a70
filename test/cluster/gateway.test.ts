/**
 * The gateway across a cluster of two nodes on etcd: a preview URL of a sandbox on the other node,
 * asked of this node's gateway, is relayed there (a bearer token checked here, a signed link and
 * its cookie there, nothing refused as it would be there); a service the other node runs is
 * served through this node's gateway by path and by Host (a local one to loopback clients only,
 * as on the node that runs it).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { Sandbox } from '@realm/sdk';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { freePort } from '../helpers/port.js';
import { until } from '../helpers/until.js';

const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# cluster gateway tests skipped: ${skip}`);

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request to the gateway on `port` naming `host`. */
function get(port: number, host: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers: { host, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

void describe('the gateway across two nodes', { skip }, () => {
  let etcd: TestEtcd;
  let a: TestNode;
  let b: TestNode;
  let ga = 0;
  let gb = 0;

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
    await until('both services healthy', async () =>
      (await b.client.services.list()).filter((s) => s.healthy === 1).length === 2 ? true : undefined,
    );
    const byPath = await get(ga, `127.0.0.1:${ga}`, '/pub/hello.txt');
    assert.equal(byPath.status, 200, byPath.body);
    assert.equal(byPath.body, 'served by b\n');
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
});
