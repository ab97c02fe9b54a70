/**
 * Calling runsc: where it is, the global flags every call of one sandbox shares, and a bounded
 * run of one subcommand (a hung runsc is killed, never waited for without end).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NATIVE_DIR } from '../../util/paths.js';
import { type CommandResult, runCommand } from '../../util/run-command.js';

export const RUNSC = ['/usr/bin/runsc', '/usr/local/bin/runsc', '/usr/sbin/runsc'].find((p) => existsSync(p));

/** The per-exec wrapper that runs inside a gVisor sandbox (native/realm-gvexec.c). */
export const GVEXEC = join(NATIVE_DIR, 'realm-gvexec');

export type Platform = 'ptrace' | 'kvm';

/** The signal realm-gvexec takes as "kill the whole tree of this exec" (SIGSTKFLT, which runsc kill knows). */
export const KILL_TREE_SIGNAL = 16;

/**
 * How a sandbox's network is wired: `none` is gVisor's own stack with loopback only; `sandbox`
 * is gVisor's stack on the interfaces of the network namespace the driver made (slirp4netns's
 * tap0). `hostUds` lets the sandbox connect to host unix sockets bound in (an allow-list's proxy).
 */
export interface RunscNet {
  network: 'none' | 'sandbox';
  hostUds: boolean;
}

export const NO_NET: RunscNet = { network: 'none', hostUds: false };

/**
 * Flags every runsc call of one sandbox must repeat (runsc keeps none of them in its state):
 * its state directory, the platform, its network, and cgroups left to realm (the sandbox is
 * started inside the cgroup realm made for it).
 */
export function globalArgs(root: string, platform: Platform, net: RunscNet = NO_NET): string[] {
  return [
    `--root=${root}`,
    `--platform=${platform}`,
    `--network=${net.network}`,
    ...(net.hostUds ? ['--host-uds=open'] : []),
    '--ignore-cgroups',
  ];
}

/** Run one runsc subcommand to completion within `timeoutMs` (then SIGKILL). */
export async function runsc(
  root: string,
  platform: Platform,
  args: string[],
  timeoutMs = 15_000,
  net: RunscNet = NO_NET,
): Promise<CommandResult> {
  if (!RUNSC) throw new Error('runsc is not installed (apt-get install runsc)');
  return runCommand(RUNSC, [...globalArgs(root, platform, net), ...args], { timeoutMs, env: {} });
}
