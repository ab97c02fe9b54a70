/**
 * The fast lane's relay thread (src/gateway/lane-relay.ts, native/peercred/lane-relay.c) against
 * a real replica: a kept-alive connection's repeated exchanges pass through the thread, and each
 * way an exchange can differ hands the connection back to the lane with nothing lost — a body
 * that changes (passed on as it is), a head that changes, a byte past a response's end, a replica
 * closing its kept connection, a head slower than the thread waits, a big body to a slow reader,
 * a response cut short, pipelined and other requests, a client going, a second replica.
 *
 * The replica answers each path with a fixed head (no Date), so its exchanges repeat; `n` is how
 * many requests that path had, which each case uses to make the fifth one differ.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { relayStats } from '../../src/gateway/lane-relay.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { pythonService } from '../helpers/python-service.js';
import { Conn, get } from '../helpers/raw-http.js';
import { until } from '../helpers/until.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping relay tests: ${skip}`);

const SERVER = String.raw`
import os, socket, threading, time
ID = os.urandom(4).hex().encode()
BIG = bytes(range(256)) * 65536
counts = {}
lock = threading.Lock()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 8000)); s.listen(64)
def ok(body):
    return b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % len(body) + body
def handle(c):
    buf = b''
    peer = b'%06d' % c.getpeername()[1]
    while True:
        while b'\r\n\r\n' not in buf:
            d = c.recv(65536)
            if not d:
                c.close(); return
            buf += d
        head, buf = buf.split(b'\r\n\r\n', 1)
        path = head.split(b' ')[1].decode()
        with lock:
            n = counts[path] = counts.get(path, 0) + 1
        if path == '/count': out = ok(b'%06d' % n)
        elif path == '/grow': out = ok(b'x' if n <= 5 else b'xx')
        elif path == '/forge':
            out = ok(peer)
            if n == 5: out += ok(b'forged')
        elif path == '/bye':
            c.sendall(ok(peer))
            if n == 5:
                c.close(); return
            continue
        elif path == '/slow':
            if n == 5: time.sleep(1.5)
            out = ok(b'slow')
        elif path == '/big': out = ok(BIG)
        elif path == '/cut':
            if n == 5:
                c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789'); c.close(); return
            out = ok(b'cut')
        elif path == '/id': out = ok(ID)
        else: out = ok(b'same')
        c.sendall(out)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
`;

/** `times` requests for `path` one after another on `c`; their bodies. */
async function repeat(c: Conn, path: string, times: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < times; i++) {
    c.send(get(`/relay${path}`));
    const a = await c.answer();
    assert.equal(a.status, 200, a.body);
    bodies.push(a.body);
  }
  return bodies;
}

