/**
 * The fast lane's HTTP framing (src/gateway/http-head.ts): which request heads it takes (and
 * leaves every doubtful one to Node's server), how it reads a replica's response head, and where
 * a body ends — split anywhere, with anything past the end left over.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadResponse, BodyEnd, MAX_REQUEST_HEAD, parseRequestHead, readResponseHead } from '../../src/gateway/http-head.js';

const req = (s: string): ReturnType<typeof parseRequestHead> => parseRequestHead(Buffer.from(s, 'latin1'));
const res = (s: string, method = 'GET'): ReturnType<typeof readResponseHead> =>
  readResponseHead(Buffer.from(s, 'latin1'), method);

void describe('request heads the fast lane takes', () => {
  void it('a plain GET or HEAD, names in lower case, values trimmed', () => {
    const h = req('GET /svc/a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept:  */* \r\nConnection: keep-alive\r\n\r\nGET /next');
    assert.ok(typeof h === 'object');
    assert.equal(h.method, 'GET');
    assert.equal(h.target, '/svc/a?b=1');
    assert.deepEqual(
      [...h.headers],
      [
        ['host', '127.0.0.1:8080'],
        ['accept', '*/*'],
        ['connection', 'keep-alive'],
      ],
    );
    assert.equal(
      h.length,
      'GET /svc/a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept:  */* \r\nConnection: keep-alive\r\n\r\n'.length,
    );
    const head = req('HEAD / HTTP/1.1\r\nhost: x\r\n\r\n');
    assert.ok(typeof head === 'object' && head.method === 'HEAD');
  });

  void it('waits for the rest of a head, up to its size limit', () => {
    assert.equal(req('GET / HTTP/1.1\r\nHost: x\r\n'), 'more');
    assert.equal(req(`GET / HTTP/1.1\r\nX: ${'a'.repeat(MAX_REQUEST_HEAD)}`), 'other');
    assert.equal(req(`GET / HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(MAX_REQUEST_HEAD)}\r\n\r\n`), 'other');
  });

  void it('leaves to Node every request with a body, an upgrade, an expectation or a doubt', () => {
    const others = [
      'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na',
      'GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
      'GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n',
      'GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      'GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n',
      'GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      'GET /a HTTP/1.0\r\nHost: x\r\n\r\n',
      'GET /a HTTP/1.1\r\n\r\n', // no Host
      'GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n', // a name twice
      'GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n',
      'GET /a HTTP/1.1\nHost: x\r\n\r\n', // a bare LF
      'GET /a HTTP/1.1\r\nHost: x\rX: y\r\n\r\n', // a bare CR
      'GET /a HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n', // a folded line
      'GET /a HTTP/1.1\r\nHost : x\r\n\r\n', // a blank before the colon
      'GET /a HTTP/1.1\r\nHost: x\r\nX: caf\xe9\r\n\r\n', // a byte past ASCII
      'GET /a HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n',
      'GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n', // absolute form
      'GET  /a HTTP/1.1\r\nHost: x\r\n\r\n',
      'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
    ];
    for (const o of others) assert.equal(req(o), 'other', JSON.stringify(o));
  });
});

