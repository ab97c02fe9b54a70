/**
 * The dashboard's session cookie, attacked the way a page of another site (or one that rebinds
 * its name) can: the browser attaches a cookie to requests it sends on the page's behalf, but the
 * page cannot add the `X-Realm-UI` header without a preflight, nor forge a WebSocket's Origin.
 * Each request here is what such a browser puts on the wire; each must be refused and do nothing.
 * Then: a session outlives a daemon restart (kept hashed in the state store), and a token revoked
 * after the restart still ends its sessions; a guessed cookie, a revoked token's session and a
 * signed-out one are dead, and the cookie's secret is nowhere in the data dir.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { Sandbox, tokens } from '@realm/sdk';
import { leftovers, removeTestDirs, startTestDaemon, testDriverSkipReason, type TestDaemon } from '../../helpers/daemon.js';

const skip = await testDriverSkipReason();
if (skip) console.log(`# skipping dashboard session tests: ${skip}`);

interface Answer {
  status: number;
  code: string | undefined;
}

/** One request exactly as given (no header added but Host when not given). */
function send(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const all: Record<string, string> = { host: `127.0.0.1:${port}`, ...headers };
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
        resolve({ status: res.statusCode ?? 0, code });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A terminal WebSocket with these headers: 101 and `echo`'s output when it opens and runs, else the refusal's status. */
function terminal(port: number, id: string, headers: Record<string, string>): Promise<{ status: number; out: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/sandboxes/${id}/exec/ws`, { headers });
    let out = '';
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, out });
    });
    ws.once('open', () => ws.send(JSON.stringify({ type: 'start', command: ['echo', 'ran'], tty: false })));
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString()) as { type: string; data?: string };
      if (msg.type === 'stdout') out += msg.data ?? '';
      if (msg.type === 'exit' || msg.type === 'error') ws.close();
    });
    ws.once('close', () => resolve({ status: 101, out }));
    ws.once('error', reject);
  });
}

/** Every file under `dir` holding `needle`. */
function filesHolding(dir: string, needle: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) found.push(...filesHolding(p, needle));
    else if (st.isFile() && st.size < 64 << 20 && readFileSync(p).includes(needle)) found.push(p);
  }
  return found;
}

void describe('dashboard session cookie', { skip }, () => {
  let t: TestDaemon;
  let port = 0;
  let sb: Sandbox;
  let made: { id: string; token: string };
  let cookie = '';
  let secret = '';

  const login = async (token: string): Promise<string> => {
    const res = await fetch(`${t.url}/v1/ui/session`, {
      method: 'POST',
      headers: { 'x-realm-ui': '1', 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    assert.equal(res.status, 200);
    return (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  };

  before(async () => {
    if (skip) return;
    t = await startTestDaemon({ warm: 0 });
    port = Number(new URL(t.url).port);
    sb = await Sandbox.create({}, t.client);
    made = await tokens.create('ui-hostile', t.client);
    cookie = await login(made.token);
    secret = cookie.slice('realm_session='.length);
  });
  after(async () => {
    if (!t) return;
    await sb.destroy().catch(() => undefined);
    assert.deepEqual(await leftovers(t), []);
    await t.close();
    removeTestDirs(t);
  });

  void it('the cookie without the header is no credential: reads, JSON writes, form posts and cross-site requests are refused', async () => {
    const before = (await Sandbox.list({}, t.client)).length;
    assert.deepEqual(await send(port, 'GET', '/v1/sandboxes', { cookie }), { status: 401, code: 'UNAUTHORIZED' });
    assert.deepEqual(await send(port, 'GET', '/v1/ui/session', { cookie }), { status: 401, code: 'UNAUTHORIZED' });
    for (const value of ['', '0', 'true', '11', 'yes']) {
      const r = await send(port, 'GET', '/v1/sandboxes', { cookie, 'x-realm-ui': value });
      assert.equal(r.status, 401, `X-Realm-UI: "${value}"`);
    }
    // What a same-site script could send without the header (JSON), and what a form sends.
    assert.deepEqual(await send(port, 'POST', '/v1/sandboxes', { cookie, 'content-type': 'application/json' }, '{}'), {
      status: 401,
      code: 'UNAUTHORIZED',
    });
    assert.equal(
      (await send(port, 'POST', '/v1/sandboxes', { cookie, 'content-type': 'application/x-www-form-urlencoded' }, 'a=b')).status,
      415,
    );
    // A page of another site that got the header through (it cannot without a preflight) is refused by its Origin.
    assert.deepEqual(await send(port, 'GET', '/v1/sandboxes', { cookie, 'x-realm-ui': '1', origin: 'http://evil.example' }), {
      status: 403,
      code: 'ORIGIN_NOT_ALLOWED',
    });
    // A rebound name: Host is not the daemon's.
    assert.equal(
      (await send(port, 'GET', '/v1/sandboxes', { cookie, 'x-realm-ui': '1', host: `evil.example:${port}` })).status,
      421,
    );
    // Signing out needs the header too: a cross-site link does not end the session.
    assert.equal((await send(port, 'DELETE', '/v1/ui/session', { cookie })).status, 400);
    assert.equal((await send(port, 'GET', '/v1/sandboxes', { cookie, 'x-realm-ui': '1' })).status, 200);
    assert.equal((await Sandbox.list({}, t.client)).length, before, 'no sandbox was made');
  });

  void it("a terminal WebSocket takes the cookie only from the daemon's own origin", async () => {
    const own = `http://127.0.0.1:${port}`;
    assert.equal((await terminal(port, sb.id, { cookie })).status, 401, 'no Origin (not a browser page)');
    assert.equal((await terminal(port, sb.id, { cookie, origin: 'http://evil.example' })).status, 403);
    assert.equal((await terminal(port, sb.id, { cookie, origin: 'null' })).status, 403);
    // localhost is an allowed Host on loopback, but a page at http://localhost:PORT is another origin than the Host names.
    assert.equal((await terminal(port, sb.id, { cookie, origin: `http://localhost:${port}` })).status, 401);
    assert.equal((await terminal(port, sb.id, { cookie, origin: `https://127.0.0.1:${port}` })).status, 401);
    const ok = await terminal(port, sb.id, { cookie, origin: own });
    assert.deepEqual(ok, { status: 101, out: 'ran\n' });
  });

  void it('a session outlives a daemon restart; a token revoked after it still ends its sessions', async () => {
    const other = await tokens.create('ui-restart', t.client);
    const otherCookie = await login(other.token);
    const admin = await login(t.token);
    await t.close({ keepSandboxes: true });
    t = await startTestDaemon({ warm: 0, dataDir: t.dataDir, cgroupRoot: t.cgroupRoot, listen: `127.0.0.1:${port}` });
    for (const c of [cookie, otherCookie, admin]) {
      assert.equal((await send(port, 'GET', '/v1/sandboxes', { cookie: c, 'x-realm-ui': '1' })).status, 200);
      // Still only with the header.
      assert.equal((await send(port, 'GET', '/v1/sandboxes', { cookie: c })).status, 401);
    }
    await tokens.revoke(other.id, t.client);
    assert.equal((await send(port, 'GET', '/v1/sandboxes', { cookie: otherCookie, 'x-realm-ui': '1' })).status, 401);
    assert.equal((await send(port, 'GET', '/v1/sandboxes', { cookie, 'x-realm-ui': '1' })).status, 200);
    // What the store keeps: digests, never a secret.
    for (const c of [cookie, otherCookie, admin]) assert.deepEqual(filesHolding(t.dataDir, c.slice('realm_session='.length)), []);
  });

  void it("a guessed cookie is nothing; the secret is nowhere in the data dir; a revoked token's session and a signed-out one are dead", async () => {
    const guess = `realm_session=${'A'.repeat(secret.length)}`;
    assert.equal((await send(port, 'GET', '/v1/sandboxes', { cookie: guess, 'x-realm-ui': '1' })).status, 401);
    assert.deepEqual(filesHolding(t.dataDir, secret), []);
    const other = await login(made.token);
    await tokens.revoke(made.id, t.client);
    assert.equal((await send(port, 'GET', '/v1/sandboxes', { cookie, 'x-realm-ui': '1' })).status, 401);
    assert.equal((await send(port, 'GET', '/v1/sandboxes', { cookie: other, 'x-realm-ui': '1' })).status, 401);
    const admin = await login(t.token);
    assert.equal((await send(port, 'DELETE', '/v1/ui/session', { cookie: admin, 'x-realm-ui': '1' })).status, 204);
    assert.equal((await send(port, 'GET', '/v1/sandboxes', { cookie: admin, 'x-realm-ui': '1' })).status, 401);
  });
});
