/**
 * The dashboard over HTTP: its files at /ui/ (types, caching, client routes, the browser guard),
 * and the session routes a browser signs in with (the cookie works only with its header; the
 * hostile side is test/hostile/daemon/ui-session.test.ts, the browser itself test/browser/).
 */
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { tokens } from '@realm/sdk';
import { daemonHooks, testDriverSkipReason, type TestDaemon } from '../helpers/daemon.js';

const skip = await testDriverSkipReason();
if (skip) console.log(`# skipping dashboard tests: ${skip}`);

const UI = { 'x-realm-ui': '1' };

/** A GET with exactly these headers and this raw path (fetch would normalise ../ away). */
function raw(
  url: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The session cookie's `name=value` of a Set-Cookie answer. */
function cookieOf(res: Response): { pair: string; attrs: string } {
  const set = res.headers.get('set-cookie') ?? '';
  const pair = set.split(';')[0] ?? '';
  return { pair, attrs: set };
}

void describe('dashboard', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d), { warm: 0 });

  void it('/ redirects to /ui/, which serves the app; client routes get index.html, hashed assets are immutable', async () => {
    const root = await fetch(`${t.url}/`, { redirect: 'manual' });
    assert.equal(root.status, 302);
    assert.equal(root.headers.get('location'), '/ui/');
    const index = await fetch(`${t.url}/ui/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    assert.match(index.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const html = await index.text();
    const script = /<script[^>]+src="(\/ui\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(script, html);
    const deep = await fetch(`${t.url}/ui/sandboxes/abc/files`);
    assert.equal(deep.status, 200);
    assert.equal(await deep.text(), html);
    const js = await raw(t.url, script, { host: new URL(t.url).host, 'accept-encoding': 'gzip' });
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(js.headers['content-encoding'], 'gzip');
    assert.match(gunzipSync(js.body).toString('utf8'), /X-Realm-UI/);
    const missing = await fetch(`${t.url}/ui/assets/gone-0000.js`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
  });

  void it('no file outside the build is served, and the browser guard holds for /ui/ as for the API', async () => {
    const host = new URL(t.url).host;
    for (const path of ['/ui/../package.json', '/ui/%2e%2e/%2e%2e/package.json', '/ui/..%2f..%2fpackage.json']) {
      const r = await raw(t.url, path, { host });
      assert.ok(!r.body.toString('utf8').includes('"name": "realm"'), `${path} served a file outside dist/web`);
    }
    const rebound = await raw(t.url, '/ui/', { host: `evil.example:${new URL(t.url).port}` });
    assert.equal(rebound.status, 421);
  });

  void it('a token signs in for a cookie (with its header), which then acts as its user until sign-out', async () => {
    const made = await tokens.create('ui', t.client);
    const noHeader = await fetch(`${t.url}/v1/ui/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: made.token }),
    });
    assert.equal(noHeader.status, 400);
    assert.equal(noHeader.headers.get('set-cookie'), null);
    const bad = await fetch(`${t.url}/v1/ui/session`, {
      method: 'POST',
      headers: { ...UI, 'content-type': 'application/json' },
      body: JSON.stringify({ token: 'rlm_000000000000_guess' }),
    });
    assert.equal(bad.status, 401);
    const res = await fetch(`${t.url}/v1/ui/session`, {
      method: 'POST',
      headers: { ...UI, 'content-type': 'application/json' },
      body: JSON.stringify({ token: made.token }),
    });
    assert.equal(res.status, 200);
    const who = (await res.json()) as { principal: string; admin: boolean; expiresAt: string };
    assert.equal(who.admin, true); // the admin made the token
    const { pair, attrs } = cookieOf(res);
    assert.match(pair, /^realm_session=[A-Za-z0-9_-]{40,}$/);
    assert.match(attrs, /HttpOnly/);
    assert.match(attrs, /SameSite=Strict/);
    assert.match(attrs, /Path=\//);
    const me = await fetch(`${t.url}/v1/ui/session`, { headers: { ...UI, cookie: pair } });
    assert.equal(me.status, 200);
    assert.equal(((await me.json()) as { expiresAt: string }).expiresAt, who.expiresAt);
    const list = await fetch(`${t.url}/v1/sandboxes`, { headers: { ...UI, cookie: pair } });
    assert.equal(list.status, 200);
    const out = await fetch(`${t.url}/v1/ui/session`, { method: 'DELETE', headers: { ...UI, cookie: pair } });
    assert.equal(out.status, 204);
    assert.match(out.headers.get('set-cookie') ?? '', /realm_session=;.*Max-Age=0/);
    const after = await fetch(`${t.url}/v1/sandboxes`, { headers: { ...UI, cookie: pair } });
    assert.equal(after.status, 401);
    await tokens.revoke(made.id, t.client);
  });
});
