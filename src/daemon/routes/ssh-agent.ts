/**
 * SSH agent forwarding for workspaces, like `ssh -A`: while a client holds this WebSocket, a
 * socket at SSH_AGENT_PATH inside the workspace leads to the client's own agent. The daemon
 * never touches the client's agent socket itself (it may be on another machine); it relays.
 *
 * Frames, both ways: binary = a 4-byte big-endian channel number, then bytes of that channel.
 * Text, JSON: daemon → client {type:'open', channel} when a program inside connects;
 * {type:'close', channel} either way when one side of a channel ends; {type:'ready'} once the
 * socket inside listens; {type:'error', error} before the daemon hangs up.
 */
import { chmodSync, chownSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Hono } from 'hono';
import type { UpgradeWebSocket, WSContext } from 'hono/ws';
import type { Engine } from '../../engine/engine.js';
import { HostIds } from '../../engine/host-ids.js';
import { RealmError, errorMessage } from '../../util/errors.js';

/** Programs inside may hold at most this many agent connections at once. */
const MAX_CHANNELS = 64;

/** The forwarder now serving each workspace sandbox; a newer client takes over. */
const current = new Map<string, { close(): void }>();

function frame(channel: number, data: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(channel);
  return Buffer.concat([head, data]);
}

class Forwarder {
  private server: Server | undefined;
  private readonly channels = new Map<number, Socket>();
  private next = 1;

  constructor(
    private readonly ws: WSContext,
    readonly path: string,
  ) {}

  async listen(uid: number): Promise<void> {
    rmSync(this.path, { force: true });
    const server = createServer((sock) => this.accept(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    // Only the sandbox's user may connect (the directory is read-only inside, which connect ignores).
    chownSync(this.path, uid, uid);
    chmodSync(this.path, 0o600);
  }

  private accept(sock: Socket): void {
    if (this.channels.size >= MAX_CHANNELS) return void sock.destroy();
    const ch = this.next++;
    this.channels.set(ch, sock);
    this.ws.send(JSON.stringify({ type: 'open', channel: ch }));
    sock.on('data', (d: Buffer) => this.ws.send(new Uint8Array(frame(ch, d))));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (this.channels.delete(ch)) this.ws.send(JSON.stringify({ type: 'close', channel: ch }));
    });
  }

  /** A frame from the client. */
  message(data: unknown): void {
    if (typeof data === 'string') {
      const msg = JSON.parse(data) as { type?: string; channel?: number };
      if (msg.type === 'close' && typeof msg.channel === 'number') {
        const sock = this.channels.get(msg.channel);
        this.channels.delete(msg.channel);
        sock?.end();
      }
      return;
    }
    const buf = Buffer.from(data as ArrayBuffer);
    if (buf.length < 4) return;
    this.channels.get(buf.readUInt32BE(0))?.write(buf.subarray(4));
  }

  close(): void {
    for (const s of this.channels.values()) s.destroy();
    this.channels.clear();
    if (this.server) {
      this.server.close();
      rmSync(this.path, { force: true });
      this.server = undefined;
    }
  }
}

export function sshAgentRoutes(app: Hono, engine: Engine, upgrade: UpgradeWebSocket): void {
  app.get(
    '/v1/workspaces/:name/ssh-agent',
    upgrade((c) => {
      const name = c.req.param('name') ?? '';
      let fwd: Forwarder | undefined;
      let sandboxId = '';
      let closed = false;
      const open = async (ws: WSContext): Promise<void> => {
        try {
          const w = await engine.workspaces.get(name);
          if (w.sandbox.status !== 'running')
            throw new RealmError('SANDBOX_NOT_RUNNING', `workspace ${name} is stopped; \`realm ws ${name}\` starts it`);
          sandboxId = w.sandbox.id;
          const f = new Forwarder(ws, join(engine.workspaces.shareDir(w.sandbox.id), 'ssh-agent.sock'));
          current.get(w.sandbox.id)?.close();
          current.set(w.sandbox.id, f);
          await f.listen(HostIds.of(w.sandbox.uid).uid);
          if (closed) return f.close();
          fwd = f;
          await engine.touchSandbox(w.sandbox.id);
          ws.send(JSON.stringify({ type: 'ready' }));
        } catch (e) {
          const error =
            e instanceof RealmError ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: errorMessage(e) };
          ws.send(JSON.stringify({ type: 'error', error }));
          ws.close(1008, 'refused');
        }
      };
      return {
        onOpen(_evt, ws) {
          void open(ws);
        },
        onMessage(event: { data: unknown }) {
          try {
            fwd?.message(event.data);
          } catch {
            /* a malformed frame from the client only harms its own forwarding */
          }
        },
        onClose() {
          closed = true;
          fwd?.close();
          if (fwd && current.get(sandboxId) === fwd) current.delete(sandboxId);
        },
      };
    }),
  );
}