void describe('the fast lane relay thread', { skip }, () => {
  const svc = pythonService('relay', SERVER, skip);
  after(() => until('no connection left with the relay thread', () => Promise.resolve(relayStats().lanes === 0), 5_000));

  void it('passes a connection’s repeated exchanges through the thread, each body as the replica sent it', async () => {
    const c = new Conn(svc.gw);
    try {
      const before = relayStats().relayed;
      const bodies = await repeat(c, '/count', 40);
      assert.deepEqual(
        bodies,
        bodies.map((_, i) => String(i + 1).padStart(6, '0')),
      );
      assert.ok(relayStats().relayed - before >= 30, `relayed ${relayStats().relayed - before} of 40`);
    } finally {
      c.close();
    }
  });

  void it('hands back a changed response head, a changed request and pipelined requests, answering each in order', async () => {
    const c = new Conn(svc.gw);
    try {
      assert.deepEqual(await repeat(c, '/grow', 8), ['x', 'x', 'x', 'x', 'x', 'xx', 'xx', 'xx']);
      assert.deepEqual(await repeat(c, '/same', 4), ['same', 'same', 'same', 'same']);
      c.send(get('/relay/same') + get('/relay/id') + get('/relay/same'));
      const [a, b, d] = [await c.answer(), await c.answer(), await c.answer()];
      assert.deepEqual([a.body, b.body.length, d.body], ['same', 8, 'same']);
      c.send(get('/nothing-here/x'));
      assert.equal((await c.answer()).status, 404);
      assert.deepEqual(await repeat(c, '/same', 2), ['same', 'same']);
    } finally {
      c.close();
    }
  });

  void it('drops the replica’s connection after a byte past a response’s end, or its close, and goes on with a new one', async () => {
    const c = new Conn(svc.gw);
    try {
      for (const path of ['/forge', '/bye']) {
        const peers = await repeat(c, path, 8);
        assert.ok(!peers.includes('forged'), `${path}: ${peers.join(' ')}`);
        assert.equal(new Set(peers.slice(0, 5)).size, 1, `${path}: one connection for the first five: ${peers.join(' ')}`);
        assert.notEqual(peers[5], peers[4], `${path}: a new connection after the fifth`);
        assert.equal(new Set(peers.slice(5)).size, 1, `${path}: kept again after: ${peers.join(' ')}`);
      }
    } finally {
      c.close();
    }
  });

  void it('leaves a response head slower than the thread waits to the lane', async () => {
    const c = new Conn(svc.gw);
    try {
      assert.deepEqual(await repeat(c, '/slow', 4), ['slow', 'slow', 'slow', 'slow']);
      const t0 = Date.now();
      assert.deepEqual(await repeat(c, '/slow', 1), ['slow']);
      assert.ok(Date.now() - t0 >= 1400, 'the fifth was the slow one');
      assert.deepEqual(await repeat(c, '/slow', 2), ['slow', 'slow']);
    } finally {
      c.close();
    }
  });

  void it('passes a 16 MiB body whole to a client that stops reading for a while', async () => {
    const c = new Conn(svc.gw);
    const want = createHash('sha256')
      .update(Buffer.alloc(16 << 20, 0).map((_, i) => i % 256))
      .digest('hex');
    const digest = (s: string): string => createHash('sha256').update(Buffer.from(s, 'latin1')).digest('hex');
    try {
      for (const body of await repeat(c, '/big', 2)) assert.equal(digest(body), want);
      c.socket.pause();
      c.send(get('/relay/big'));
      await new Promise((r) => setTimeout(r, 300));
      c.socket.resume();
      assert.equal(digest((await c.answer()).body), want);
      assert.deepEqual(await repeat(c, '/same', 1), ['same']);
    } finally {
      c.close();
    }
  });

  void it('closes the client’s connection when a response is cut short; a new one is served', async () => {
    const c = new Conn(svc.gw);
    try {
      assert.deepEqual(await repeat(c, '/cut', 4), ['cut', 'cut', 'cut', 'cut']);
      c.send(get('/relay/cut'));
      await assert.rejects(c.answer(), /the connection closed/);
      await until('the cut connection closed', () => Promise.resolve(c.isClosed), 5_000);
    } finally {
      c.close();
    }
    const d = new Conn(svc.gw);
    try {
      assert.deepEqual(await repeat(d, '/cut', 2), ['cut', 'cut']);
    } finally {
      d.close();
    }
  });

  void it('lets go of a connection whose client went, and of its replica (the service scales and is removed)', async () => {
    const c = new Conn(svc.gw);
    await repeat(c, '/same', 5);
    assert.ok(relayStats().lanes >= 1, 'the thread holds the connection');
    c.close();
    await until('the thread let go', () => Promise.resolve(relayStats().lanes === 0), 5_000);
  });

  void it('serves 16 connections at once, each mixing repeats, other requests, pipelining and going away midway', async () => {
    const before = relayStats().relayed;
    const one = async (k: number): Promise<void> => {
      const c = new Conn(svc.gw);
      try {
        for (let i = 0; i < 60; i++) {
          if (k % 4 === 0 && i === 40) {
            // This one leaves with a response on its way.
            c.send(get('/relay/big'));
            return;
          }
          if (i % 15 === 14) {
            c.send(get('/relay/same') + get('/relay/id') + get('/relay/same'));
            const [a, b, d] = [await c.answer(), await c.answer(), await c.answer()];
            assert.deepEqual([a.body, b.body.length, d.body], ['same', 8, 'same']);
          } else if (i % 10 === 9) {
            const [id] = await repeat(c, '/id', 1);
            assert.equal(id?.length, 8);
          } else assert.deepEqual(await repeat(c, '/same', 1), ['same']);
        }
      } finally {
        c.close();
      }
    };
    await Promise.all(Array.from({ length: 16 }, (_, k) => one(k)));
    assert.ok(relayStats().relayed - before > 100, `relayed ${relayStats().relayed - before}`);
    await until('the thread let go of them all', () => Promise.resolve(relayStats().lanes === 0), 5_000);
    const c = new Conn(svc.gw);
    try {
      assert.deepEqual(await repeat(c, '/same', 3), ['same', 'same', 'same']);
    } finally {
      c.close();
    }
  });

  void it('spreads a relayed connection’s requests over a second replica once it is in service', async () => {
    const c = new Conn(svc.gw);
    try {
      const first = await repeat(c, '/id', 5);
      assert.equal(new Set(first).size, 1);
      await svc.t.client.services.scale('relay', 2);
      await until('two replicas healthy', async () => (await svc.t.client.services.get('relay')).healthy === 2, 60_000);
      const seen = new Set<string>();
      for (let i = 0; i < 100 && seen.size < 2; i++) {
        for (const id of await repeat(c, '/id', 1)) seen.add(id);
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(seen.size, 2, 'both replicas answered on the one connection');
    } finally {
      c.close();
      await svc.t.client.services.scale('relay', 1);
    }
  });
});
