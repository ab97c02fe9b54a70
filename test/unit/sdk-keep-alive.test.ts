/**
 * The SDK's kept-alive connections: one the daemon has closed for idling is not used again, even
 * when a long synchronous task (stringifying a large body) kept the SDK's own timer from closing
 * it first. Written to, it would fail with ECONNRESET or EPIPE, reported as DAEMON_UNREACHABLE
 * while the daemon is there and would answer.
 *
 * The server runs in its own process, as the daemon does, so that it closes the idle connection
 * on time while this process is busy.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Client } from '@realm/sdk';

/** Node's HTTP server as the daemon runs it, closing idle kept-alive connections after 2 s (Keep-Alive: timeout=2), counting connections. */
const SERVER = `
const http = require('node:http');
let connections = 0;
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ path: req.url, connections }));
  });
});
server.keepAliveTimeout = 2000;
server.on('connection', () => connections++);
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;

/** Keep this process busy, as a long synchronous task does: no timer runs meanwhile. */
function busy(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

void describe('SDK kept-alive connections', () => {
  let server: ChildProcess;
  let url = '';
  before(async () => {
    server = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    url = await new Promise<string>((resolve, reject) => {
      server.stdout?.once('data', (d: Buffer) => resolve(`http://127.0.0.1:${d.toString().trim()}`));
      server.once('exit', (code) => reject(new Error(`the server exited (${code})`)));
    });
  });
  after(() => {
    server.kill();
  });

  void it('a connection the server closed while this process was busy is not written to', async () => {
    const c = new Client({ url, token: 't' });
    const first = await c.request<{ connections: number }>('GET', '/first');
    busy(3000); // past the server's 2 s: it has closed the connection, and the SDK's timer has not run
    const second = await c.request<{ path: string; connections: number }>('POST', '/second', { code: 'print(1)' });
    assert.equal(second.path, '/second');
    assert.equal(second.connections, first.connections + 1, 'the second request went on a new connection');
    // A connection still open is used again.
    const third = await c.request<{ connections: number }>('GET', '/third');
    assert.equal(third.connections, second.connections);
  });
});
