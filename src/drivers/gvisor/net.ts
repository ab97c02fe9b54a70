/**
 * Starting runsc for a gVisor sandbox with network `all`: gVisor's own network stack (runsc
 * `--network=sandbox`) on the interfaces of a network namespace made for the sandbox, where
 * slirp4netns provides tap0 (user-mode NAT, never the host's loopback) — as the namespace driver's
 * `all`. runsc takes tap0's addresses and routes over when the sandbox starts, so tap0 comes first:
 *
 *   1. a holder (in the sandbox's cgroups) unshares a network namespace, says "ready" and waits;
 *   2. slirp4netns (in the sandbox's cgroups) configures tap0 in it;
 *   3. the bundle names the namespace (/proc/HOLDER/ns/net) and `runsc run` starts the sandbox
 *      in it; once it runs there, the holder is let go.
 *
 * `runsc run` itself stays in the host's network namespace: runsc's control socket is an
 * abstract one, which its later calls must reach from there.
 *
 * runsc 20221219 refuses to set up networking in what it takes for the host's namespace: its
 * test is whether /proc/sys/net/core/rmem_default exists, which kernels since 6.x show in every
 * network namespace. So `runsc run` runs in a mount namespace of its own where /proc/sys/net is
 * hidden (an empty read-only tmpfs), and the test sees the namespace for what it is. A plain
 * procfs mounted at an empty directory of the sandbox's keeps one fully visible procfs in that
 * mount namespace, without which the kernel refuses runsc's gofer and sandbox (in their user
 * namespace) a procfs of their own.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { startSlirp } from '../slirp.js';

/** Write our pid into each cgroup.procs file, then exec the rest (the sandbox's processes start inside). */
export const JOIN_CGROUPS = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"';

/** The holder: in the new network namespace, "ready", then wait until told to go (or the daemon is gone). */
const HOLD = 'echo ready; read go; exit 0';

/** Before `runsc run` ($2...): the plain procfs at $1, then the mask. */
const MASKED = '/usr/bin/mount -t proc -o nosuid,nodev,noexec realm-proc "$1" && '
  + '/usr/bin/mount -t tmpfs -o ro,nosuid,nodev,noexec,size=4k,mode=555 realm-netmask /proc/sys/net || exit 125; shift; exec "$@"';

export interface SandboxNetwork {
  /** The network namespace runsc's sandbox is to join. */
  netns: string;
  /** Spawn `runsc run` (`runArgs`, stderr to `log`) where it sees that namespace for what it is. */
  spawnRunsc(runArgs: string[], log: number): ChildProcess;
  /** Let the holder go (once the sandbox runs in the namespace, or failed to). */
  release(): void;
}

/**
 * Make the network namespace with tap0 ready in it. `procDir` is an empty directory of the
 * sandbox's for the plain procfs. On failure the holder and slirp4netns are left to the
 * caller's cgroup kill.
 */
export async function prepareNetwork(cgroupProcs: string[], procDir: string): Promise<SandboxNetwork> {
  mkdirSync(procDir, { recursive: true, mode: 0o700 });
  const join = (cmd: string[]): string[] => ['-c', JOIN_CGROUPS, 'sh', String(cgroupProcs.length), ...cgroupProcs, ...cmd];
  const holder = spawn('/bin/sh', join(['/usr/bin/unshare', '--net', '--', '/bin/sh', '-c', HOLD]), { stdio: ['pipe', 'pipe', 'ignore'], env: {}, cwd: '/' });
  const stdin = holder.stdin;
  stdin.on('error', () => undefined);
  const release = (): void => void stdin.end('go\n');
  const exited = new Promise<never>((_, reject) => {
    holder.once('error', reject);
    holder.once('exit', (code, sig) => reject(new Error(`the network namespace for the sandbox could not be made (${sig ?? `exit ${code}`})`)));
  });
  exited.catch(() => undefined);
  try {
    await Promise.race([readLine(holder.stdout, 'ready'), exited]);
    const netns = `/proc/${holder.pid}/ns/net`;
    await Promise.race([startSlirp(netns, cgroupProcs), exited]);
    return {
      netns,
      release,
      spawnRunsc: (runArgs, log) => spawn('/bin/sh', join(['/usr/bin/unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', MASKED, 'sh', procDir, ...runArgs]),
        { stdio: ['ignore', 'ignore', log], env: {}, cwd: '/' }),
    };
  } catch (e) {
    release();
    throw e;
  }
}

function readLine(stream: Readable, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.split('\n').includes(line)) {
        stream.destroy();
        resolve();
      }
    });
    stream.once('end', () => reject(new Error(`the network namespace holder did not say "${line}"`)));
  });
}
