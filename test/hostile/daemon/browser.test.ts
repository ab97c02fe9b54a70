/**
 * The browser door. A web page in a browser on the daemon's machine plays the attacker: it can
 * send "simple" cross-site requests (text/plain, form or untyped bodies: no preflight), open a
 * WebSocket from its own origin, and rebind its own name to 127.0.0.1 (DNS rebinding: its
 * requests then carry `Host: evil.example:PORT` and it may read the answers). Each attempt is
 * what such a browser puts on the wire, sent here with plain HTTP. Each must be refused with its
 * status and code and change nothing: no sandbox made, no command run (counted at the engine,
 * and the marker file the command would write stays absent).
 *
 * Then what must keep working: the daemon's own origin, a `--cors-origin` page (preflight and
 * all), a configured `--host-name`, and Piston clients that send JSON with no Content-Type.
 *
 * Driver-independent (test/hostile/daemon/, run once per `npm test`): the Host, Origin and
 * Content-Type checks are the daemon's HTTP layer and answer before any driver is asked; the
 * victim sandbox only shows that nothing ran.
 */
import assert from 'node:assert/strict';
import { request, type IncomingHttpHeaders } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { FileNotFoundError, Sandbox } from '@realm/sdk';
import type { Engine } from '../../../src/engine/engine.js';
import { leftovers, removeTestDirs, startTestDaemon, testDriverSkipReason, type TestDaemon } from '../../helpers/daemon.js';
import { nonce } from '../common.js';

const skip = await testDriverSkipReason();
if (skip) console.log(`# skipping browser door tests: ${skip}`);

const EVIL = 'http://evil.example';
const APP = 'http://app.example:8080';
const NAME = 'realm.test';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The stable error code of an error answer. */
  code: string | undefined;
}

/**
 * The daemon's admin token, sent with every request and upgrade: the guard must refuse a page's
 * request even where it would be authorised (an anonymous route, a token a page got hold of).
 */
let token = '';

/** One HTTP request exactly as given: no Host, Origin or Content-Type added that is not in `headers` (but the token). */
function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const all: Record<string, string> = { host: `127.0.0.1:${port}`, authorization: `Bearer ${token}`, ...headers };
    if (body !== undefined) all['content-length'] = String(Buffer.byteLength(body));
    const req = request({ host: '127.0.0.1', port, method, path, headers: all, setHost: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let code: string | undefined;
        try {
          code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
        } catch {
          code = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, code });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A WebSocket upgrade with these headers. When it opens, it starts `command` (as a page would)
 * and waits for its exit: the answer is 101. When refused, the refusal's status.
 */
function upgrade(port: number, path: string, headers: Record<string, string>, command: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { authorization: `Bearer ${token}`, ...headers } });
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.once('open', () => ws.send(JSON.stringify({ type: 'start', command, tty: false })));
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString()) as { type: string };
      if (msg.type === 'exit' || msg.type === 'error') ws.close();
    });
    ws.once('close', () => resolve(101));
    ws.once('error', reject);
  });
}

const COUNTED = ['createSandbox', 'exec', 'run', 'interactive', 'startProcess'] as const;
type Counted = (typeof COUNTED)[number];

/** Count the engine's calls that make sandboxes or run programs (the real engine, wrapped). */
function countCalls(engine: Engine): Record<Counted, number> {
  const calls = Object.fromEntries(COUNTED.map((n) => [n, 0])) as Record<Counted, number>;
  const methods = engine as unknown as Record<Counted, (...args: unknown[]) => unknown>;
  for (const name of COUNTED) {
    const real = methods[name].bind(engine);
    methods[name] = (...args: unknown[]) => {
      calls[name]++;
      return real(...args);
    };
  }
  return calls;
}