void describe("a replica's response head", () => {
  void it('passes on the head as HTTP/1.1 without hop-by-hop fields, framed by its length', () => {
    const h = res(
      'HTTP/1.1 200 OK\r\nDate: x\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\nhello',
    );
    assert.ok(typeof h === 'object');
    assert.equal(h.status, 200);
    assert.deepEqual(h.framing, { kind: 'length', bytes: 5 });
    assert.equal(h.reusable, true);
    assert.equal(h.out, 'HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 5\r\n\r\n');
    assert.equal(
      h.length,
      'HTTP/1.1 200 OK\r\nDate: x\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\n'.length,
    );
  });

  void it('an HTTP/1.0 answer or Connection: close is not reused; no length: delimited by the close', () => {
    const h10 = res('HTTP/1.0 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\nhi');
    assert.ok(typeof h10 === 'object');
    assert.equal(h10.reusable, false);
    assert.equal(h10.out, 'HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\n');
    const closes = res('HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n');
    assert.ok(typeof closes === 'object' && !closes.reusable);
    const open = res('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nand so on');
    assert.ok(typeof open === 'object');
    assert.deepEqual(open.framing, { kind: 'close' });
    assert.equal(open.out, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nconnection: close\r\n\r\n');
  });

  void it('chunked passes on as chunked; HEAD, 204 and 304 have no body', () => {
    const c = res('HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n');
    assert.ok(typeof c === 'object');
    assert.deepEqual(c.framing, { kind: 'chunked' });
    assert.equal(c.out, 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
    for (const [head, method] of [
      ['HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n', 'HEAD'],
      ['HTTP/1.1 204 No Content\r\n\r\n', 'GET'],
      ['HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n', 'GET'],
    ] as const) {
      const h = res(head, method);
      assert.ok(typeof h === 'object');
      assert.deepEqual(h.framing, { kind: 'none' }, head);
    }
  });

  void it('waits for the rest of a head; refuses one too long', () => {
    assert.equal(res('HTTP/1.1 200 OK\r\nContent-Len'), 'more');
    assert.throws(() => res(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(17_000)}`), BadResponse);
  });

  void it('refuses what could be read two ways', () => {
    const bad = [
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX-Note: a\rSet-Cookie: evil=1\r\nContent-Length: 4\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n',
      'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n',
      'HTTP/2 200 OK\r\n\r\n',
      'HTTP/1.1 20 OK\r\n\r\n',
      'ICY 200 OK\r\n\r\n',
    ];
    for (const b of bad) assert.throws(() => res(b), BadResponse, JSON.stringify(b));
    const same = res('HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n');
    assert.ok(typeof same === 'object');
    assert.deepEqual(same.framing, { kind: 'length', bytes: 5 });
  });
});

void describe('where a body ends', () => {
  /** Feed `body` in pieces of `n` bytes; the bytes taken, and whether it ended. */
  const feed = (end: BodyEnd, body: string, n: number): { taken: string; done: boolean } => {
    const b = Buffer.from(body, 'latin1');
    let taken = '';
    for (let i = 0; i < b.length && !end.done; i += n) {
      const piece = b.subarray(i, i + n);
      taken += piece.subarray(0, end.take(piece)).toString('latin1');
    }
    return { taken, done: end.done };
  };

  void it('a length, across pieces, with what follows left over', () => {
    for (const n of [1, 3, 100])
      assert.deepEqual(feed(new BodyEnd({ kind: 'length', bytes: 5 }), 'helloHTTP/1.1 200', n), { taken: 'hello', done: true });
    assert.equal(new BodyEnd({ kind: 'length', bytes: 0 }).done, true);
    assert.equal(new BodyEnd({ kind: 'none' }).done, true);
  });

  void it('chunked, with extensions and trailers, split anywhere', () => {
    const body = '5;x=y\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\n\r\n';
    for (const n of [1, 2, 7, 1000])
      assert.deepEqual(feed(new BodyEnd({ kind: 'chunked' }), `${body}EXTRA`, n), { taken: body, done: true });
    assert.deepEqual(feed(new BodyEnd({ kind: 'chunked' }), '0\r\n\r\n', 1), { taken: '0\r\n\r\n', done: true });
  });

  void it('refuses a chunked body that breaks its framing', () => {
    const bad = ['x\r\n', '\r\n', '5\r\nhelloX\r\n', '5\nhello\r\n', '0\r\nX: a\nb\r\n\r\n', `${'f'.repeat(13)}\r\n`];
    for (const b of bad) assert.throws(() => feed(new BodyEnd({ kind: 'chunked' }), b, 1), BadResponse, JSON.stringify(b));
  });

  void it('a body delimited by the close takes everything', () => {
    const end = new BodyEnd({ kind: 'close' });
    assert.equal(end.take(Buffer.from('abc')), 3);
    assert.equal(end.done, false);
  });
});
