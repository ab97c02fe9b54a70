/**
 * SSH agent forwarding into a workspace, like `ssh -A`: while the forwarder is open, programs in
 * the workspace that use SSH_AUTH_SOCK=/.realm/share/ssh-agent.sock talk to the agent at
 * `agentSocket` on this machine. Keys never leave the agent; the daemon only relays bytes.
 */
import { connect, type Socket } from 'node:net';
import type { Client } from './client.js';
import { RealmError, errorFromBody } from './errors.js';
import { openWebSocket } from './interactive.js';

/** Where the forwarded agent appears inside a workspace. */
export const SSH_AGENT_PATH = '/.realm/share/ssh-agent.sock';

export interface AgentForwarder {
  /** Stop forwarding; the socket inside goes away. */
  close(): void;
  /** Resolves when forwarding ends (closed by either side). */
  readonly closed: Promise<void>;
}

function frame(channel: number, data: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(channel);
  return Buffer.concat([head, data]);
}

/** Forward the agent at `agentSocket` into workspace `name`; resolves once the socket inside listens. */
export async function forwardSshAgent(client: Client, name: string, agentSocket: string): Promise<AgentForwarder> {
  const channels = new Map<number, Socket>();
  let ready!: () => void;
  let fail!: (e: Error) => void;
  const isReady = new Promise<void>((res, rej) => ((ready = res), (fail = rej)));
  const { ws } = await openWebSocket(client, `/v1/workspaces/${encodeURIComponent(name)}/ssh-agent`, (w) => {
    w.on('message', (raw: Buffer, isBinary: boolean) => {
      if (isBinary) {
        if (raw.length >= 4) channels.get(raw.readUInt32BE(0))?.write(raw.subarray(4));
        return;
      }
      const msg = JSON.parse(raw.toString('utf8')) as { type: string; channel?: number; error?: unknown };
      const ch = msg.channel ?? 0;
      if (msg.type === 'ready') ready();
      else if (msg.type === 'error') fail(errorFromBody(409, { error: msg.error }));
      else if (msg.type === 'open') {
        const sock = connect(agentSocket);
        channels.set(ch, sock);
        sock.on('data', (d: Buffer) => w.send(frame(ch, d)));
        sock.on('error', () => undefined);
        sock.on('close', () => {
          if (channels.delete(ch) && w.readyState === w.OPEN) w.send(JSON.stringify({ type: 'close', channel: ch }));
        });
      } else if (msg.type === 'close') {
        const sock = channels.get(ch);
        channels.delete(ch);
        sock?.end();
      }
    });
    return undefined;
  });
  const closed = new Promise<void>((resolve) => {
    ws.on('close', () => {
      for (const s of channels.values()) s.destroy();
      channels.clear();
      fail(new RealmError('INTERNAL', 'the daemon ended SSH agent forwarding before it was ready'));
      resolve();
    });
  });
  ws.on('error', () => undefined);
  try {
    await isReady;
  } catch (e) {
    ws.close();
    throw e;
  }
  return { close: () => ws.close(), closed };
}
