/** The gateway's pure parts: CGI environment and response heads, visibility, wasm kinds, names. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CgiHeadParser, cgiEnv, parseHead } from '../../src/gateway/cgi.js';
import { mayServe } from '../../src/gateway/server.js';
import { APP_NAME, wasmKind } from '../../src/gateway/apps.js';
import { parseGateway } from '../../src/config.js';

void test('a local app is served to loopback clients only; a public one to anyone', () => {
  for (const addr of ['127.0.0.1', '127.3.4.5', '::1', '::ffff:127.0.0.1']) assert.ok(mayServe('local', addr), addr);
  for (const addr of ['10.0.0.2', '192.168.1.9', '::ffff:10.1.1.1', 'fe80::1', undefined])
    assert.ok(!mayServe('local', addr), String(addr));
  assert.ok(mayServe('public', '10.0.0.2'));
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
