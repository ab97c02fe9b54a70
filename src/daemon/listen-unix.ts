/**
 * The daemon's unix socket: the same API as on TCP, where the caller is known by its uid
 * (SO_PEERCRED) instead of a token. The socket is mode 0666, so every local user may connect and
 * be served as itself; its directory must not be writable by others (nobody may swap the socket).
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, rmSync, statSync } from 'node:fs';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import type { Hono } from 'hono';
import { BodilessResponse } from './hygiene.js';
import { checkPeerCred, peerCred } from './peercred.js';
import { socketPeers } from './principal.js';

/** True when something accepts connections at `path` (another daemon's live socket). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function listenUnix(path: string, app: Hono): Promise<Server> {
  checkPeerCred();
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o755 });
  const st = statSync(dir);
  if (st.mode & 0o022)
    throw new Error(
      `the socket's directory ${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)}): another user could replace the socket; chmod 755 it or pick another --socket`,
    );
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket()) throw new Error(`${path} exists and is not a socket; remove it or pick another --socket`);
    if (await answers(path)) throw new Error(`another daemon serves ${path}; stop it or pick another --socket`);
    rmSync(path, { force: true }); // left by a daemon that died
  }
  const server = createAdaptorServer({ fetch: app.fetch, serverOptions: { ServerResponse: BodilessResponse } }) as Server;
  // The peer's credentials, read once as the connection is accepted, before any request on it.
  // A connection whose peer cannot be known is not served.
  server.on('connection', (sock) => {
    try {
      socketPeers.set(sock, peerCred(sock));
    } catch {
      sock.destroy();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o666);
  return server;
}
