/**
 * Who is at the other end of a unix-socket connection: SO_PEERCRED, through a tiny N-API addon
 * (native/peercred; Node has no API for it). The kernel records the peer's credentials when it
 * connects, so they cannot change under a connection, and a peer cannot claim another's.
 */
import type { Socket } from 'node:net';
import { loadAddon, streamHandle } from '../util/addon.js';

export interface PeerCred {
  uid: number;
  gid: number;
  pid: number;
}

type Addon = { peercred(fd: number): PeerCred };

const load = (): Addon => loadAddon<Addon>("reads a unix-socket caller's uid");

/** Fail at start, not at the first connection, when the addon is missing (run scripts/build.sh). */
export function checkPeerCred(): void {
  load();
}

/** The credentials of a connected unix socket's peer. */
export function peerCred(socket: Socket): PeerCred {
  const fd = streamHandle(socket)?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the connection has no file descriptor to ask SO_PEERCRED of');
  return load().peercred(fd);
}
