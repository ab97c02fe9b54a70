/**
 * Who is at the other end of a unix-socket connection: SO_PEERCRED, through a tiny N-API addon
 * (native/peercred; Node has no API for it). The kernel records the peer's credentials when it
 * connects, so they cannot change under a connection, and a peer cannot claim another's.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { NATIVE_DIR } from '../util/paths.js';

export interface PeerCred {
  uid: number;
  gid: number;
  pid: number;
}

type Addon = { peercred(fd: number): PeerCred };
let addon: Addon | undefined;

function load(): Addon {
  if (addon) return addon;
  const path = join(NATIVE_DIR, 'peercred.node');
  try {
    addon = createRequire(import.meta.url)(path) as Addon;
  } catch (e) {
    throw new Error(
      `cannot load ${path}, which reads a unix-socket caller's uid (${(e as Error).message}); build it with scripts/build.sh`,
    );
  }
  return addon;
}

/** Fail at start, not at the first connection, when the addon is missing (run scripts/build.sh). */
export function checkPeerCred(): void {
  load();
}

/** The credentials of a connected unix socket's peer. */
export function peerCred(socket: Socket): PeerCred {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the connection has no file descriptor to ask SO_PEERCRED of');
  return load().peercred(fd);
}
