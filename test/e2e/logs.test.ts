/**
 * The daemon's log on a real daemon: a sandbox's denied connection and its life in
 * `realm logs --sandbox ID`; level filters; request ids echoed and carried to the lines made while
 * serving; the log is the admin's (another tenant's token gets 403); following it; and two event
 * fixes: a background process killed for memory is a sandbox.oom event, an app's check on push
 * is no run.finished.
 */
import assert from 'node:assert/strict';
import { type IncomingMessage, request } from 'node:http';
import { before, describe, it } from 'node:test';
import { Client, ForbiddenError, type LogLine, Sandbox, apps } from '@realm/sdk';
import { spawn } from 'node:child_process';
import { REALM_BIN, realm } from '../helpers/cli.js';
import { daemonHooks, userClient, namespaceSkipReason, type TestDaemon } from '../helpers/daemon.js';
import { wasmSkipReason, wat } from '../helpers/wasm.js';
import type { HeldEvent } from '../../src/engine/events.js';
import { log } from '../../src/logs/log.js';
import { LOG_READER_BACKLOG } from '../../src/daemon/routes/logs.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping log tests: ${skip}`);
const wasmSkip = skip ?? (await wasmSkipReason());

/** Poll the log until a line `pred` holds for is there (lines are logged as things happen, not after the answer). */
async function lineWhere(c: Client, q: Parameters<Client['logs']['list']>[0], pred: (l: LogLine) => boolean): Promise<LogLine> {
  for (let i = 0; i < 200; i++) {
    const hit = (await c.logs.list(q)).find(pred);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no log line as wanted in ${JSON.stringify(await c.logs.list(q))}`);
}

void describe('daemon log', { skip }, () => {
  let t: TestDaemon;
  let user: Client;
  daemonHooks((d) => (t = d), { warm: 0, log: { level: 'debug' }, gateway: '127.0.0.1:0' });
  before(async () => {
    if (skip) return;
    user = await userClient(t, 'uid:4202');
  });

  void it("a sandbox's denied connection and its creation show in `realm logs --sandbox ID`, with its id", async () => {
    const sb = await Sandbox.create({ image: 'host', allow: ['api.example.com'] }, t.client);
    const other = await Sandbox.create({ image: 'host' }, t.client);
    try {
      // Refused by name at the proxy: nothing is resolved or sent anywhere.
      const r = await sb.exec('curl -s -m 5 -o /dev/null -w "%{http_code}" http://evil.example.com:9/ 2>&1; true');
      assert.match(r.stdout, /403/);
      await lineWhere(t.client, { sandbox: sb.id }, (l) => /denied evil\.example\.com:9/.test(l.msg));
      const cli = await realm(['logs', '--sandbox', sb.id], { url: t.url });
      assert.equal(cli.code, 0, cli.stderr);
      assert.match(cli.stdout, new RegExp(`WARN +sandbox ${sb.id} denied evil\\.example\\.com:9 .*sandboxId=${sb.id}`));
      assert.match(cli.stdout, new RegExp(`INFO +sandbox\\.created ${sb.id}`));
      assert.doesNotMatch(cli.stdout, new RegExp(other.id), 'lines about another sandbox are left out');
      const json = await realm(['logs', '--sandbox', sb.id, '--json', '--level', 'warn'], { url: t.url });
      const lines = json.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as LogLine);
      assert.ok(lines.length >= 1);
      for (const l of lines) {
        assert.equal(l.sandboxId, sb.id);
        assert.equal(l.level, 'warn');
        assert.match(l.time, /^\d{4}-\d\d-\d\dT/);
      }
      assert.equal(lines.at(-1)?.host, 'evil.example.com');
    } finally {
      await sb.destroy();
      await other.destroy();
    }
  });

  void it('a level filter keeps the lines at or above it; a bad one is refused', async () => {
    await Sandbox.create({ image: 'host' }, t.client).then((s) => s.destroy());
    const all = await t.client.logs.list({ limit: 1000 });
    assert.ok(
      all.some((l) => l.level === 'debug'),
      'GETs log at debug on this daemon',
    );
    assert.ok(all.some((l) => l.level === 'info'));
    const info = await t.client.logs.list({ level: 'info', limit: 1000 });
    assert.ok(info.length > 0 && info.every((l) => l.level !== 'debug'));
    const warn = await t.client.logs.list({ level: 'warn', limit: 1000 });
    assert.ok(warn.every((l) => l.level === 'warn' || l.level === 'error'));
    assert.ok(warn.length < info.length);
    assert.equal((await t.client.logs.list({ limit: 3 })).length, 3);
    const future = new Date(Date.now() + 60_000);
    assert.deepEqual(await t.client.logs.list({ since: future }), []);
    const bad = await fetch(`${t.url}/v1/logs?level=loud`, { headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(bad.status, 400);
    const cli = await realm(['logs', '--level', 'loud'], { url: t.url });
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /--level loud: write debug, info, warn or error/);
  });

  void it('a request id is echoed, carried to the lines made while serving it, and one line tells of the request', async () => {
    const res = await fetch(`${t.url}/v1/sandboxes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json', 'x-request-id': 'my-req.42' },
      body: JSON.stringify({ image: 'host' }),
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('x-request-id'), 'my-req.42');
    const { id } = (await res.json()) as { id: string };
    try {
      const created = await lineWhere(t.client, {}, (l) => l.event === 'sandbox.created' && l.sandboxId === id);
      assert.equal(created.requestId, 'my-req.42', 'the event logged while the create was served');
      const line = await lineWhere(t.client, {}, (l) => l.requestId === 'my-req.42' && l.route === '/v1/sandboxes');
      assert.equal(line.method, 'POST');
      assert.equal(line.status, 201);
      assert.equal(line.level, 'info');
      assert.equal(typeof line.durationMs, 'number');
      assert.equal(line.principal, 'uid:0');
      // A header that is not a sane token is replaced, never logged; errors carry one too.
      const odd = await fetch(`${t.url}/v1/sandboxes/nope`, {
        headers: { authorization: `Bearer ${t.token}`, 'x-request-id': 'two words "quoted"' },
      });
      assert.equal(odd.status, 404);
      const given = odd.headers.get('x-request-id') ?? '';
      assert.match(given, /^[0-9a-f-]{36}$/);
      const miss = await lineWhere(t.client, {}, (l) => l.requestId === given);
      assert.equal(miss.route, '/v1/sandboxes/:id');
      assert.equal(miss.status, 404);
    } finally {
      await t.client.request('DELETE', `/v1/sandboxes/${id}`);
    }
  });

  void it('answers a route makes itself carry the request id and the node too: MCP, a blob download', async () => {
    const auth = { authorization: `Bearer ${t.token}` };
    const node = (await fetch(`${t.url}/v1/node`, { headers: auth })).headers.get('x-realm-node');
    assert.ok(node, 'an answer Hono makes names the node');
    const mcp = await fetch(`${t.url}/mcp`, {
      method: 'POST',
      headers: {
        ...auth,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'x-request-id': 'mcp-1',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'test', version: '1' } },
      }),
    });
    assert.equal(mcp.status, 200, await mcp.clone().text());
    assert.equal(mcp.headers.get('x-request-id'), 'mcp-1');
    assert.equal(mcp.headers.get('x-realm-node'), node);
    await mcp.body?.cancel();
    const put = await fetch(`${t.url}/v1/blobs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: 'some bytes',
    });
    assert.equal(put.status, 201);
    const { digest } = (await put.json()) as { digest: string };
    const got = await fetch(`${t.url}/v1/blobs/${digest}`, { headers: { ...auth, 'x-request-id': 'blob-1' } });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('x-request-id'), 'blob-1');
    assert.equal(got.headers.get('x-realm-node'), node);
    assert.equal(await got.text(), 'some bytes');
    await t.client.request('DELETE', `/v1/blobs/${digest}`);
  });

  void it("the log is the admin's: another tenant's token is refused, and so is its CLI", async () => {
    await assert.rejects(user.logs.list(), ForbiddenError);
    const stream = await fetch(`${t.url}/v1/logs/stream`, { headers: { authorization: `Bearer ${user.token ?? ''}` } });
    assert.equal(stream.status, 403);
    await stream.body?.cancel();
    const cli = await realm(['logs'], { url: t.url, token: user.token ?? '' });
    assert.notEqual(cli.code, 0);
    assert.match(cli.stderr, /admin/);
  });

  void it('a follower gets the kept lines first, then each new line as it is made', async () => {
    // Lines at info to be kept (a create, a destroy and their requests): what the follower gets first.
    await Sandbox.create({ image: 'host' }, t.client).then((s) => s.destroy());
    const abort = new AbortController();
    const seen: LogLine[] = [];
    let wake: (() => void) | undefined;
    const reading = (async () => {
      try {
        for await (const l of t.client.logs.follow({ level: 'info', limit: 3, signal: abort.signal })) {
          seen.push(l);
          wake?.();
        }
      } catch (e) {
        if (!abort.signal.aborted) throw e;
      }
    })();
    const until = async (pred: (l: LogLine) => boolean): Promise<LogLine> => {
      for (;;) {
        const hit = seen.find(pred);
        if (hit) return hit;
        await new Promise<void>((r) => (wake = r));
      }
    };
    try {
      await until(() => seen.length >= 3);
      assert.ok(seen.every((l) => l.level !== 'debug'));
      const sb = await Sandbox.create({ image: 'host', labels: { follow: 'me' } }, t.client);
      await sb.destroy();
      const made = await until((l) => l.event === 'sandbox.destroyed' && l.sandboxId === sb.id);
      assert.equal(made.level, 'info');
      assert.ok(seen.some((l) => l.event === 'sandbox.created' && l.sandboxId === sb.id));
    } finally {
      abort.abort();
      await reading;
    }
  });

  void it('`realm logs -f` prints each new line as it is made', async () => {
    const child = spawn(REALM_BIN, ['logs', '-f', '--level', 'warn', '-n', '1'], {
      env: { ...process.env, REALM_URL: t.url, REALM_TOKEN: t.token },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      // Until the follower is there to see it: a line a second, each its own.
      for (let i = 0; !/WARN +follow me 'cli' \d+ sandboxId=sb-cli/.test(out); i++) {
        if (child.exitCode !== null) assert.fail(`realm logs -f ended: ${out}`);
        log.warn(`follow me 'cli' ${i}`, { sandboxId: 'sb-cli' });
        await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      child.kill('SIGINT');
      await exited;
    }
  });

  void it('a follower that does not read is dropped with an overflow event, not kept growing', async () => {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const u = new URL(`${t.url}/v1/logs/stream?sandbox=sb-flood&limit=1`);
      request({
        host: u.hostname,
        port: u.port,
        path: `${u.pathname}${u.search}`,
        headers: { authorization: `Bearer ${t.token}` },
      })
        .on('response', resolve)
        .on('error', reject)
        .end();
    });
    assert.equal(res.statusCode, 200);
    res.pause();
    // Far more than the socket buffers and the reader's backlog hold, while it reads nothing.
    const pad = 'x'.repeat(2048);
    const total = 10 * LOG_READER_BACKLOG;
    for (let i = 0; i < total; i++) {
      log.info('flood', { sandboxId: 'sb-flood', i, pad });
      if (i % 200 === 0) await new Promise((r) => setImmediate(r));
    }
    let text = '';
    res.setEncoding('utf8');
    for await (const chunk of res) text += chunk as string;
    const blocks = text.split('\n\n').filter((b) => b.includes('data:'));
    assert.match(blocks.at(-1) ?? '', /^event: overflow\ndata: .*fell 1000 lines behind/m);
    assert.ok(blocks.length < total, `${blocks.length} messages`);
  });

  void it('a background process killed for memory makes a sandbox.oom event (and a warning)', async () => {
    const got: HeldEvent[] = [];
    const off = t.daemon.engine.events.subscribe((e) => {
      if (e.type === 'sandbox.oom') got.push(e);
    });
    const sb = await Sandbox.create({ image: 'host', memory: '64m' }, t.client);
    try {
      const p = await sb.processes.start(['/usr/bin/python3', '-c', 'a = []\nwhile True: a.append(bytearray(8 << 20))']);
      const line = await lineWhere(t.client, { sandbox: sb.id, level: 'warn' }, (l) => l.event === 'sandbox.oom');
      assert.equal((line.data as { process?: string }).process, p.id);
      assert.equal(got.length, 1);
      assert.equal(got[0]?.ids.sandbox, sb.id);
    } finally {
      off();
      await sb.destroy();
    }
  });

  void it("an app's check on push is no run.finished event", { skip: wasmSkip }, async () => {
    const types: string[] = [];
    const off = t.daemon.engine.events.subscribe((e) => types.push(e.type));
    try {
      const mod = await wat('(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))');
      await apps.push({ name: 'quiet', module: mod }, t.client);
      await apps.remove('quiet', t.client);
      assert.ok(types.includes('app.pushed'), types.join(' '));
      assert.ok(!types.includes('run.finished'), types.join(' '));
    } finally {
      off();
    }
  });
});
