/**
 * The gateway's fast lane (src/gateway/fast-lane.ts) against a real replica, over one client
 * connection as a kept-alive client holds it: plain GETs relayed, answers from Node's path (a 404,
 * a refusal) in between without losing the connection, pipelined requests answered in order, a
 * request with a body handed over, and each response framing a replica may use (length, chunked,
 * delimited by its close, an interim 103, HEAD) passed on as HTTP/1.1 with hop-by-hop fields out.
 * The replica's side is checked too: the prefix off, X-Forwarded-Prefix set, its kept connection
 * reused.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { pythonService } from '../helpers/python-service.js';
import { Conn, get } from '../helpers/raw-http.js';
import { until } from '../helpers/until.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping fast lane tests: ${skip}`);

/** A replica answering each path its own way, on 127.0.0.1:8000, connections kept alive. */
const SERVER = String.raw`
import json, socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 8000)); s.listen(64)
def handle(c):
    buf = b''
    peer = c.getpeername()[1]
    while True:
        while b'\r\n\r\n' not in buf:
            d = c.recv(65536)
            if not d:
                c.close(); return
            buf += d
        head, buf = buf.split(b'\r\n\r\n', 1)
        lines = head.decode('latin1').split('\r\n')
        method, path = lines[0].split(' ')[:2]
        fields = dict((k.strip().lower(), v.strip()) for k, v in (l.split(':', 1) for l in lines[1:]))
        n = int(fields.get('content-length', '0'))
        while len(buf) < n:
            buf += c.recv(65536)
        body, buf = buf[:n], buf[n:]
        if path == '/len':
            out = b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n'
            if method != 'HEAD': out += b'len'
        elif path == '/chunked':
            out = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2;x=1\r\ncd\r\n0\r\n\r\n'
        elif path == '/hints':
            out = b'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhints'
        elif path == '/close':
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nclosed'); c.close(); return
        else:
            j = json.dumps({'line': lines[0], 'fields': fields, 'peer': peer, 'body': body.decode()}).encode()
            out = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' % (len(j), j)
        c.sendall(out)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
`;

void describe('the gateway fast lane', { skip }, () => {
  const svc = pythonService('lane', SERVER, skip);

  void it('keeps one connection across its own answers and those of the Node path, in order', async () => {
    const c = new Conn(svc.gw);
    try {
      c.send(get('/lane/len'));
      const a = await c.answer();
      assert.equal(a.status, 200);
      assert.equal(a.body, 'len');
      // The replica's hop-by-hop fields stay on its side.
      assert.doesNotMatch(a.head, /keep-alive/i);
      c.send(get('/nothing-here/x'));
      const b = await c.answer();
      assert.equal(b.status, 404);
      assert.match(b.body, /APP_NOT_FOUND/);
      // A local service refuses a Host that is not loopback's: Node's path explains, the lane goes on.
      c.send('GET /lane/len HTTP/1.1\r\nHost: evil.example\r\n\r\n');
      assert.equal((await c.answer()).status, 421);
      // Three at once: answered in the order asked.
      c.send(get('/lane/len') + get('/nothing-here/y') + get('/lane/echo?n=3'));
      const [x, y, z] = [await c.answer(), await c.answer(), await c.answer()];
      assert.deepEqual([x.status, y.status, z.status], [200, 404, 200]);
      assert.equal(x.body, 'len');
      assert.equal((JSON.parse(z.body) as { line: string }).line, 'GET /echo?n=3 HTTP/1.1');
      assert.equal(c.isClosed, false);
    } finally {
      c.close();
    }
  });

  void it('the replica sees its path without the prefix, X-Forwarded-Prefix, no hop-by-hop field, its connection reused', async () => {
    const c = new Conn(svc.gw);
    try {
      const seen: { line: string; fields: Record<string, string>; peer: number }[] = [];
      for (let i = 0; i < 3; i++) {
        c.send(get('/lane/echo/a?b=1', 'X-Forwarded-Prefix: /forged\r\nConnection: keep-alive\r\nTE: trailers\r\nX-Mine: 1\r\n'));
        seen.push(JSON.parse((await c.answer()).body) as (typeof seen)[number]);
      }
      const [first] = seen;
      assert.ok(first);
      assert.equal(first.line, 'GET /echo/a?b=1 HTTP/1.1');
      assert.equal(first.fields['x-forwarded-prefix'], '/lane');
      assert.equal(first.fields['x-mine'], '1');
      assert.equal(first.fields.host, '127.0.0.1');
      assert.equal(first.fields.connection, undefined);
      assert.equal(first.fields.te, undefined);
      assert.equal(new Set(seen.map((s) => s.peer)).size, 1, 'one kept connection to the replica');
    } finally {
      c.close();
    }
  });

  void it('passes on chunked bodies, HEAD, an interim 103 (not), and a body delimited by the close', async () => {
    const c = new Conn(svc.gw);
    try {
      c.send(get('/lane/chunked'));
      const ch = await c.answer();
      assert.equal(ch.body, 'abcd');
      assert.match(ch.head, /transfer-encoding: chunked/i);
      c.send(`HEAD /lane/len HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      const h = await c.answer('HEAD');
      assert.equal(h.status, 200);
      assert.match(h.head, /content-length: 3/i);
      c.send(get('/lane/hints'));
      const hints = await c.answer();
      assert.equal(hints.status, 200);
      assert.equal(hints.body, 'hints');
      c.send(get('/lane/len'));
      assert.equal((await c.answer()).body, 'len', 'nothing left over from the HEAD or the hints');
      c.send(get('/lane/close'));
      const closed = await c.answer();
      assert.equal(closed.body, 'closed');
      assert.match(closed.head, /connection: close/i);
      await until('the connection closed after a body the close delimited', () => Promise.resolve(c.isClosed), 5_000);
    } finally {
      c.close();
    }
  });

  void it('hands a request with a body to the Node path, the connection still answering after', async () => {
    const c = new Conn(svc.gw);
    try {
      c.send(get('/lane/len'));
      assert.equal((await c.answer()).body, 'len');
      c.send('POST /lane/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello');
      const p = JSON.parse((await c.answer()).body) as { line: string; body: string };
      assert.equal(p.line, 'POST /echo HTTP/1.1');
      assert.equal(p.body, 'hello');
      c.send(get('/lane/len'));
      assert.equal((await c.answer()).body, 'len');
    } finally {
      c.close();
    }
  });

  void it('a client that ends its side after a request gets its answer, then the connection closes', async () => {
    const c = new Conn(svc.gw);
    try {
      c.socket.end(get('/lane/len'));
      assert.equal((await c.answer()).body, 'len');
      await until('the gateway closed its side', () => Promise.resolve(c.isClosed), 5_000);
    } finally {
      c.close();
    }
  });

  void it('answers a service with no healthy replica from the Node path, then serves it once healthy', async () => {
    const c = new Conn(svc.gw);
    try {
      await svc.t.client.services.scale('lane', 0);
      await until('no replica', async () => (await svc.t.client.services.get('lane')).replicaList.length === 0);
      c.send(get('/lane/len'));
      const a = await c.answer();
      assert.equal(a.status, 503);
      assert.match(a.body, /SERVICE_UNAVAILABLE/);
      await svc.t.client.services.scale('lane', 1);
      await until('healthy again', async () => (await svc.t.client.services.get('lane')).healthy === 1, 60_000);
      c.send(get('/lane/len'));
      assert.equal((await c.answer()).body, 'len');
    } finally {
      c.close();
    }
  });
});