void describe('browser door', { skip }, () => {
  let t: TestDaemon;
  let port = 0;
  let sb: Sandbox;
  let calls: Record<Counted, number>;
  before(async () => {
    t = await startTestDaemon({ warm: 0, hostNames: [NAME], corsOrigins: [APP] });
    port = Number(new URL(t.url).port);
    token = t.token;
    sb = await Sandbox.create({ name: 'victim' }, t.client);
    calls = countCalls(t.daemon.engine);
  });
  after(async () => {
    try {
      await sb.destroy();
      assert.deepEqual(await leftovers(t), []);
    } finally {
      await t.close();
      removeTestDirs(t);
    }
  });

  /** A command that leaves a marker in the victim sandbox, and the check that it never ran. */
  const touch = (mark: string): string[] => ['/bin/sh', '-c', `touch /home/user/${mark}`];
  const assertUntouched = async (mark: string): Promise<void> => {
    await assert.rejects(sb.files.stat(`/home/user/${mark}`), FileNotFoundError, `the command behind ${mark} ran`);
  };
  /** Run an attack; nothing may have been created or run while it was answered. */
  const refused = async (attack: () => Promise<Answer>, status: number, code: string): Promise<Answer> => {
    const before = { ...calls };
    const sandboxes = (await t.daemon.engine.listSandboxes()).length;
    const res = await attack();
    assert.equal(res.status, status, `answered ${res.status} ${res.body.slice(0, 300)}`);
    assert.equal(res.code, code, res.body.slice(0, 300));
    assert.deepEqual(calls, before, 'the engine made a sandbox or ran a program');
    assert.equal((await t.daemon.engine.listSandboxes()).length, sandboxes, 'a sandbox was created');
    assert.equal(res.headers['access-control-allow-origin'], undefined, 'a refusal must not grant CORS');
    return res;
  };

  void it('a text/plain POST (a simple request: no preflight) cannot exec a command', async () => {
    const mark = `pwned-${nonce()}`;
    await refused(
      () =>
        send(
          port,
          'POST',
          `/v1/sandboxes/${sb.id}/exec`,
          { 'content-type': 'text/plain;charset=UTF-8' },
          JSON.stringify({ command: touch(mark) }),
        ),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    await refused(
      () =>
        send(
          port,
          'POST',
          '/v1/sandboxes/victim/exec/stream',
          { 'content-type': 'text/plain' },
          JSON.stringify({ command: touch(mark) }),
        ),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    await assertUntouched(mark);
  });

  void it('an untyped body (fetch with a Blob of no type, no-cors) cannot exec a command', async () => {
    const mark = `pwned-${nonce()}`;
    await refused(
      () => send(port, 'POST', `/v1/sandboxes/${sb.id}/exec`, {}, JSON.stringify({ command: touch(mark) })),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    await assertUntouched(mark);
  });

  void it('text/plain and form posts to /v1/runs run no code', async () => {
    const code = JSON.stringify({ language: 'bash', code: 'echo ran' });
    await refused(() => send(port, 'POST', '/v1/runs', { 'content-type': 'text/plain' }, code), 415, 'UNSUPPORTED_MEDIA_TYPE');
    await refused(
      () => send(port, 'POST', '/v1/runs', { 'content-type': 'application/x-www-form-urlencoded' }, code),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    // A <form enctype="text/plain"> with one field named `{"language":"bash","code":"echo ran","x":"` and the value `"}`.
    await refused(
      () => send(port, 'POST', '/v1/runs', { 'content-type': 'text/plain' }, `${code.slice(0, -1)},"x":"="}`),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    await refused(
      () => send(port, 'POST', '/v1/runs', { 'content-type': 'multipart/form-data; boundary=x' }, code),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    await refused(
      () => send(port, 'POST', '/v1/sandboxes', { 'content-type': 'text/plain' }, '{}'),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
  });

  void it('routes with raw bodies take only their own types; /mcp and Piston are no door either', async () => {
    await refused(
      () => send(port, 'PUT', `/v1/sandboxes/${sb.id}/files?path=/home/user/planted`, { 'content-type': 'text/plain' }, 'x'),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    await refused(
      () => send(port, 'PUT', `/v1/sandboxes/${sb.id}/files?path=/home/user/planted`, {}, 'x'),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    await assertUntouched('planted');
    await refused(
      () =>
        send(
          port,
          'PUT',
          `/v1/sandboxes/${sb.id}/files/tar?path=/home/user`,
          { 'content-type': 'application/x-www-form-urlencoded' },
          'x',
        ),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    await refused(
      () => send(port, 'POST', '/v1/images/import', { 'content-type': 'text/plain' }, 'x'),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    const tools = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'run_code', arguments: { language: 'bash', code: 'echo ran' } },
    });
    await refused(
      () => send(port, 'POST', '/mcp', { 'content-type': 'text/plain', accept: 'application/json, text/event-stream' }, tools),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    const piston = JSON.stringify({ language: 'bash', version: '*', files: [{ content: 'echo ran' }] });
    await refused(
      () => send(port, 'POST', '/api/v2/execute', { 'content-type': 'text/plain' }, piston),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    await refused(
      () => send(port, 'POST', '/api/v2/execute', { 'content-type': 'application/x-www-form-urlencoded' }, piston),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    // Piston's exception (no Content-Type) still has to pass the Origin check.
    await refused(() => send(port, 'POST', '/api/v2/execute', { origin: EVIL }, piston), 403, 'ORIGIN_NOT_ALLOWED');
  });

  void it('DNS rebinding: a page whose name now points here reads nothing and runs nothing', async () => {
    const host = `evil.example:${port}`;
    const read = await refused(() => send(port, 'GET', '/v1/sandboxes', { host }), 421, 'HOST_NOT_ALLOWED');
    assert.ok(!read.body.includes(sb.id), 'the answer showed the sandboxes');
    await refused(() => send(port, 'GET', '/v1/health', { host }), 421, 'HOST_NOT_ALLOWED');
    const mark = `pwned-${nonce()}`;
    // Same-origin for the browser (the page's own name), so JSON with its type and all.
    await refused(
      () =>
        send(
          port,
          'POST',
          `/v1/sandboxes/${sb.id}/exec`,
          { host, 'content-type': 'application/json' },
          JSON.stringify({ command: touch(mark) }),
        ),
      421,
      'HOST_NOT_ALLOWED',
    );
    await refused(
      () =>
        send(
          port,
          'POST',
          `/v1/sandboxes/${sb.id}/exec`,
          { host, origin: `http://${host}`, 'content-type': 'application/json' },
          JSON.stringify({ command: touch(mark) }),
        ),
      421,
      'HOST_NOT_ALLOWED',
    );
    // The right address with another port, a name with a trailing dot, a missing Host: all refused.
    await refused(() => send(port, 'GET', '/v1/sandboxes', { host: `127.0.0.1:${port + 1}` }), 421, 'HOST_NOT_ALLOWED');
    await refused(() => send(port, 'GET', '/v1/sandboxes', { host: `localhost.:${port}` }), 421, 'HOST_NOT_ALLOWED');
    await refused(() => send(port, 'GET', '/v1/sandboxes', { host: `${NAME}.evil.example:${port}` }), 421, 'HOST_NOT_ALLOWED');
    await assertUntouched(mark);
  });

  void it('a cross-site POST with the right JSON type (a CORS request the page cannot read) changes nothing', async () => {
    const mark = `pwned-${nonce()}`;
    await refused(
      () =>
        send(
          port,
          'POST',
          `/v1/sandboxes/${sb.id}/exec`,
          { origin: EVIL, 'content-type': 'application/json' },
          JSON.stringify({ command: touch(mark) }),
        ),
      403,
      'ORIGIN_NOT_ALLOWED',
    );
    await refused(
      () => send(port, 'POST', '/v1/sandboxes', { origin: EVIL, 'content-type': 'application/json' }, '{}'),
      403,
      'ORIGIN_NOT_ALLOWED',
    );
    await refused(() => send(port, 'DELETE', `/v1/sandboxes/${sb.id}`, { origin: EVIL }), 403, 'ORIGIN_NOT_ALLOWED');
    await refused(() => send(port, 'POST', `/v1/sandboxes/${sb.id}/stop`, { origin: 'null' }), 403, 'ORIGIN_NOT_ALLOWED');
    await refused(
      () => send(port, 'POST', `/v1/sandboxes/${sb.id}/stop`, { origin: `http://127.0.0.1:${port}.evil.example` }),
      403,
      'ORIGIN_NOT_ALLOWED',
    );
    // Its preflight gets no CORS grant either.
    await refused(
      () =>
        send(port, 'OPTIONS', `/v1/sandboxes/${sb.id}/exec`, {
          origin: EVIL,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type',
        }),
      403,
      'ORIGIN_NOT_ALLOWED',
    );
    assert.equal((await t.daemon.engine.getSandbox(sb.id)).status, 'running');
    await assertUntouched(mark);
  });

  void it('a WebSocket from another origin cannot open a terminal', async () => {
    const before = { ...calls };
    const mark = `pwned-${nonce()}`;
    assert.equal(await upgrade(port, `/v1/sandboxes/${sb.id}/exec/ws`, { origin: EVIL }, touch(mark)), 403);
    assert.equal(
      await upgrade(
        port,
        `/v1/sandboxes/${sb.id}/exec/ws`,
        { origin: `http://evil.example:${port}`, host: `evil.example:${port}` },
        touch(mark),
      ),
      421,
    );
    assert.deepEqual(calls, before);
    await assertUntouched(mark);
  });

  void it("works: no Origin (CLI, SDK, curl), the daemon's own origin, a configured host name", async () => {
    const marks = [nonce(), nonce(), nonce(), nonce()].map((n) => `ok-${n}`);
    const exec = (mark: string, headers: Record<string, string>) =>
      send(
        port,
        'POST',
        `/v1/sandboxes/${sb.id}/exec`,
        { 'content-type': 'application/json; charset=utf-8', ...headers },
        JSON.stringify({ command: touch(mark) }),
      );
    const ways: Record<string, string>[] = [
      {},
      { origin: `http://127.0.0.1:${port}` },
      { host: `localhost:${port}`, origin: `http://localhost:${port}` },
      { host: `${NAME}:${port}`, origin: `http://${NAME}:${port}` },
    ];
    for (const [i, headers] of ways.entries()) {
      const res = await exec(marks[i] ?? '', headers);
      assert.equal(res.status, 200, `${JSON.stringify(headers)}: ${res.body.slice(0, 300)}`);
      assert.equal(res.headers['access-control-allow-origin'], undefined, 'same-origin needs no CORS');
    }
    for (const mark of marks) assert.equal((await sb.files.stat(mark)).type, 'file');
    assert.equal(await upgrade(port, `/v1/sandboxes/${sb.id}/exec/ws`, { origin: `http://127.0.0.1:${port}` }, ['true']), 101);
    assert.equal(await upgrade(port, `/v1/sandboxes/${sb.id}/exec/ws`, {}, ['true']), 101);
    // A body-less POST needs no type.
    assert.equal((await send(port, 'POST', '/v1/images/prune')).status, 200);
  });

  void it('works: a --cors-origin page gets its preflight answered and reads the answers', async () => {
    const pre = await send(port, 'OPTIONS', `/v1/sandboxes/${sb.id}/exec`, {
      origin: APP,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type',
    });
    assert.equal(pre.status, 204, pre.body);
    assert.equal(pre.headers['access-control-allow-origin'], APP);
    assert.match(String(pre.headers['access-control-allow-methods']), /POST/);
    assert.match(String(pre.headers['access-control-allow-headers']), /authorization/i);
    assert.match(String(pre.headers['access-control-allow-headers']), /content-type/i);
    assert.match(String(pre.headers.vary), /origin/i);
    const mark = `cors-${nonce()}`;
    const res = await send(
      port,
      'POST',
      `/v1/sandboxes/${sb.id}/exec`,
      { origin: APP, 'content-type': 'application/json' },
      JSON.stringify({ command: touch(mark) }),
    );
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.equal((await sb.files.stat(mark)).type, 'file');
    // Errors are readable too (the page sees the code), and GETs.
    const missing = await send(port, 'GET', '/v1/sandboxes/nope', { origin: APP });
    assert.deepEqual(
      [missing.status, missing.code, missing.headers['access-control-allow-origin']],
      [404, 'SANDBOX_NOT_FOUND', APP],
    );
    // Still JSON only: CORS does not reopen the simple-request door (the page may read why).
    const runs = calls.run;
    const plain = await send(
      port,
      'POST',
      '/v1/runs',
      { origin: APP, 'content-type': 'text/plain' },
      JSON.stringify({ language: 'bash', code: 'echo ran' }),
    );
    assert.deepEqual(
      [plain.status, plain.code, plain.headers['access-control-allow-origin'], calls.run],
      [415, 'UNSUPPORTED_MEDIA_TYPE', APP, runs],
    );
    assert.equal(await upgrade(port, `/v1/sandboxes/${sb.id}/exec/ws`, { origin: APP }, ['true']), 101);
    // A route that answers with a Response of its own (MCP's) carries the grant too.
    const mcp = await send(
      port,
      'POST',
      '/mcp',
      { origin: APP, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    );
    assert.equal(mcp.status, 200, mcp.body.slice(0, 300));
    assert.match(mcp.body, /run_code|"tools"/);
    assert.equal(mcp.headers['access-control-allow-origin'], APP);
    // As does one written straight to Node's response (a blob download).
    const put = await send(port, 'POST', '/v1/blobs', { origin: APP, 'content-type': 'application/octet-stream' }, 'cors bytes');
    assert.equal(put.status, 201, put.body);
    const { digest } = JSON.parse(put.body) as { digest: string };
    const blob = await send(port, 'GET', `/v1/blobs/${digest}`, { origin: APP });
    assert.deepEqual([blob.status, blob.body, blob.headers['access-control-allow-origin']], [200, 'cors bytes', APP]);
    assert.match(String(blob.headers.vary), /origin/i);
    await send(port, 'DELETE', `/v1/blobs/${digest}`);
  });

  void it('works: Piston clients that send JSON with no Content-Type', async () => {
    const res = await send(
      port,
      'POST',
      '/api/v2/execute',
      {},
      JSON.stringify({ language: 'bash', version: '*', files: [{ content: 'echo piston' }] }),
    );
    assert.equal(res.status, 200, res.body);
    assert.equal((JSON.parse(res.body) as { run: { stdout: string } }).run.stdout, 'piston\n');
  });
});
