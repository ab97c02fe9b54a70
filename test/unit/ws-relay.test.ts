/**
 * The WebSocket relay to a peer node (cluster/ws-relay.ts) between real `ws` sockets on
 * loopback: a client, a front server relaying each connection, and a peer that answers.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { RELAY_HIGH_WATER, Relay } from '../../src/cluster/ws-relay.js';

type PeerHandler = (ws: WebSocket, req: IncomingMessage) => void;

/** A peer: upgrades /ok…, answers /refuse with the API's 404 body. */
async function startPeer(onConnection: () => PeerHandler): Promise<{ url: string; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ noServer: true });
  const server: Server = createServer();
  server.on('upgrade', (req, socket, head) => {
    if (req.url?.startsWith('/refuse')) {
      const body = JSON.stringify({ error: { code: 'SANDBOX_NOT_FOUND', message: 'no sandbox "x"' } });
      socket.end(`HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection()(ws, req));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => server.close(r));
    },
  };
}

void describe('WebSocket relay to a peer node', () => {
  let handler: PeerHandler = () => undefined;
  let peer: Awaited<ReturnType<typeof startPeer>>;
  let front: WebSocketServer;
  let frontUrl = '';
  let deadUrl = '';
  /** The relays the front made, and the front's side of each client. */
  const relays: { relay: Relay; socket: WebSocket }[] = [];
  let peerAddress = () => peer.url;

  before(async () => {
    peer = await startPeer(() => handler);
    front = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((r) => front.once('listening', r));
    frontUrl = `ws://127.0.0.1:${(front.address() as AddressInfo).port}`;
    front.on('connection', (socket, req) => {
      const relay = new Relay(socket, {
        node: 'node-p',
        address: peerAddress(),
        pathAndQuery: req.url ?? '/',
        principal: 'uid:1234',
        peerToken: 'rlmpeer_test',
        from: 'node-f',
      });
      socket.on('message', (data: RawData, binary) => relay.fromClient(binary ? (data as Buffer) : (data as Buffer).toString()));
      socket.on('close', (code, reason) => relay.clientClosed(code, reason.toString()));
      relays.push({ relay, socket });
    });
    // An address nothing listens on: a server opened and closed.
    const gone = createServer();
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
    deadUrl = `http://127.0.0.1:${(gone.address() as AddressInfo).port}`;
    await new Promise((r) => gone.close(r));
  });

  after(async () => {
    for (const { relay } of relays) relay.end();
    await new Promise((r) => front.close(r));
    await peer.close();
  });

  /** Each frame a socket gets, kept until asked for (several may come in one read). */
  const inbox = new WeakMap<WebSocket, { frames: [string | Buffer, boolean][]; wake?: () => void }>();
  const keep = (ws: WebSocket): void => {
    const box: { frames: [string | Buffer, boolean][]; wake?: () => void } = { frames: [] };
    inbox.set(ws, box);
    ws.on('message', (d: Buffer, binary) => {
      box.frames.push([binary ? d : d.toString(), binary]);
      box.wake?.();
    });
  };
  const nextMessage = async (ws: WebSocket): Promise<[string | Buffer, boolean]> => {
    const box = inbox.get(ws) ?? assert.fail('not kept');
    while (box.frames.length === 0) await new Promise<void>((r) => (box.wake = r));
    return box.frames.shift() ?? assert.fail('no frame');
  };
  const closes = new WeakMap<WebSocket, Promise<[number, string]>>();
  const closed = (ws: WebSocket): Promise<[number, string]> => {
    let p = closes.get(ws);
    if (!p) {
      p = new Promise((r) => ws.once('close', (code, reason) => r([code, reason.toString()])));
      closes.set(ws, p);
    }
    return p;
  };
  const connect = async (path: string): Promise<WebSocket> => {
    const ws = new WebSocket(`${frontUrl}${path}`);
    keep(ws);
    void closed(ws);
    await new Promise((r, j) => {
      ws.once('open', r);
      ws.once('error', j);
    });
    return ws;
  };

  void it('sends the peer credential and the caller, and relays text and binary both ways, in order', async () => {
    let headers: IncomingMessage['headers'] = {};
    let url = '';
    handler = (ws, req) => {
      headers = req.headers;
      url = req.url ?? '';
      ws.on('message', (d: Buffer, binary) => ws.send(binary ? Buffer.concat([Buffer.from([0]), d]) : `echo:${d.toString()}`));
    };
    const ws = await connect('/v1/sandboxes/x/exec/ws?a=1');
    // Sent at once, before the peer has accepted: held, then relayed in order.
    ws.send('one');
    ws.send(Buffer.from([1, 2, 255]));
    ws.send('two');
    assert.deepEqual(await nextMessage(ws), ['echo:one', false]);
    assert.deepEqual(await nextMessage(ws), [Buffer.from([0, 1, 2, 255]), true]);
    assert.deepEqual(await nextMessage(ws), ['echo:two', false]);
    assert.equal(url, '/v1/sandboxes/x/exec/ws?a=1');
    assert.equal(headers.authorization, 'Bearer rlmpeer_test');
    assert.equal(headers['x-realm-principal'], 'uid:1234');
    assert.equal(headers['x-realm-forwarded-by'], 'node-f');
    ws.close();
    await closed(ws);
  });

  void it('closes each side when the other closes, with its code and reason', async () => {
    const peerCloses: Promise<[number, string]>[] = [];
    handler = (ws) => {
      peerCloses.push(closed(ws));
      ws.on('message', (d: Buffer) => {
        const m = d.toString();
        if (m === 'ping') ws.send('pong');
        else ws.close(Number(m), 'peer done');
      });
    };
    const a = await connect('/ok');
    const aClosed = closed(a);
    a.send('4002');
    assert.deepEqual(await aClosed, [4002, 'peer done']);

    const b = await connect('/ok');
    b.send('ping');
    assert.deepEqual(await nextMessage(b), ['pong', false]);
    b.close(4100, 'client done');
    assert.deepEqual(await (peerCloses[1] ?? assert.fail('the peer never saw the client')), [4100, 'client done']);
  });

  void it('ending a relay (the daemon closing) ends both sides at once', async () => {
    const peerCloses: Promise<[number, string]>[] = [];
    handler = (ws) => {
      peerCloses.push(closed(ws));
      ws.on('message', () => ws.send('pong'));
    };
    const ws = await connect('/ok');
    ws.send('ping');
    assert.deepEqual(await nextMessage(ws), ['pong', false]);
    (relays[relays.length - 1] ?? assert.fail('no relay')).relay.end();
    assert.equal((await closed(ws))[0], 1006, 'the client: cut, no close handshake');
    assert.equal((await (peerCloses[0] ?? assert.fail('the peer never saw the client')))[0], 1006, 'the peer: cut too');
  });

  void it('a peer that refuses the upgrade, or does not answer, is told in an error frame', async () => {
    const refused = await connect('/refuse');
    const [frame] = await nextMessage(refused);
    assert.deepEqual(JSON.parse(String(frame)), {
      type: 'error',
      error: { code: 'SANDBOX_NOT_FOUND', message: 'no sandbox "x"' },
    });
    assert.equal((await closed(refused))[0], 1008);

    peerAddress = () => deadUrl;
    try {
      const dead = await connect('/ok');
      const [f] = await nextMessage(dead);
      const e = JSON.parse(String(f)) as { error: { code: string; message: string } };
      assert.equal(e.error.code, 'NODE_UNREACHABLE');
      assert.match(e.error.message, /node node-p at http:\/\/127\.0\.0\.1:\d+ did not answer/);
      assert.equal((await closed(dead))[0], 1008);
    } finally {
      peerAddress = () => peer.url;
    }
  });

  void it('a client that does not read holds the peer back: the relay queues at most about its high-water mark', async () => {
    const chunk = Buffer.alloc(64 * 1024, 7);
    const total = 64 * 1024 * 1024;
    let peerSent = 0;
    handler = (ws) => {
      for (let n = 0; n < total; n += chunk.length) ws.send(chunk, () => (peerSent += chunk.length));
    };
    const ws = await connect('/ok');
    ws.pause();
    const { socket } = relays[relays.length - 1] ?? assert.fail('no relay');
    // The front's unsent bytes to the client, seen at every frame relayed.
    let most = 0;
    const send = socket.send.bind(socket) as (...args: unknown[]) => void;
    (socket as unknown as { send: (...args: unknown[]) => void }).send = (...args: unknown[]) => {
      send(...args);
      most = Math.max(most, socket.bufferedAmount);
    };
    // The relay stops reading from the peer: the peer's sends stop completing short of the total.
    await until(() => (peerHeld(relays) ? true : undefined));
    assert.ok(peerSent < total, `the peer wrote out all ${total} bytes while the client read nothing`);
    let got = 0;
    ws.on('message', (d: Buffer) => (got += d.length));
    ws.resume();
    await until(() => (got === total ? true : undefined), 60_000);
    assert.equal(peerSent, total);
    assert.ok(most <= RELAY_HIGH_WATER + 2 * chunk.length, `the relay queued ${most} bytes for a client that did not read`);
    ws.close();
  });
});

/** Whether the last relay's peer socket is paused (its reading stopped). */
function peerHeld(relays: { relay: Relay }[]): boolean {
  const r = relays[relays.length - 1]?.relay as unknown as { peer: WebSocket } | undefined;
  return r?.peer.isPaused ?? false;
}

/** Poll until `f` gives a value (at most `ms`). */
async function until<T>(f: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
