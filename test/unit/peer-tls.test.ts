/**
 * Dialling peers (cluster/peer-tls.ts): an https:// peer is verified against --peer-ca alone
 * when one is set, and a failure says whether the peer's certificate was the cause. Against a
 * local https server with a PKI made here.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { dialFailure, peerFetch, peerWsOptions, usePeerCa } from '../../src/cluster/peer-tls.js';
import { makePki, type TestPki } from '../helpers/pki.js';
import { freePort } from '../helpers/port.js';

const TLS_CAUSE = /^TLS: the peer's certificate did not verify: .* \[[A-Z_]+\]; --peer-ca must be/;

void describe('dialling peers with --peer-ca', () => {
  let pki: TestPki;
  let server: Server;
  let wss: WebSocketServer;
  let url: URL;

  before(async () => {
    pki = makePki();
    server = createServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) }, (_req, res) => res.end('ok'));
    wss = new WebSocketServer({ server });
    wss.on('connection', (ws) => ws.send('hello'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}/v1/health`);
  });

  after(async () => {
    wss.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    pki.remove();
  });

  const failure = (p: Promise<unknown>): Promise<string> =>
    p.then(
      () => assert.fail('it answered'),
      (e: unknown) => dialFailure(e),
    );

  const wsFirst = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url.href.replace(/^https/, 'wss'), peerWsOptions());
      ws.once('message', (d: Buffer) => {
        resolve(d.toString());
        ws.close();
      });
      ws.once('error', reject);
    });

  void it('with no --peer-ca, a certificate of a private CA is not trusted; the failure names TLS and what to check', async () => {
    assert.match(await failure(peerFetch(url, {})), TLS_CAUSE);
    assert.match(await failure(wsFirst()), TLS_CAUSE);
  });

  void it('with --peer-ca its CA, the peer answers over https and wss', async () => {
    const release = usePeerCa(readFileSync(pki.ca));
    try {
      assert.equal(await (await peerFetch(url, {})).text(), 'ok');
      assert.equal(await wsFirst(), 'hello');
    } finally {
      release();
    }
    assert.deepEqual(peerWsOptions(), {}, 'released: the default store again');
  });

  void it('with --peer-ca another CA, it does not; nor is a peer named otherwise than its certificate', async () => {
    const release = usePeerCa(readFileSync(pki.otherCa));
    try {
      assert.match(await failure(peerFetch(url, {})), TLS_CAUSE);
      assert.match(await failure(wsFirst()), TLS_CAUSE);
    } finally {
      release();
    }
    // The certificate names 127.0.0.1, not localhost.
    const releaseRight = usePeerCa(readFileSync(pki.ca));
    try {
      const byName = new URL(url);
      byName.hostname = 'localhost';
      const why = await failure(peerFetch(byName, {}));
      assert.match(why, TLS_CAUSE);
      assert.match(why, /ERR_TLS_CERT_ALTNAME_INVALID/);
    } finally {
      releaseRight();
    }
  });

  void it('a peer that is not there is not a TLS failure: the cause is said as it is', async () => {
    const closed = new URL(url);
    closed.port = String(await freePort()); // nothing listens there
    const why = await failure(peerFetch(closed, {}));
    assert.doesNotMatch(why, /TLS/);
    assert.match(why, /ECONNREFUSED/);
  });
});
