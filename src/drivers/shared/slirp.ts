/**
 * Network "all" for drivers that give each sandbox its own network namespace: slirp4netns
 * (user-mode NAT) in that namespace, shared by the namespace and gvisor drivers and by microvm
 * (whose QEMU user-net lives in such a namespace). Its sockets in the host's namespace are the
 * one way out of all three, so that is where the daemon's egress guard (net/egress.ts) filters.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { NetworkCapability } from '../driver.js';
import { egressGuard } from '../../net/egress.js';
import { RealmError } from '../../util/errors.js';

/** slirp4netns's DNS forwarder, as seen from inside. */
export const SLIRP_DNS = '10.0.2.3';
export const SLIRP = ['/usr/bin/slirp4netns', '/usr/local/bin/slirp4netns'].find((p) => existsSync(p));

/** The network modes a driver whose `all` is slirp4netns can give on this host. */
export function networkModes(): NetworkCapability[] {
  return SLIRP ? ['none', 'all', 'allowlist'] : ['none', 'allowlist'];
}

/**
 * Give the network namespace at `netnsPath` outbound access by user-mode NAT: slirp4netns makes
 * tap0 (10.0.2.100, gateway 10.0.2.2, DNS 10.0.2.3) and turns the sandbox's connections into
 * ordinary sockets of its own — never to the host's loopback (--disable-host-loopback). It runs
 * sandboxed itself (--enable-sandbox, --enable-seccomp) and joins the sandbox's cgroups before it
 * starts (`cgroupProcs`, cgroup.procs files), so it dies with the sandbox. With `exitFd` (one end
 * of a socket pair whose other end a process of the sandbox holds) it also exits when that end
 * closes: when that process is gone, even if nobody kills the cgroup.
 * Its sockets in the host's namespace are where the daemon's egress guard (net/egress.ts) keeps
 * it to the public internet: it also joins the guard's cgroup, and without a guard it never starts.
 */
export async function startSlirp(netnsPath: string, cgroupProcs: string[], exitFd?: Socket): Promise<void> {
  if (!SLIRP) throw new RealmError('DRIVER_UNAVAILABLE', 'network "all" needs slirp4netns (apt-get install slirp4netns)');
  cgroupProcs = [...cgroupProcs, ...(await egressGuard(cgroupProcs).prepare(cgroupProcs))];
  // By path, so slirp4netns (root) joins only the network namespace, not any user namespace.
  const join = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"';
  const child = spawn(
    '/bin/sh',
    [
      '-c',
      join,
      'sh',
      String(cgroupProcs.length),
      ...cgroupProcs,
      SLIRP,
      '--configure',
      '--mtu=65520',
      '--disable-host-loopback',
      '--enable-sandbox',
      '--enable-seccomp',
      '--ready-fd=3',
      ...(exitFd ? ['--exit-fd=4'] : []),
      '--netns-type=path',
      netnsPath,
      'tap0',
    ],
    { stdio: ['ignore', 'ignore', 'pipe', 'pipe', ...(exitFd ? [exitFd] : [])], detached: true, env: {}, cwd: '/' },
  );
  child.unref();
  let err = '';
  (child.stderr as Readable).on('data', (d: Buffer) => (err += d.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      (child.stdio[3] as Readable).once('data', () => resolve());
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`slirp4netns exited (${code}): ${err.trim()}`)));
    });
  } finally {
    (child.stderr as Readable).destroy();
    (child.stdio[3] as Readable).destroy();
    child.removeAllListeners('exit');
  }
}
