/**
 * Kept-alive connections to sandbox ports (src/gateway/sandbox-agents.ts), against a local server
 * with `dial` counted: requests reuse one connection, `forget` drops it, and a server that closes
 * after each answer is dialled each time.
 */
import assert from 'node:assert/strict';
import { type Server, createServer, request } from 'node:http';
import { type AddressInfo, type Socket, connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SandboxAgents } from '../../src/gateway/sandbox-agents.js';

function get(agent: import('node:http').Agent, path = '/'): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ agent, path, headers: { host: 'x' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });
}

void describe('sandbox agents', () => {
  let server: Server;
  let port = 0;
  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/close') res.setHeader('connection', 'close');
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  void it('reuses one connection for requests in turn, and dials again once forgotten', async () => {
    const agents = new SandboxAgents();
    let dials = 0;
    const dial = (): Promise<Socket> => {
      dials++;
      return Promise.resolve(connect(port, '127.0.0.1'));
    };
    for (let i = 0; i < 5; i++) assert.equal(await get(agents.agent('sb1', port, dial)), 'ok');
    assert.equal(dials, 1);
    agents.forget('sb1');
    assert.equal(await get(agents.agent('sb1', port, dial)), 'ok');
    assert.equal(dials, 2);
    // Another sandbox has agents of its own.
    assert.equal(await get(agents.agent('sb2', port, dial)), 'ok');
    assert.equal(dials, 3);
    agents.close();
  });

  void it('dials each time for a server that closes after its answer', async () => {
    const agents = new SandboxAgents();
    let dials = 0;
    const dial = (): Promise<Socket> => {
      dials++;
      return Promise.resolve(connect(port, '127.0.0.1'));
    };
    for (let i = 0; i < 3; i++) await get(agents.agent('sb1', port, dial), '/close');
    assert.equal(dials, 3);
    agents.close();
  });

  void it('passes a dial failure to the request', async () => {
    const agents = new SandboxAgents();
    await assert.rejects(
      get(agents.agent('sb1', port, () => Promise.reject(new Error('sandbox is not running')))),
      /sandbox is not running/,
    );
    agents.close();
  });
});
