/**
 * Starting `runsc run` for a sandbox, bounded (30 s), inside the sandbox's cgroups so runsc's
 * gofer and sandbox processes (and their children) start there.
 *
 * With network `all`: gVisor's own network stack (runsc
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
import { startSlirp } from '../shared/slirp.js';

/** Write our pid into each cgroup.procs file, then exec the rest (the sandbox's processes start inside). */
const JOIN_CGROUPS = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"';

/** The holder: in the new network namespace, "ready", then wait until told to go (or the daemon is gone). */
const HOLD = 'echo ready; read go; exit 0';

/** Before `runsc run` ($2...): the plain procfs at $1, then the mask. */
const MASKED =
  '/usr/bin/mount -t proc -o nosuid,nodev,noexec realm-proc "$1" && ' +
  '/usr/bin/mount -t tmpfs -o ro,nosuid,nodev,noexec,size=4k,mode=555 realm-netmask /proc/sys/net || exit 125; shift; exec "$@"';

const START_TIMEOUT_MS = 30_000;

/**
 * Run `runArgs` (a `runsc run --detach` command line; stderr to `log`) and resolve with its exit
 * code. `writeBundle` is called first, with the network namespace for network `all` (`procDir`
 * set: an empty directory of the sandbox's, see prepareNetwork). On a timeout or failure what
 * was started is left to the caller's cgroup kill.
 */
export async function runscRun(
  runArgs: string[],
  cgroupProcs: string[],
  log: number,
  writeBundle: (netns?: string) => void,
  procDir?: string,
): Promise<number | null> {
  const started = Date.now();
  let proc: ChildProcess;
  if (procDir) {
    const net = await withTimeout(
      prepareNetwork(cgroupProcs, procDir),
      START_TIMEOUT_MS,
      `the network for the gVisor sandbox was not ready within ${START_TIMEOUT_MS / 1000} s`,
    );
    writeBundle(net.netns);
    proc = net.spawnRunsc(runArgs, log);
    proc.once('exit', () => net.release());
  } else {
    writeBundle();
    proc = spawn('/bin/sh', ['-c', JOIN_CGROUPS, 'sh', String(cgroupProcs.length), ...cgroupProcs, ...runArgs], {
      stdio: ['ignore', 'ignore', log],
      env: {},
      cwd: '/',
    });
  }
  return new Promise<number | null>((resolve, reject) => {
    if (proc.exitCode !== null) return resolve(proc.exitCode);
    const timer = setTimeout(
      () => {
        proc.kill('SIGKILL');
        reject(new Error(`runsc did not start the sandbox within ${START_TIMEOUT_MS / 1000} s`));
      },
      Math.max(1000, START_TIMEOUT_MS - (Date.now() - started)),
    );
    proc.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.once('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
}

interface SandboxNetwork {
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
async function prepareNetwork(cgroupProcs: string[], procDir: string): Promise<SandboxNetwork> {
  mkdirSync(procDir, { recursive: true, mode: 0o700 });
  const join = (cmd: string[]): string[] => ['-c', JOIN_CGROUPS, 'sh', String(cgroupProcs.length), ...cgroupProcs, ...cmd];
  const holder = spawn('/bin/sh', join(['/usr/bin/unshare', '--net', '--', '/bin/sh', '-c', HOLD]), {
    stdio: ['pipe', 'pipe', 'ignore'],
    env: {},
    cwd: '/',
  });
  const stdin = holder.stdin;
  stdin.on('error', () => undefined);
  const release = (): void => void stdin.end('go\n');
  const exited = new Promise<never>((_, reject) => {
    holder.once('error', reject);
    holder.once('exit', (code, sig) =>
      reject(new Error(`the network namespace for the sandbox could not be made (${sig ?? `exit ${code}`})`)),
    );
  });
  exited.catch(() => undefined);
  try {
    await Promise.race([readLine(holder.stdout, 'ready'), exited]);
    const netns = `/proc/${holder.pid}/ns/net`;
    await Promise.race([startSlirp(netns, cgroupProcs), exited]);
    return {
      netns,
      release,
      spawnRunsc: (runArgs, log) =>
        spawn(
          '/bin/sh',
          join([
            '/usr/bin/unshare',
            '--mount',
            '--propagation',
            'private',
            '--',
            '/bin/sh',
            '-c',
            MASKED,
            'sh',
            procDir,
            ...runArgs,
          ]),
          { stdio: ['ignore', 'ignore', log], env: {}, cwd: '/' },
        ),
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

/** `p`, or a rejection with `message` after `ms`. */
function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]).finally(
    () => clearTimeout(timer),
  );
}
