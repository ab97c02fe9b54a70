/**
 * The browser guard's rules on every kind of listener, without a daemon: the connection's local
 * address is what node-server hands the app (`env.incoming.socket`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Hono } from 'hono';
import { browserGuard, parseCorsOrigin, parseHostName, type BrowserGuardOptions } from '../../src/daemon/browser-guard.js';
import { handleError } from '../../src/daemon/errors.js';

type Socket = { localAddress?: string; localPort?: number; destroyed?: boolean } | undefined;

function guarded(
  opts: BrowserGuardOptions = {},
): (
  socket: Socket,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
) => Promise<[number, string | undefined]> {
  const app = new Hono();
  app.onError(handleError);
  app.use('*', browserGuard(opts));
  app.all('*', (c) => c.json({ ok: true }));
  return async (socket, method, path, headers, body) => {
    const all = body === undefined ? headers : { 'content-length': String(Buffer.byteLength(body)), ...headers };
    const env = socket ? { incoming: { socket: { destroyed: false, ...socket } } } : undefined;
    const res = await app.request(
      path,
      { method, headers: all, ...(body !== undefined ? { body: new TextEncoder().encode(body) } : {}) },
      env,
    ); // bytes: a string body would be typed text/plain
    const json = (await res.json()) as { error?: { code?: string } };
    return [res.status, json.error?.code];
  };
}

const OK: [number, string | undefined] = [200, undefined];
const HOST: [number, string] = [421, 'HOST_NOT_ALLOWED'];
const ORIGIN: [number, string] = [403, 'ORIGIN_NOT_ALLOWED'];
const TYPE: [number, string] = [415, 'UNSUPPORTED_MEDIA_TYPE'];

void test('Host names the address the connection came to, or a configured name', async () => {
  const send = guarded({ hostNames: ['realm.example.com', 'pinned.example:8443', '192.0.2.7'] });
  const v6 = { localAddress: '::1', localPort: 7070 };
  for (const host of [
    '[::1]:7070',
    'localhost:7070',
    'LOCALHOST:7070',
    '[0:0:0:0:0:0:0:1]:7070',
    'realm.example.com',
    'realm.example.com:1234',
    'pinned.example:8443',
    '192.0.2.7:9',
  ]) {
    assert.deepEqual(await send(v6, 'GET', '/v1/health', { host }), OK, host);
  }
  for (const host of [
    '127.0.0.1:7070',
    '[::1]:7071',
    '[::1]',
    'localhost',
    'evil.example:7070',
    'pinned.example',
    'pinned.example:443',
    'realm.example.com.',
    'evil@[::1]:7070',
    '[::1]:7070/x',
    '',
  ]) {
    assert.deepEqual(await send(v6, 'GET', '/v1/health', { host }), HOST, host);
  }
  // A dual-stack wildcard listener sees IPv4 clients as ::ffff:a.b.c.d.
  assert.deepEqual(await send({ localAddress: '::ffff:127.0.0.1', localPort: 7070 }, 'GET', '/', { host: '127.0.0.1:7070' }), OK);
  assert.deepEqual(await send({ localAddress: '::ffff:127.0.0.1', localPort: 7070 }, 'GET', '/', { host: 'localhost:7070' }), OK);
  // Not loopback: the address itself, no `localhost`.
  assert.deepEqual(await send({ localAddress: '10.1.2.3', localPort: 7070 }, 'GET', '/', { host: '10.1.2.3:7070' }), OK);
  assert.deepEqual(await send({ localAddress: '10.1.2.3', localPort: 7070 }, 'GET', '/', { host: 'localhost:7070' }), HOST);
  // Port 80 may go unsaid.
  assert.deepEqual(await send({ localAddress: '127.0.0.1', localPort: 80 }, 'GET', '/', { host: '127.0.0.1' }), OK);
  assert.deepEqual(await send({ localAddress: '127.0.0.1', localPort: 80 }, 'GET', '/', { host: '127.0.0.1:80' }), OK);
  // A unix socket has no Host to check (no browser connects to one); a closed or unknown connection passes only a configured name.
  assert.deepEqual(await send({}, 'GET', '/', { host: 'anything' }), OK);
  assert.deepEqual(
    await send({ localAddress: '127.0.0.1', localPort: 7070, destroyed: true }, 'GET', '/', { host: '127.0.0.1:7070' }),
    HOST,
  );
  assert.deepEqual(await send(undefined, 'GET', '/', { host: '127.0.0.1:7070' }), HOST);
  assert.deepEqual(await send(undefined, 'GET', '/', { host: 'realm.example.com' }), OK);
});

void test("Origin, when sent, is the daemon's own or listed, on reads too; preflights only for the list", async () => {
  const send = guarded({ hostNames: ['realm.example.com'], corsOrigins: ['https://app.example.com'] });
  const lo = { localAddress: '127.0.0.1', localPort: 7070 };
  const host = '127.0.0.1:7070';
  for (const origin of [
    'http://127.0.0.1:7070',
    'http://localhost:7070',
    'https://realm.example.com',
    'https://app.example.com',
  ]) {
    assert.deepEqual(await send(lo, 'POST', '/v1/sandboxes', { host, origin }), OK, origin);
  }
  for (const origin of [
    'http://evil.example',
    'null',
    'http://127.0.0.1:7071',
    'http://127.0.0.1:7070/',
    'https://app.example.com:444',
    'file://',
    'chrome-extension://abc',
  ]) {
    assert.deepEqual(await send(lo, 'POST', '/v1/sandboxes', { host, origin }), ORIGIN, origin);
    assert.deepEqual(await send(lo, 'GET', '/v1/sandboxes', { host, origin, upgrade: 'websocket' }), ORIGIN, origin);
  }
  assert.deepEqual(
    await send({}, 'POST', '/v1/sandboxes', { host: 'localhost', origin: 'http://localhost' }),
    ORIGIN,
    'a unix socket has no own origin',
  );
  assert.deepEqual(
    await send(lo, 'OPTIONS', '/v1/runs', { host, origin: 'http://localhost:7070', 'access-control-request-method': 'POST' }),
    ORIGIN,
    'only listed origins are answered a preflight',
  );
});

void test("a body carries its route's type: JSON unless listed; never one a page sends without a preflight", async () => {
  const send = guarded();
  const lo = { localAddress: '127.0.0.1', localPort: 7070 };
  const h = (type?: string): Record<string, string> => ({ host: '127.0.0.1:7070', ...(type ? { 'content-type': type } : {}) });
  for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON;charset=UTF-8'])
    assert.deepEqual(await send(lo, 'POST', '/v1/runs', h(type), '{}'), OK, type);
  for (const type of [
    undefined,
    'text/plain',
    'text/plain;charset=UTF-8',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/json-patch+json',
    'application/octet-stream',
  ]) {
    assert.deepEqual(await send(lo, 'POST', '/v1/runs', h(type), '{}'), TYPE, type);
    assert.deepEqual(await send(lo, 'PATCH', '/v1/sandboxes/x', h(type), '{}'), TYPE, type);
    assert.deepEqual(await send(lo, 'POST', '/v1/a-route-added-later', h(type), '{}'), TYPE, type);
  }
  // No body needs no type; a safelisted type is refused even with none.
  assert.deepEqual(await send(lo, 'POST', '/v1/sandboxes/x/stop', h()), OK, 'no body');
  assert.deepEqual(await send(lo, 'POST', '/v1/sandboxes/x/stop', h('text/plain')), TYPE);
  // Raw bodies: their own types only.
  assert.deepEqual(await send(lo, 'PUT', '/v1/sandboxes/x/files?path=a', h('application/octet-stream'), 'x'), OK, 'files');
  assert.deepEqual(await send(lo, 'PUT', '/v1/sandboxes/x/files?path=a', h('text/plain'), 'x'), TYPE);
  assert.deepEqual(await send(lo, 'PUT', '/v1/sandboxes/x/files?path=a', h(), 'x'), TYPE);
  assert.deepEqual(await send(lo, 'PUT', '/v1/sandboxes/x/files/tar?path=a', h('application/x-tar'), 'x'), OK, 'tar');
  assert.deepEqual(await send(lo, 'POST', '/v1/images/import', h('application/x-tar'), 'x'), OK, 'tar');
  assert.deepEqual(await send(lo, 'POST', '/v1/images/import', h('application/x-www-form-urlencoded'), 'x'), TYPE);
  // Piston: JSON or untyped; text/plain and forms are not.
  assert.deepEqual(await send(lo, 'POST', '/api/v2/execute', h(), '{}'), OK, 'piston untyped');
  assert.deepEqual(await send(lo, 'POST', '/api/v2/execute', h('application/json'), '{}'), OK);
  assert.deepEqual(await send(lo, 'POST', '/api/v2/execute', h('text/plain'), '{}'), TYPE);
  assert.deepEqual(await send(lo, 'POST', '/api/repl/execute', h(), '{}'), TYPE);
  // Reads carry no body to judge.
  assert.deepEqual(await send(lo, 'GET', '/v1/health', h('text/plain')), OK);
});

void test('--host-name and --cors-origin are checked when the daemon starts', () => {
  assert.deepEqual(parseHostName('Realm.Example.com'), { host: 'realm.example.com', port: undefined });
  assert.deepEqual(parseHostName('realm.example.com:8443'), { host: 'realm.example.com', port: 8443 });
  assert.deepEqual(parseHostName('[::1]:80'), { host: '[::1]', port: 80 });
  assert.deepEqual(parseHostName('192.0.2.7'), { host: '192.0.2.7', port: undefined });
  for (const bad of [
    '',
    '*',
    '*.example.com',
    'http://realm.example.com',
    'realm.example.com:',
    'realm.example.com:99999',
    'a b',
    'user@host',
    'host/path',
    'host.',
  ]) {
    assert.throws(() => parseHostName(bad), { code: 'INVALID_REQUEST' }, bad);
  }
  assert.equal(parseCorsOrigin('https://App.Example.com'), 'https://app.example.com');
  assert.equal(parseCorsOrigin('http://localhost:5173/'), 'http://localhost:5173');
  assert.equal(parseCorsOrigin('https://app.example.com:443'), 'https://app.example.com');
  for (const bad of [
    '*',
    'null',
    'app.example.com',
    'https://app.example.com/path',
    'ftp://app.example.com',
    'https://u:p@app.example.com',
    'file:///tmp',
    '',
  ]) {
    assert.throws(() => parseCorsOrigin(bad), { code: 'INVALID_REQUEST' }, bad);
  }
});
