/**
 * Nodes that speak TLS to each other, with a PKI made here: each listens with --tls-cert/--tls-key
 * and advertises https://, and dials its peers trusting --peer-ca. A sandbox on node B is driven
 * through node A (exec, a streamed exec, files both ways, a terminal over the relayed wss://);
 * the CLI and SDK reach an https daemon with REALM_CA (or NODE_EXTRA_CA_CERTS). A node given the
 * wrong CA cannot reach its peers and says why (NODE_UNREACHABLE naming TLS) over HTTP and
 * WebSockets alike. Nothing is left behind.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';
import { Agent, fetch as undiciFetch } from 'undici';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type RealmError, Sandbox } from '@realm/sdk';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { failedStart, startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { makePki, type TestPki } from '../helpers/pki.js';

const exec = promisify(execFile);
const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# peer TLS tests skipped: ${skip}`);

const code = (e: unknown): string | undefined => (e as RealmError).code;
const TLS_CAUSE = /TLS: the peer's certificate did not verify: .*\[[A-Z_]+\]; --peer-ca must be the CA/;

/** `realm ARGS` against `node` with `env` added: exit code, stdout, stderr. */
async function cli(
  node: TestNode,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(join(PACKAGE_ROOT, 'bin', 'realm'), args, {
      env: { ...process.env, REALM_URL: node.url, REALM_TOKEN: node.client.token ?? '', ...env },
    });
    return { code: 0, ...r };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

void describe('nodes that speak TLS to each other (--tls-cert, --advertise https://, --peer-ca)', { skip }, () => {
  let pki: TestPki;
  let etcd: TestEtcd;
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let wrong: TestNode | undefined;

  const tlsNode = (id: string, peerCa: string, join?: string): Promise<TestNode> =>
    startNode(etcd.cluster, id, {
      tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca },
      ...(join ? { join } : {}),
      args: ['--peer-ca', peerCa],
    });

  before(async () => {
    pki = makePki();
    etcd = await startEtcd();
    a = await tlsNode('ptls-a', pki.ca);
    b = await tlsNode('ptls-b', pki.ca, (await a.client.nodes.invite()).token);
  });

  after(async () => {
    for (const n of [a, b, wrong]) await n?.remove();
    await etcd?.stop();
    pki?.remove();
  });

  void it('each node is listed at its https:// address; the CLI reaches it with REALM_CA or NODE_EXTRA_CA_CERTS, and without says why not', async () => {
    assert.ok(a && b);
    assert.match(a.url, /^https:\/\//);
    const list = await a.client.nodes.list();
    assert.deepEqual(
      list.map((n) => [n.id, n.state, n.address]),
      [
        ['ptls-a', 'up', a.url],
        ['ptls-b', 'up', b.url],
      ],
    );
    const withCa = await cli(b, ['node', 'ls', '--json'], { REALM_CA: pki.ca });
    assert.equal(withCa.code, 0, withCa.stderr);
    assert.deepEqual(
      (JSON.parse(withCa.stdout) as { id: string }[]).map((n) => n.id),
      ['ptls-a', 'ptls-b'],
    );
    const extra = await cli(b, ['node', 'ls', '--json'], { NODE_EXTRA_CA_CERTS: pki.ca });
    assert.equal(extra.code, 0, extra.stderr);
    const untrusted = await cli(b, ['node', 'ls'], {});
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.stderr, /no realm daemon answers at https:\/\/127\.0\.0\.1:\d+ \(.*certificate/, untrusted.stderr);
    const otherCa = await cli(b, ['node', 'ls'], { REALM_CA: pki.otherCa });
    assert.notEqual(otherCa.code, 0);
    assert.match(otherCa.stderr, /certificate/, otherCa.stderr);
    // Plain http:// to a TLS listener gets no API answer.
    await assert.rejects(fetch(b.url.replace('https:', 'http:') + '/v1/health'));
  });

  void it('a sandbox on node B is driven through node A: exec, streamed exec, files both ways, a terminal over wss://', async () => {
    assert.ok(a && b);
    const sb = await Sandbox.create({ placement: { node: 'ptls-b' } }, a.client);
    const onB = (await b.client.request<{ sandboxes: { id: string }[] }>('GET', '/v1/sandboxes')).sandboxes;
    assert.ok(
      onB.some((s) => s.id === sb.id),
      'it lives on node B',
    );
    const res = await sb.exec(['sh', '-c', 'echo hello; echo oops >&2; exit 3']);
    assert.deepEqual([res.stdout, res.stderr, res.exitCode], ['hello\n', 'oops\n', 3]);
    const chunks: string[] = [];
    for await (const ev of sb.execStream(['sh', '-c', 'for i in 1 2 3; do echo $i; done'])) {
      if (ev.type === 'stdout') chunks.push(ev.data);
    }
    assert.equal(chunks.join(''), '1\n2\n3\n');
    const bytes = Buffer.alloc(3 * 1024 * 1024, 7);
    await sb.files.write('/home/user/big.dat', bytes);
    assert.deepEqual(Buffer.from(await sb.files.read('/home/user/big.dat')), bytes);
    // A terminal: stdin in, output out, the exit code, relayed A → B as wss://.
    const term = await sb.attach(['/bin/sh', '-c', 'read line; echo got-$line; exit 5'], { tty: false });
    let out = '';
    term.onData((_s, d) => (out += d));
    term.write('hi\n');
    assert.deepEqual(await term.exited, { exitCode: 5, signal: null });
    assert.equal(out, 'got-hi\n');
    await sb.destroy();
    await assert.rejects(Sandbox.get(sb.id, b.client), (e) => code(e) === 'SANDBOX_NOT_FOUND');
  });

  void it("the daemon's /mcp over https: its tools call its own API at its --advertise URL, trusting --peer-ca", async () => {
    assert.ok(a);
    const dispatcher = new Agent({ connect: { ca: readFileSync(pki.ca) } });
    const mcp = new McpClient({ name: 'realm-test', version: '1.0.0' });
    await mcp.connect(
      new StreamableHTTPClientTransport(new URL(`${a.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${a.client.token ?? ''}` } },
        fetch: (url, init) => undiciFetch(url, { ...(init as object), dispatcher }),
      }),
    );
    try {
      const ran = (await mcp.callTool({ name: 'run_code', arguments: { language: 'bash', code: 'echo over-tls' } })) as {
        content: { text: string }[];
        isError?: boolean;
      };
      assert.ok(!ran.isError, JSON.stringify(ran));
      assert.equal((JSON.parse(ran.content[0]?.text ?? '{}') as { stdout: string }).stdout, 'over-tls\n');
    } finally {
      await mcp.close();
      await dispatcher.close();
    }
  });

  void it('a node given the wrong CA cannot reach its peers: NODE_UNREACHABLE naming TLS, over HTTP and WebSockets', async () => {
    assert.ok(a && b);
    wrong = await tlsNode('ptls-wrong', pki.otherCa, (await a.client.nodes.invite()).token);
    const sb = await Sandbox.create({ placement: { node: 'ptls-b' } }, a.client);
    const viaWrong = await Sandbox.get(sb.id, wrong.client).catch((e: unknown) => e);
    assert.equal(code(viaWrong), 'NODE_UNREACHABLE', String(viaWrong));
    assert.match((viaWrong as Error).message, TLS_CAUSE);
    console.log(`# wrong CA: ${(viaWrong as Error).message}`);
    // A run placed on node B, sent to the wrong node.
    const run = await wrong.client
      .request('POST', '/v1/runs', { language: 'bash', code: 'echo ran', placement: { node: 'ptls-b' } })
      .catch((e: unknown) => e);
    assert.equal(code(run), 'NODE_UNREACHABLE', String(run));
    assert.match((run as Error).message, TLS_CAUSE);
    // A terminal of the sandbox on B, opened on the wrong node: its relay to B says why, in a frame.
    const ws = new WebSocket(`${wrong.url.replace(/^https/, 'wss')}/v1/sandboxes/${sb.id}/exec/ws`, {
      headers: { authorization: `Bearer ${wrong.client.token ?? ''}` },
      ca: readFileSync(pki.ca),
    });
    const [first, closed] = await Promise.all([
      new Promise<string>((resolve, reject) => {
        ws.once('message', (d: Buffer) => resolve(d.toString()));
        ws.once('error', reject);
      }),
      new Promise<number>((resolve) => ws.once('close', (c: number) => resolve(c))),
    ]);
    assert.equal(closed, 1008);
    const frame = JSON.parse(first) as { type: string; error: { code: string; message: string } };
    assert.equal(frame.error.code, 'NODE_UNREACHABLE', first);
    assert.match(frame.error.message, TLS_CAUSE);
    // Its own sandboxes and runs work: only its peers are out of reach.
    const here = await Sandbox.create({ placement: { node: 'ptls-wrong' } }, wrong.client);
    assert.equal((await here.exec(['echo', 'local'])).stdout, 'local\n');
    await here.destroy();
    await sb.destroy();
  });

  void it('--tls-cert without --tls-key, a key not the certificate’s, or --advertise http:// with TLS: usage errors, nothing left', async () => {
    const noKey = await failedStart(etcd.cluster, ['--tls-cert', pki.serverCert]);
    assert.equal(noKey.code, 2, noKey.stderr);
    assert.match(noKey.stderr, /--tls-cert and --tls-key go together/);
    assert.deepEqual(noKey.left, []);
    const mismatch = await failedStart(etcd.cluster, ['--tls-cert', pki.serverCert, '--tls-key', pki.clientKey]);
    assert.equal(mismatch.code, 2, mismatch.stderr);
    assert.match(mismatch.stderr, /the key must be the certificate's/);
    assert.deepEqual(mismatch.left, []);
    const plainAdvertise = await failedStart(etcd.cluster, [
      '--tls-cert',
      pki.serverCert,
      '--tls-key',
      pki.serverKey,
      '--advertise',
      'http://127.0.0.1:1',
    ]);
    assert.equal(plainAdvertise.code, 2, plainAdvertise.stderr);
    assert.match(plainAdvertise.stderr, /write --advertise https:/);
    const notPem = await failedStart(etcd.cluster, ['--peer-ca', '/etc/hostname']);
    assert.equal(notPem.code, 2, notPem.stderr);
    assert.match(notPem.stderr, /--peer-ca \/etc\/hostname: not a PEM file/);
  });

  void it('nothing is left behind', async () => {
    for (const n of [wrong, b, a]) if (n) assert.deepEqual(await n.remove(), [], n.id);
    [a, b, wrong] = [undefined, undefined, undefined];
  });
});
