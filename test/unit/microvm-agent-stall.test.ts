/**
 * The host side of the guest agent's protocol when the guest stops answering (an emulated guest
 * starved of CPU, a wedged agent): an exec whose kill is not answered can be abandoned — it ends
 * as killed at once and the guest's late report of it is dropped — and a question about what runs
 * in the guest fails after its timeout instead of waiting for ever. The peer is a unix socket that
 * speaks the agent's framing (type u8 | id u32be | len u32be | payload) and answers only "ready".
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentConnection } from '../../src/drivers/microvm/agent.js';

function frame(type: string, id: number, payload = ''): Buffer {
  const body = Buffer.from(payload);
  const h = Buffer.alloc(9);
  h.write(type, 0, 'latin1');
  h.writeUInt32BE(id, 1);
  h.writeUInt32BE(body.length, 5);
  return Buffer.concat([h, body]);
}

const dir = mkdtempSync(join(tmpdir(), 'realm-agent-stall-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A guest that says it is ready, then records what it is sent and answers nothing. */
async function silentGuest(): Promise<{
  path: string;
  peer: Promise<Socket>;
  seen: { type: string; id: number }[];
  close: () => void;
}> {
  const path = join(dir, `agent-${Math.random().toString(36).slice(2)}.sock`);
  const seen: { type: string; id: number }[] = [];
  let gotPeer!: (s: Socket) => void;
  const peer = new Promise<Socket>((r) => (gotPeer = r));
  const server = createServer((s) => {
    gotPeer(s);
    s.on('data', (d: Buffer) => {
      for (let off = 0; off + 9 <= d.length; off += 9 + d.readUInt32BE(off + 5)) {
        const type = String.fromCharCode(d[off] ?? 0);
        seen.push({ type, id: d.readUInt32BE(off + 1) });
        if (type === 'P') s.write(frame('R', 0, '2'));
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { path, peer, seen, close: () => server.close() };
}

void test('an exec whose kill the guest does not answer is abandoned: it ends as killed, and the late report is dropped', async () => {
  const g = await silentGuest();
  const conn = await AgentConnection.open(g.path, 5000, () => true);
  try {
    const x = conn.exec(['/bin/sleep', '100'], {}, '/', {});
    x.stdin.end();
    x.kill();
    const first = await Promise.race([x.exit.then(() => 'ended'), new Promise((r) => setTimeout(() => r('waiting'), 300))]);
    assert.equal(first, 'waiting', 'nothing ends an exec the guest did not report');
    x.abandon();
    const exit = await Promise.race([x.exit, sleep(2000).then(() => assert.fail('abandon() did not end the exec'))]);
    assert.deepEqual(exit, { exitCode: null, signal: 'SIGKILL', oomKilled: false, cpuMs: 0, memoryBytes: 0 });
    let out = '';
    x.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await Promise.race([once(x.stdout, 'end'), sleep(2000).then(() => assert.fail('the output did not end'))]);
    // The guest wakes up and reports the exec after all: dropped, and the connection still works.
    const peer = await g.peer;
    const id = g.seen.find((f) => f.type === 'X')?.id ?? assert.fail('the exec was sent to the guest');
    peer.write(frame('O', id, 'late output'));
    peer.write(frame('x', id, 'exit 0 0 1 1'));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(out, '');
    assert.ok(conn.isOpen);
    assert.ok(
      g.seen.some((f) => f.type === 'K' && f.id === id),
      'the kill was sent to the guest first',
    );
  } finally {
    conn.close();
    g.close();
  }
});

void test('a question about what runs in a guest that does not answer fails after its timeout', async () => {
  const g = await silentGuest();
  const conn = await AgentConnection.open(g.path, 5000, () => true);
  try {
    await assert.rejects(conn.usage(200), /did not say what runs in the guest within 0.2 s/);
  } finally {
    conn.close();
    g.close();
  }
});
