/** The gateway's pure parts: CGI environment and response heads, visibility, wasm kinds, names. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CgiHeadParser, cgiEnv, parseHead } from '../../src/gateway/cgi.js';
import { refusal } from '../../src/gateway/access.js';
import type { AppRecord } from '../../src/store/store.js';
import { APP_NAME, wasmKind } from '../../src/gateway/apps.js';
import { parseGateway } from '../../src/config.js';

const app = (visibility: 'local' | 'public'): AppRecord => ({
  name: 'a',
  sha256: '0'.repeat(64),
  size: 1,
  memoryBytes: 1,
  timeoutMs: 1,
  visibility,
  createdAt: 0,
  owner: 'admin',
});

void test('a local app is served to loopback clients naming a loopback host only; a public one to anyone', () => {
  const local = app('local');
  const at = (host: string | undefined, peer: string | undefined, origin?: string) =>
    refusal('a', local, { ...(host === undefined ? {} : { host }), ...(origin ? { origin } : {}) }, peer)?.[0];
  for (const peer of ['127.0.0.1', '127.3.4.5', '::1', '::ffff:127.0.0.1'])
    for (const host of ['localhost:8080', '127.0.0.1:8080', '127.9.9.9', '[::1]:80', 'app.localhost:1', 'LOCALHOST.'])
      assert.equal(at(host, peer), undefined, `${host} from ${peer}`);
  // DNS rebinding: a loopback peer, a foreign name.
  for (const host of ['evil.example:8080', 'evil.example', '10.0.0.1:8080', 'localhost.evil.example', '[::2]', undefined, 'a b'])
    assert.equal(at(host, '127.0.0.1'), 'HOST_NOT_ALLOWED', String(host));
  for (const peer of ['10.0.0.2', '192.168.1.9', '::ffff:10.1.1.1', 'fe80::1', undefined])
    assert.equal(at('localhost:8080', peer), 'APP_NOT_FOUND', String(peer));
  assert.equal(at('localhost:8080', '127.0.0.1', 'http://localhost:5173'), undefined);
  for (const origin of ['https://evil.example', 'null', 'file://'])
    assert.equal(at('localhost:8080', '127.0.0.1', origin), 'ORIGIN_NOT_ALLOWED', origin);
  // A missing app looks like a local one refused: to a foreign name, HOST_NOT_ALLOWED either way.
  assert.equal(refusal('b', null, { host: 'evil.example' }, '127.0.0.1')?.[0], 'HOST_NOT_ALLOWED');
  assert.equal(refusal('b', null, { host: 'localhost' }, '127.0.0.1')?.[0], 'APP_NOT_FOUND');
  for (const host of ['evil.example', undefined, 'localhost'])
    assert.equal(refusal('a', app('public'), host ? { host, origin: 'https://x.example' } : {}, '10.0.0.2'), undefined);
});

void test('the CGI environment of a request (RFC 3875)', () => {
  const env = cgiEnv({
    method: 'POST',
    pathInfo: '/a/b',
    query: 'x=1',
    headers: { 'content-type': 'text/plain', 'content-length': '3', 'x-thing': 'v', authorization: 'Bearer secret', host: 'h' },
    bodyLength: 3,
    httpVersion: '1.1',
    remoteAddress: '127.0.0.1',
    serverName: 'h',
    serverPort: 8080,
    app: 'hello',
  });
  assert.equal(env.REQUEST_METHOD, 'POST');
  assert.equal(env.PATH_INFO, '/a/b');
  assert.equal(env.SCRIPT_NAME, '/hello');
  assert.equal(env.QUERY_STRING, 'x=1');
  assert.equal(env.CONTENT_TYPE, 'text/plain');
  assert.equal(env.CONTENT_LENGTH, '3');
  assert.equal(env.SERVER_PROTOCOL, 'HTTP/1.1');
  assert.equal(env.HTTP_X_THING, 'v');
  assert.equal(env.HTTP_HOST, 'h');
  assert.equal(env.HTTP_AUTHORIZATION, undefined);
  assert.equal(env.HTTP_CONTENT_TYPE, undefined);
});

void test('CGI response heads: Status, headers, Location, and what is refused', () => {
  assert.deepEqual(parseHead('Status: 404 Not Found\nContent-Type: text/plain'), {
    status: 404,
    statusText: 'Not Found',
    headers: [['Content-Type', 'text/plain']],
  });
  assert.equal(parseHead('Location: /x').status, 302);
  assert.deepEqual(parseHead('Content-Length: 5\nConnection: close\nX: y').headers, [['X', 'y']]);
  for (const bad of ['no colon here', 'Status: 99', 'Status: abc', 'Bad Name: v']) assert.throws(() => parseHead(bad), bad);
  const p = new CgiHeadParser();
  assert.equal(p.push(Buffer.from('Content-Type: a\r\n')), null);
  const done = p.push(Buffer.from('\r\nbody'));
  assert.equal(done?.rest.toString(), 'body');
  assert.deepEqual(done?.head.headers, [['Content-Type', 'a']]);
});

void test('wasm kinds and app names; --gateway', () => {
  assert.equal(wasmKind(Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])), 'module');
  assert.equal(wasmKind(Buffer.from([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0])), 'component');
  assert.equal(wasmKind(Buffer.from('#!/bin/sh')), 'other');
  for (const ok of ['a', 'hello-world', '0x', 'a'.repeat(63)]) assert.ok(APP_NAME.test(ok), ok);
  for (const bad of ['', '-a', 'A', 'a/b', 'a_b', 'a.b', 'a'.repeat(64)]) assert.ok(!APP_NAME.test(bad), bad);
  assert.equal(parseGateway('off'), null);
  assert.deepEqual(parseGateway('0.0.0.0:8080'), { host: '0.0.0.0', port: 8080 });
  assert.throws(() => parseGateway('nonsense'));
});
