/**
 * A cluster on a real etcd (Debian's etcd-server, on loopback ports of its own) with three realm
 * nodes as separate processes: membership, placement by node and tag, any node serving a
 * sandbox on another, drain and tags from anywhere, leaving, dying, and etcd going silent.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { type RealmError, Sandbox, run } from '@realm/sdk';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { PLATFORM } from '../../src/cluster/report.js';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { egressRootLeft, namespaceSkipReason } from '../helpers/daemon.js';
import { wasmFile, wat } from '../helpers/wasm.js';

const exec = promisify(execFile);
const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# cluster tests skipped: ${skip}`);

const code = (e: unknown): string | undefined => (e as RealmError).code;

/** A node without the wasm driver: its runners' directory has none. */
const NO_WASM = { REALM_WASM_RUNNER_DIR: '/usr/share/realm-test-no-wasm-runners' };

/** Print "hello from wat" with WASI's fd_write. */
const HELLO_WAT = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wat\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 15))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`;

/** Poll `check` until it holds (at most `ms`); the last failure otherwise. */
async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A run's answer, or an error's. */
interface RunAnswer {
  stdout?: string;
  error: { code: string; message: string };
}

/** POST /v1/runs on `node`'s API: the node that ran it (x-realm-node) and the answer. */
async function runOn(
  node: TestNode,
  body: Record<string, unknown>,
): Promise<{ ranOn: string | null; status: number; json: RunAnswer }> {
  const res = await fetch(`${node.url}/v1/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${node.client.token ?? ''}` },
    body: JSON.stringify({ language: 'bash', code: 'echo ran', ...body }),
  });
  return { ranOn: res.headers.get('x-realm-node'), status: res.status, json: (await res.json()) as RunAnswer };
}

void describe('a cluster of three nodes on etcd', { skip }, () => {
  let etcd: TestEtcd;
  let a: TestNode;
  let b: TestNode;
  let c: TestNode;

  before(async () => {
    etcd = await startEtcd();
    // The first node founds the cluster; the others join with its invites.
    // Nodes differ in their drivers: only node C has wasm (A and B are pointed at no runners).
    a = await startNode(etcd.cluster, 'node-a', { tags: ['zone=a'], env: NO_WASM });
    const [forB, forC] = await Promise.all([a.client.nodes.invite(), a.client.nodes.invite({ ttl: '10m' })]);
    [b, c] = await Promise.all([
      startNode(etcd.cluster, 'node-b', { tags: ['gpu', 'zone=b'], join: forB.token, env: NO_WASM }),
      startNode(etcd.cluster, 'node-c', { join: forC.token }),
    ]);
  });

  after(async () => {
    for (const n of [a, b, c]) await n?.remove();
    await etcd?.stop();
  });

  void it('every node lists every node, up, with its tags and report; the CLI too', async () => {
    for (const n of [a, b, c]) {
      const list = await n.client.nodes.list();
      assert.deepEqual(
        list.map((x) => [x.id, x.state, x.self]),
        [
          ['node-a', 'up', n === a],
          ['node-b', 'up', n === b],
          ['node-c', 'up', n === c],
        ],
      );
      const nb = list.find((x) => x.id === 'node-b');
      assert.deepEqual(nb?.tags, ['gpu', 'zone=b']);
      assert.equal(nb?.address, b.url);
      assert.ok(nb?.report?.drivers.includes('namespace'), JSON.stringify(nb?.report));
    }
    const cli = await exec(join(PACKAGE_ROOT, 'bin', 'realm'), ['node', 'ls', '--json'], {
      env: { ...process.env, REALM_URL: b.url, REALM_TOKEN: b.client.token ?? '' },
    });
    assert.deepEqual(
      (JSON.parse(cli.stdout) as { id: string }[]).map((x) => x.id),
      ['node-a', 'node-b', 'node-c'],
    );
    const info = await a.client.request<{
      cluster: { id: string; clustered: boolean; fenced: boolean; scheduler: string | null };
    }>('GET', '/v1/node');
    assert.ok(['node-a', 'node-b', 'node-c'].includes(info.cluster.scheduler ?? ''), JSON.stringify(info.cluster));
    assert.deepEqual(info.cluster, {
      id: 'node-a',
      clustered: true,
      fenced: false,
      tags: ['zone=a'],
      scheduler: info.cluster.scheduler,
    });
  });

  void it('a run asking for a tag or a node runs there; one that no node can take says why, per node', async () => {
    const byTag = await runOn(a, { placement: { tags: ['gpu'] } });
    assert.equal(byTag.status, 200, JSON.stringify(byTag.json));
    assert.equal(byTag.ranOn, 'node-b');
    assert.equal(byTag.json.stdout, 'ran\n');
    const byNode = await runOn(a, { placement: { node: 'node-c' } });
    assert.equal(byNode.ranOn, 'node-c');
    assert.equal(byNode.json.stdout, 'ran\n');
    const here = await runOn(a, {});
    assert.equal(here.ranOn, 'node-a', 'no constraint: the node asked runs it');
    // Through the SDK, as a user would.
    const r = await run({ language: 'bash', code: 'echo sdk', placement: { tags: ['gpu'] } }, a.client);
    assert.equal(r.stdout, 'sdk\n');

    const none = await runOn(c, { placement: { tags: ['tpu'] } });
    assert.equal(none.status, 422);
    assert.equal(none.json.error.code, 'NO_NODE_FITS');
    for (const why of ['node node-a: no tag tpu', 'node node-b: no tag tpu', 'node node-c: no tag tpu'])
      assert.ok(none.json.error.message.includes(why), none.json.error.message);
    const unknown = await runOn(c, { placement: { node: 'node-z' } });
    assert.equal(unknown.json.error.code, 'NODE_NOT_FOUND');
    const badTag = await runOn(c, { placement: { tags: ['no spaces'] } });
    assert.equal(badTag.status, 400);
  });

  void it('a platform asked for places runs and sandboxes on a node of it; none of it: why, per node', async () => {
    const onIt = await runOn(a, { placement: { platform: PLATFORM, tags: ['gpu'] } });
    assert.equal(onIt.status, 200, JSON.stringify(onIt.json));
    assert.equal(onIt.ranOn, 'node-b');
    const nowhere = await runOn(b, { placement: { platform: 'plan9/mips' } });
    assert.equal(nowhere.status, 422);
    assert.equal(nowhere.json.error.code, 'NO_NODE_FITS');
    for (const id of ['node-a', 'node-b', 'node-c'])
      assert.ok(nowhere.json.error.message.includes(`node ${id}: it is ${PLATFORM}, not plan9/mips`), nowhere.json.error.message);
    await assert.rejects(
      Sandbox.create({ placement: { platform: 'plan9/mips' } }, a.client),
      (e) => (e as { code?: string }).code === 'NO_NODE_FITS',
    );
    const sb = await Sandbox.create({ placement: { platform: PLATFORM, node: 'node-c' } }, a.client);
    assert.equal((await sb.exec('echo here')).stdout, 'here\n');
    await sb.destroy();
    assert.equal((await runOn(a, { placement: { platform: 'amd64' } })).status, 400, 'OS/ARCH or nothing');
    // The CLI's --platform, through node A.
    const cli = await exec(
      join(PACKAGE_ROOT, 'bin', 'realm'),
      ['run', 'bash', '-c', 'echo via cli', '--platform', PLATFORM, '--tag', 'gpu'],
      {
        env: { ...process.env, REALM_URL: a.url, REALM_TOKEN: a.client.token ?? '' },
      },
    );
    assert.equal(cli.stdout, 'via cli\n');
  });

  void it('a driver asked for (or a language bound to one) places runs, sandboxes and jobs on the node that has it; why not, per node', async (t) => {
    const report = (await a.client.nodes.get('node-c')).report;
    if (!report?.drivers.includes('wasm')) return t.skip(`no wasm driver on this host: ${JSON.stringify(report?.drivers)}`);
    for (const n of ['node-a', 'node-b'])
      assert.ok(!(await c.client.nodes.get(n)).report?.drivers.includes('wasm'), `${n} has no wasm driver`);
    const module = await wat(HELLO_WAT);
    const hello = wasmFile(module);
    const asked = await runOn(a, { language: 'wasm', code: undefined, files: [hello], driver: 'wasm' });
    assert.equal(asked.status, 200, JSON.stringify(asked.json));
    assert.deepEqual([asked.ranOn, asked.json.stdout], ['node-c', 'hello from wat\n']);
    // The language's own driver is a constraint too.
    const byLanguage = await runOn(b, { language: 'wasm', code: undefined, files: [hello] });
    assert.deepEqual([byLanguage.ranOn, byLanguage.json.stdout], ['node-c', 'hello from wat\n'], JSON.stringify(byLanguage.json));
    const sb = await Sandbox.create({ driver: 'wasm' }, a.client);
    try {
      // Asked through node A, it is served by the node that holds it.
      const res = await fetch(`${a.url}/v1/sandboxes/${sb.id}`, { headers: { authorization: `Bearer ${a.client.token ?? ''}` } });
      assert.equal(res.headers.get('x-realm-node'), 'node-c');
      await sb.files.write('/home/user/main.wasm', module);
      assert.equal((await sb.exec(['main.wasm'])).stdout, 'hello from wat\n');
    } finally {
      await sb.destroy();
    }
    // With a tag only node B has: no node has both.
    const none = await runOn(a, { language: 'wasm', code: undefined, files: [hello], placement: { tags: ['gpu'] } });
    assert.equal(none.status, 422, JSON.stringify(none.json));
    assert.equal(none.json.error.code, 'NO_NODE_FITS');
    for (const why of ['node node-a: no tag gpu', 'node node-b: driver wasm unavailable', 'node node-c: no tag gpu'])
      assert.ok(none.json.error.message.includes(why), none.json.error.message);
    await assert.rejects(
      a.client.jobs.submit({
        toml: 'name = "wasm-gpu"\n[run]\ndriver = "wasm"\ncommand = "main.wasm"\n[targeting]\ntags = ["gpu"]\n',
      }),
      (e) => {
        assert.equal(code(e), 'JOB_UNPLACEABLE');
        for (const why of ['node node-a: no tag gpu', 'node node-b: driver wasm unavailable', 'node node-c: no tag gpu'])
          assert.ok((e as Error).message.includes(why), (e as Error).message);
        return true;
      },
    );
  });

  void it('a sandbox on node C is driven through node A: exec, streamed exec, files both ways, lists, destroy; others see nothing', async () => {
    const sb = await Sandbox.create({ placement: { node: 'node-c' } }, a.client);
    const listed = (await b.client.request<{ sandboxes: { id: string; node?: string }[] }>('GET', '/v1/sandboxes')).sandboxes;
    assert.deepEqual(
      listed.filter((s) => s.id === sb.id).map((s) => s.node),
      ['node-c'],
      'any node lists it, naming its node',
    );
    const local = (await c.client.request<{ sandboxes: { id: string }[] }>('GET', '/v1/sandboxes')).sandboxes;
    assert.ok(local.some((s) => s.id === sb.id));

    const res = await sb.exec(['sh', '-c', 'echo hello; echo oops >&2; exit 3']);
    assert.deepEqual([res.stdout, res.stderr, res.exitCode], ['hello\n', 'oops\n', 3]);
    const chunks: string[] = [];
    for await (const ev of sb.execStream(['sh', '-c', 'for i in 1 2 3; do echo $i; done'])) {
      if (ev.type === 'stdout') chunks.push(ev.data);
    }
    assert.equal(chunks.join(''), '1\n2\n3\n');
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await sb.files.write('/home/user/bin.dat', bytes);
    assert.deepEqual(Buffer.from(await sb.files.read('/home/user/bin.dat')), bytes);
    const viaB = await Sandbox.get(sb.id, b.client);
    assert.equal((await viaB.exec(['cat', '/home/user/bin.dat'])).exitCode, 0);

    // A user of node A sees none of root's sandboxes, here or there.
    const user = await a.userClient(4101);
    await assert.rejects(Sandbox.get(sb.id, user), (e) => code(e) === 'SANDBOX_NOT_FOUND');
    assert.deepEqual(
      (await user.request<{ sandboxes: { id: string }[] }>('GET', '/v1/sandboxes')).sandboxes.map((s) => s.id),
      [],
    );
    // A client cannot claim to be a peer: the forwarded-principal header without the peer credential is no one.
    const forged = await fetch(`${c.url}/v1/sandboxes/${sb.id}`, {
      headers: { authorization: 'Bearer rlmpeer_0000', 'x-realm-principal': 'uid:0', 'x-realm-forwarded-by': 'node-a' },
    });
    assert.equal(forged.status, 401);

    await sb.destroy();
    await assert.rejects(Sandbox.get(sb.id, b.client), (e) => code(e) === 'SANDBOX_NOT_FOUND');
  });

  void it('terminals and process attaches of a sandbox on node C, through node A; the node that holds it says who may', async () => {
    const sb = await Sandbox.create({ placement: { node: 'node-c' } }, a.client);
    // Interactive exec over the relayed WebSocket: stdin in, stdout and stderr apart, the exit code.
    const p = await sb.attach(['/bin/sh', '-c', 'read line; echo got-$line; echo err >&2; exit 5'], { tty: false });
    let out = '';
    let err = '';
    p.onData((s, d) => (s === 'stdout' ? (out += d) : (err += d)));
    p.write('hello\n');
    assert.deepEqual(await p.exited, { exitCode: 5, signal: null });
    assert.deepEqual([out, err], ['got-hello\n', 'err\n']);
    // A terminal: its size and a resize reach the command on node C.
    const term = await sb.attach(['/bin/sh'], { rows: 30, cols: 100 });
    let screen = '';
    term.onData((_s, d) => (screen += d));
    term.write('stty size\n');
    await until('the terminal size', () => Promise.resolve(/30 100/.test(screen)), 10_000);
    term.resize(40, 120);
    term.write('stty size; exit 3\n');
    assert.deepEqual(await term.exited, { exitCode: 3, signal: null });
    assert.match(screen, /40 120/);

    // A background process, attached through node A: what it printed, stdin, its exit.
    const proc = await sb.processes.start('echo started; read x; echo got-$x; exit 4');
    const att = await proc.attach();
    let seen = '';
    att.onData((_s, d) => (seen += d));
    await until('the replayed output', () => Promise.resolve(seen.includes('started\n')), 10_000);
    att.write('yo\n');
    assert.deepEqual(await att.exited, { exitCode: 4, signal: null });
    assert.match(seen, /got-yo/);

    // Another user: root's sandbox does not exist for it, and a process of root's named under a
    // sandbox of its own on node C is refused by node C, as that user, through the relay.
    const user = await a.userClient(4103);
    const wsFor = async (path: string): Promise<{ error: { code: string } }> => {
      const ws = new WebSocket(`${a.url.replace(/^http/, 'ws')}${path}`, {
        headers: { authorization: `Bearer ${user.token ?? ''}` },
      });
      const [first, closed] = await Promise.all([
        new Promise<string>((r, j) => {
          ws.once('message', (d: Buffer) => r(d.toString()));
          ws.once('error', j);
        }),
        new Promise<number>((r) => ws.once('close', (closeCode: number) => r(closeCode))),
      ]);
      assert.equal(closed, 1008);
      return JSON.parse(first) as { error: { code: string } };
    };
    const theirs = await wsFor(`/v1/sandboxes/${sb.id}/processes/${proc.id}/attach`);
    assert.equal(theirs.error.code, 'SANDBOX_NOT_FOUND');
    const own = await Sandbox.create({ placement: { node: 'node-c' } }, user);
    const running = await sb.processes.start('sleep 1000');
    const other = await wsFor(`/v1/sandboxes/${own.id}/processes/${running.id}/attach`);
    assert.equal(other.error.code, 'PROCESS_NOT_FOUND');
    await running.kill();
    await own.destroy();
    await sb.destroy();
  });

  void it('tags and drain are set from any node and placement honours them; users may not', async () => {
    const tagged = await c.client.nodes.tag('node-a', { add: ['ssd'] });
    assert.deepEqual(tagged.tags, ['ssd', 'zone=a']);
    // Other nodes learn of it by their watch on etcd.
    await until('node-b sees the tag', async () => (await b.client.nodes.get('node-a')).tags.includes('ssd'), 5000);
    assert.equal((await runOn(b, { placement: { tags: ['ssd'] } })).ranOn, 'node-a');
    const drained = await b.client.nodes.drain('node-a');
    assert.equal(drained.state, 'draining');
    await until('node-c sees the drain', async () => (await c.client.nodes.get('node-a')).state === 'draining', 5000);
    await until('node-a sees its drain', async () => (await a.client.nodes.get('node-a')).state === 'draining', 5000);
    const refused = await runOn(c, { placement: { tags: ['ssd'] } });
    assert.equal(refused.json.error.code, 'NO_NODE_FITS');
    assert.ok(refused.json.error.message.includes('node node-a: draining'), refused.json.error.message);
    // Sent to the draining node itself with no constraint, a run goes elsewhere.
    const moved = await runOn(a, {});
    assert.notEqual(moved.ranOn, 'node-a');
    assert.equal(moved.json.stdout, 'ran\n');
    assert.equal((await a.client.nodes.drain('node-a', false)).state, 'up');
    await until('node-c sees the end of the drain', async () => (await c.client.nodes.get('node-a')).state === 'up', 5000);
    await exec(join(PACKAGE_ROOT, 'bin', 'realm'), ['node', 'tag', 'node-a', '-ssd', '+fast'], {
      env: { ...process.env, REALM_URL: c.url, REALM_TOKEN: c.client.token ?? '' },
    });
    await until(
      'node-b sees the change made by the CLI',
      async () => (await b.client.nodes.get('node-a')).tags.join() === 'fast,zone=a',
      5000,
    );

    const user = await a.userClient(4102);
    assert.equal((await user.nodes.list()).length, 3, 'users see the nodes');
    await assert.rejects(user.nodes.drain('node-b'), (e) => code(e) === 'FORBIDDEN');
  });

  void it('a node shut down is down at once (its lease revoked); one killed with -9 is down within its lease; both come back', async () => {
    await c.stop();
    const afterStop = await a.client.nodes.get('node-c');
    // The list is read from etcd at most once a second.
    await until('node-c down after its shutdown', async () => (await a.client.nodes.get('node-c')).state === 'down', 1500);
    assert.equal(afterStop.id, 'node-c');
    const onB = await Sandbox.create({ placement: { node: 'node-b' } }, a.client);
    await b.kill('SIGKILL');
    await until('node-b down after kill -9', async () => (await a.client.nodes.get('node-b')).state === 'down');
    // Its sandbox is known to be there, and lost while it is down (not "no such sandbox").
    const lost = await Sandbox.get(onB.id, a.client).catch((e: unknown) => e);
    assert.equal(code(lost), 'NODE_UNREACHABLE');
    assert.match((lost as Error).message, /lives on node node-b, which is down/);
    const listed = (
      await a.client.request<{ sandboxes: { id: string; status: string; node?: string }[] }>('GET', '/v1/sandboxes')
    ).sandboxes;
    assert.deepEqual(
      listed.filter((x) => x.id === onB.id).map((x) => [x.status, x.node]),
      [['lost', 'node-b']],
      'listed as lost, on its node',
    );
    const gone = await runOn(a, { placement: { tags: ['gpu'] } });
    assert.ok(gone.json.error.message.includes('node node-b: down'), JSON.stringify(gone.json));
    await Promise.all([b.restart(), c.restart()]);
    await until('all up again', async () => (await a.client.nodes.list()).every((n) => n.state === 'up'));
    assert.equal((await runOn(a, { placement: { tags: ['gpu'] } })).ranOn, 'node-b');
    // Restarted, node-b recovered the sandbox: reachable again through any node.
    assert.equal((await (await Sandbox.get(onB.id, c.client)).exec(['echo', 'back'])).stdout, 'back\n');
    await onB.destroy();
  });

  void it('runs placed on a node that dies mid-run: the caller is told its result is lost, plain or streamed', async () => {
    const body = { language: 'bash', code: 'echo started; sleep 30', placement: { node: 'node-c' } };
    const plain = runOn(a, body);
    const streamed = await fetch(`${a.url}/v1/runs/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${a.client.token ?? ''}` },
      body: JSON.stringify(body),
    });
    assert.equal(streamed.status, 200);
    const reader = (streamed.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!text.includes('started')) {
      const { done, value } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    await c.kill('SIGKILL');
    try {
      const answer = await plain;
      assert.equal(answer.json.error.code, 'NODE_UNREACHABLE', JSON.stringify(answer.json));
      assert.match(answer.json.error.message, /placed on node node-c, which stopped answering before it finished/);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString();
      }
      assert.match(text, /event: error\ndata: .*NODE_UNREACHABLE.*stopped answering before it finished/, text);
    } finally {
      await c.restart();
    }
    await until('all up again', async () => (await a.client.nodes.list()).every((n) => n.state === 'up'));
  });

  void it('a node cut off from etcd fences itself and takes no new work; it takes work again when etcd answers', async () => {
    etcd.pause();
    try {
      await until('node-a fenced', async () => {
        const info = await a.client.request<{ cluster: { fenced: boolean } }>('GET', '/v1/node');
        return info.cluster.fenced;
      });
      const refused = await runOn(a, {});
      assert.equal(refused.json.error.code, 'CLUSTER_UNAVAILABLE', JSON.stringify(refused.json));
      const doctor = await exec(join(PACKAGE_ROOT, 'bin', 'realm'), ['doctor'], {
        env: { ...process.env, REALM_URL: a.url, REALM_TOKEN: a.client.token ?? '' },
      });
      assert.match(doctor.stdout, /CUT OFF from etcd/);
    } finally {
      etcd.resume();
    }
    await until('node-a takes work again', async () => (await runOn(a, {})).json.stdout === 'ran\n');
    await until('all up again', async () => (await a.client.nodes.list()).every((n) => n.state === 'up'));
  });

  void it('a node stopped (SIGSTOP) for longer than its lease is down meanwhile; continued, it rejoins and its sandbox is still there', async () => {
    const sb = await Sandbox.create({ placement: { node: 'node-c' } }, a.client);
    await sb.files.write('/home/user/kept', 'still here');
    c.proc.kill('SIGSTOP');
    try {
      await until('node-c down while stopped', async () => (await a.client.nodes.get('node-c')).state === 'down');
      // Work asked of the others goes around it, saying why.
      const refused = await runOn(a, { placement: { node: 'node-c' } });
      assert.equal(refused.json.error.code, 'NO_NODE_FITS');
      assert.match(refused.json.error.message, /node node-c: down/);
    } finally {
      c.proc.kill('SIGCONT');
    }
    await until('node-c up again', async () => (await a.client.nodes.get('node-c')).state === 'up');
    assert.match(c.log(), /lease was lost/);
    assert.equal(await sb.files.readText('/home/user/kept'), 'still here');
    assert.equal((await runOn(a, { placement: { node: 'node-c' } })).ranOn, 'node-c');
    await sb.destroy();
  });

  void it('a new node joins only with an invite, and an invite enrolls one node once; root alone makes them', async () => {
    const refused = await startNode(etcd.cluster, 'node-x').catch((e: unknown) => e);
    assert.match(String(refused), /not a member of this cluster yet.*realm cluster invite.*\[JOIN_REFUSED\]/s);
    const user = await b.userClient(4103);
    await assert.rejects(user.nodes.invite(), (e) => code(e) === 'FORBIDDEN');
    const cli = await exec(join(PACKAGE_ROOT, 'bin', 'realm'), ['cluster', 'invite', '--ttl', '5m'], {
      env: { ...process.env, REALM_URL: b.url, REALM_TOKEN: b.client.token ?? '' },
    });
    const token = cli.stdout.trim();
    assert.match(token, /^rlminv_/);
    const x = await startNode(etcd.cluster, 'node-x', { join: token });
    try {
      assert.equal((await a.client.nodes.get('node-x')).state, 'up');
      const again = await startNode(etcd.cluster, 'node-y', { join: token }).catch((e: unknown) => e);
      assert.match(String(again), /used already/);
      // Enrolled once, it needs no invite to come back.
      await x.stop();
      await x.restart();
    } finally {
      assert.deepEqual(await x.remove(), []);
    }
    // Retired: down now, and forgotten on request; an up node cannot be.
    await until('node-x down', async () => (await a.client.nodes.get('node-x')).state === 'down', 5000);
    await assert.rejects(a.client.nodes.remove('node-b'), (e) => code(e) === 'NODE_UP');
    await exec(join(PACKAGE_ROOT, 'bin', 'realm'), ['node', 'rm', 'node-x'], {
      env: { ...process.env, REALM_URL: c.url, REALM_TOKEN: c.client.token ?? '' },
    });
    assert.deepEqual(
      (await a.client.nodes.list()).map((n) => n.id),
      ['node-a', 'node-b', 'node-c'],
    );
  });

  void it('nothing is left behind', async () => {
    for (const n of [a, b, c]) {
      assert.deepEqual(await n.remove(), [], `node ${n.id}`);
      assert.deepEqual(egressRootLeft(n.cgroupRoot), [], `node ${n.id}: its egress cgroup root`);
    }
  });
});
