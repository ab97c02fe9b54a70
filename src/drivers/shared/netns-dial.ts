/**
 * A connection to 127.0.0.1:PORT on the loopback of another network namespace (a sandbox's), made
 * by the daemon's native addon (native/peercred/netns-connect.c: the calling thread steps into the
 * namespace for the socket() call alone and back, then connects). The socket is then an ordinary
 * TCP socket of the daemon's: no helper process, no thread, no copy in between.
 */
import { Socket } from 'node:net';
import { constants } from 'node:os';
import { loadAddon } from '../../util/addon.js';
import { RealmError } from '../../util/errors.js';

type Addon = { netnsConnect(nsPath: string, port: number, pid?: number, startTime?: number): number };

const load = (): Addon => loadAddon<Addon>('dials into sandboxes');

/** The process whose namespace is dialled: its pid and start time (field 22 of /proc/PID/stat). */
export interface NetnsOwner {
  pid: number;
  startTime: number;
}

/**
 * Connect to 127.0.0.1:`port` in the network namespace at `nsPath` (e.g. /proc/PID/ns/net); with
 * `owner`, only if that process is still the one that started at its start time (checked by the
 * addon after the namespace file is opened, so a reused pid is never entered).
 */
export function dialNetns(nsPath: string, port: number, owner?: NetnsOwner): Socket {
  const a = load();
  const fd = owner ? a.netnsConnect(nsPath, port, owner.pid, owner.startTime) : a.netnsConnect(nsPath, port);
  if (fd === -constants.errno.ESRCH) throw new Error('sandbox is not running');
  if (fd === -constants.errno.ECONNREFUSED)
    throw new RealmError(
      'PORT_UNREACHABLE',
      `nothing listens on port ${port} in the sandbox (start a server on 127.0.0.1:${port} or 0.0.0.0:${port} inside it)`,
    );
  if (fd === -constants.errno.ETIMEDOUT)
    throw new RealmError(
      'PORT_UNREACHABLE',
      `port ${port} in the sandbox accepts no more connections now (its listen queue is full)`,
    );
  if (fd < 0) throw new RealmError('PORT_UNREACHABLE', `cannot connect to port ${port} in the sandbox: errno ${-fd}`);
  return new Socket({ fd, readable: true, writable: true });
}
