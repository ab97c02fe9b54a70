/**
 * How the gateway reaches a port inside a replica's sandbox. A namespace sandbox has a network
 * namespace of its own with loopback only, so nothing on the host can dial its port; instead a
 * relay (relay.ts) per sandbox and port runs in that network namespace (nsenter --net, as nobody)
 * and listens on a Unix socket in the host's filesystem. HTTP requests go to it with
 * `socketPath`; WebSocket upgrades are written to it raw and piped both ways.
 *
 * The interface is small on purpose: another proxy (a sandbox-port proxy of the gateway's) can
 * take its place without the services code changing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { type IncomingMessage, type ServerResponse, request } from 'node:http';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import type { Engine } from '../engine/engine.js';
import { RealmError } from '../util/errors.js';

/** The relay's unprivileged uid and gid (nobody). */
const RELAY_ID = 65534;
const RELAY_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'relay.js');

export interface ReplicaProxy {
  /**
   * Pass one HTTP request (its body streamed) to the sandbox's port; `path` is what the replica sees.
   * Rejects (SERVICE_UNAVAILABLE) when the replica failed before its answer began, nothing sent to the client.
   */
  proxy(req: IncomingMessage, res: ServerResponse, sandboxId: string, port: number, path: string): Promise<void>;
  /** Pass a WebSocket (or other) upgrade: the head is rewritten with `path`, then bytes flow both ways. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, sandboxId: string, port: number, path: string): Promise<void>;
  /** A health check: an HTTP GET of `path` answers 2xx/3xx, or (no path) a TCP connection to the port opens. */
  check(sandboxId: string, port: number, timeoutMs: number, path?: string): Promise<boolean>;
  /** Stop the relay of a sandbox (it is going away). */
  forget(sandboxId: string): void;
  close(): void;
}

/** Headers that belong to one connection, not passed on (RFC 9110 7.6.1). */
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

interface Relay {
  child: ChildProcess;
  socket: string;
  ready: Promise<void>;
}

export class NsenterReplicaProxy implements ReplicaProxy {
  private readonly dir: string;
  private readonly relays = new Map<string, Relay>();

  constructor(private readonly engine: Engine) {
    this.dir = mkdtempSync(join(tmpdir(), 'realm-svc-'));
    chmodSync(this.dir, 0o711);
  }

  /** The relay's socket for the sandbox's port, started on first use. */
  private async socketFor(sandboxId: string, port: number): Promise<string> {
    const key = `${sandboxId}:${port}`;
    let relay = this.relays.get(key);
    if (relay && relay.child.exitCode === null && relay.child.signalCode === null) {
      await relay.ready;
      return relay.socket;
    }
    const sb = await this.engine.getSandbox(sandboxId);
    const pid = (sb.driverState as { pid?: number }).pid;
    if (sb.driver !== 'namespace' || !pid || sb.status !== 'running')
      throw new RealmError('SERVICE_UNAVAILABLE', `sandbox ${sandboxId} is not a running namespace sandbox`);
    const own = join(this.dir, `${sandboxId}-${port}`);
    mkdirSync(own, { recursive: true, mode: 0o700 });
    chownSync(own, RELAY_ID, RELAY_ID);
    const socket = join(own, 's');
    const child = spawn(
      'nsenter',
      [
        `--net=/proc/${pid}/ns/net`,
        '-S',
        String(RELAY_ID),
        '-G',
        String(RELAY_ID),
        '--',
        process.execPath,
        RELAY_SCRIPT,
        socket,
        String(port),
      ],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr?.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-2000)));
    const ready = (async () => {
      // The relay is up once both of its sockets exist.
      for (let i = 0; i < 400; i++) {
        if (child.exitCode !== null || child.signalCode !== null) break;
        if (existsSync(`${socket}.probe`)) return;
        await new Promise((r) => setTimeout(r, 10));
      }
      child.kill('SIGKILL');
      throw new RealmError(
        'SERVICE_UNAVAILABLE',
        `the relay into sandbox ${sandboxId} did not start: ${err.trim() || 'no message'}`,
      );
    })();
    child.once('exit', () => {
      if (this.relays.get(key)?.child === child) this.relays.delete(key);
      rmSync(own, { recursive: true, force: true });
    });
    relay = { child, socket, ready };
    this.relays.set(key, relay);
    await ready;
    return socket;
  }

  async proxy(req: IncomingMessage, res: ServerResponse, sandboxId: string, port: number, path: string): Promise<void> {
    const socketPath = await this.socketFor(sandboxId, port);
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k)) headers[k] = v;
    await new Promise<void>((resolve, reject) => {
      const out = request({ socketPath, method: req.method, path, headers }, (up) => {
        const h: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP.has(k)) h[k] = v;
        res.writeHead(up.statusCode ?? 502, up.statusMessage, h);
        up.pipe(res);
        up.once('end', resolve);
        up.once('error', () => resolve(void res.destroy()));
      });
      // Before an answer began, the caller may try another replica; after, the response is cut short.
      out.once('error', (e) => {
        if (res.headersSent) resolve(void res.destroy());
        else reject(new RealmError('SERVICE_UNAVAILABLE', `the replica did not answer: ${e.message}`));
      });
      res.once('close', () => {
        out.destroy();
        resolve();
      });
      req.pipe(out);
    });
  }

  async upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    sandboxId: string,
    port: number,
    path: string,
  ): Promise<void> {
    const socketPath = await this.socketFor(sandboxId, port);
    const up: Socket = connect(socketPath);
    const lines = [`${req.method ?? 'GET'} ${path} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    up.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length) up.write(head);
    up.pipe(socket);
    socket.pipe(up);
    const done = (): void => {
      up.destroy();
      socket.destroy();
    };
    up.once('error', done).once('close', done);
    socket.once('error', done).once('close', done);
  }

  async check(sandboxId: string, port: number, timeoutMs: number, path?: string): Promise<boolean> {
    const socket = await this.socketFor(sandboxId, port);
    if (path !== undefined) {
      return new Promise((resolve) => {
        const out = request(
          { socketPath: socket, path, headers: { host: 'localhost', 'user-agent': 'realm-health' }, timeout: timeoutMs },
          (up) => {
            up.resume();
            const code = up.statusCode ?? 0;
            resolve(code >= 200 && code < 400);
          },
        );
        out.once('timeout', () => out.destroy());
        out.once('error', () => resolve(false));
        out.end();
      });
    }
    const socketPath = `${socket}.probe`;
    return new Promise((resolve) => {
      const s = connect(socketPath);
      let answer = '';
      const timer = setTimeout(() => s.destroy(), timeoutMs);
      s.on('data', (c: Buffer) => (answer += c.toString()));
      s.once('error', () => undefined);
      s.once('close', () => {
        clearTimeout(timer);
        resolve(answer === 'ok');
      });
    });
  }

  forget(sandboxId: string): void {
    for (const [key, relay] of this.relays)
      if (key.startsWith(`${sandboxId}:`)) {
        this.relays.delete(key);
        relay.child.kill('SIGTERM');
      }
  }

  close(): void {
    for (const relay of this.relays.values()) relay.child.kill('SIGTERM');
    this.relays.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
