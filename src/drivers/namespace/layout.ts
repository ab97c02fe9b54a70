/**
 * The bubblewrap command line for a sandbox: which namespaces, which mounts, which filter.
 *
 * The `host` image is the host's /usr (read-only) with a short list of harmless /etc files and
 * generated passwd/group/hosts: no /root, /home, /var, daemon data or /etc secrets inside.
 */
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { DriverSandboxSpec } from '../driver.js';
import type { CgroupPlan } from '../shared/cgroups.js';
import { SANDBOX_USER } from '../shared/etc.js';

/** Top-level directories the sandbox gets fresh, never from the image. */
const OWN_DIRS = new Set(['proc', 'dev', 'tmp', 'sys', 'home', '.realm']);

/** Host-side files shared by all sandboxes (generated /etc files, the init binary, the filter). */
export interface Runtime {
  dir: string;
  etcDir: string;
  initPath: string;
  /** realm-fs, the files API's tool, mounted at /.realm/fs in long-lived sandboxes. */
  fsPath: string;
  /** resolv.conf for `all` networking: slirp4netns's DNS forwarder. */
  resolvConf: string;
  seccompPath: string;
  /** An empty directory a one-shot sandbox's root is built on (see native/launch.c). */
  newRoot: string;
}

/** How a sandbox's home directory is made, what goes into it, and what runs as PID 1. */
export interface BwrapPlan {
  /** A host directory (the persistent writable layer), or a tmpfs of this many bytes. */
  home: { bind: string } | { tmpfsBytes: number };
  /** Files bwrap copies from inherited fds into the home directory. */
  files?: { fd: number; path: string }[];
  seccompFd: number;
  infoFd?: number;
  /** Environment of PID 1 (and what it starts); empty when execs bring their own. */
  env?: Record<string, string>;
  /** The command run as PID 1, a path inside the sandbox (e.g. `/.realm/init`). */
  command: string[];
  /** Mount realm's file tool (for the files API) at /.realm/fs. */
  fsTool?: boolean;
}

/** The bwrap arguments (after `bwrap`) that build this sandbox. */
export function bwrapArgs(spec: DriverSandboxSpec, rt: Runtime, plan: BwrapPlan): string[] {
  const a: string[] = [
    '--unshare-user',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-cgroup-try',
    '--disable-userns',
    '--uid',
    String(SANDBOX_USER.uid),
    '--gid',
    String(SANDBOX_USER.gid),
    '--hostname',
    spec.hostname,
    '--cap-drop',
    'ALL',
    '--as-pid-1',
    '--new-session',
    '--seccomp',
    String(plan.seccompFd),
  ];
  if (plan.infoFd !== undefined) a.push('--info-fd', String(plan.infoFd));
  // Every sandbox has its own network namespace; `all` gets user-mode NAT (slirp4netns) in it.
  a.push('--unshare-net');

  if (spec.rootfs === 'host') {
    a.push('--ro-bind', '/usr', '/usr');
    for (const l of ['bin', 'sbin', 'lib', 'lib64', 'lib32', 'libx32']) {
      if (existsSync(`/usr/${l}`)) a.push('--symlink', `usr/${l}`, `/${l}`);
    }
    a.push('--ro-bind', rt.etcDir, '/etc');
    if (spec.network === 'all') a.push('--ro-bind', rt.resolvConf, '/etc/resolv.conf');
    a.push('--dir', '/var', '--dir', '/var/tmp', '--dir', '/run', '--dir', '/opt', '--dir', '/srv');
  } else {
    // The image's top-level entries on a fresh root, so mount points (/home/user, /tmp) can be made
    // without writing into the image.
    for (const e of readdirSync(spec.rootfs, { withFileTypes: true })) {
      if (OWN_DIRS.has(e.name)) continue;
      const src = join(spec.rootfs, e.name);
      if (e.isSymbolicLink()) a.push('--symlink', readlinkSync(src), `/${e.name}`);
      else a.push('--ro-bind', src, `/${e.name}`);
    }
  }
  a.push('--proc', '/proc', '--dev', '/dev');
  a.push('--size', String(spec.limits.tmpBytes), '--perms', '1777', '--tmpfs', '/tmp');
  a.push('--size', String(spec.limits.tmpBytes), '--perms', '1777', '--tmpfs', '/dev/shm');
  if ('bind' in plan.home) a.push('--bind', plan.home.bind, SANDBOX_USER.home);
  else a.push('--size', String(plan.home.tmpfsBytes), '--perms', '0755', '--tmpfs', SANDBOX_USER.home);
  const dirs = new Set<string>();
  for (const f of plan.files ?? []) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  for (const d of [...dirs].sort()) a.push('--dir', `${SANDBOX_USER.home}/${d}`);
  for (const f of plan.files ?? []) a.push('--file', String(f.fd), `${SANDBOX_USER.home}/${f.path}`);
  for (const m of spec.mounts) a.push(m.readOnly ? '--ro-bind' : '--bind', m.source, m.target);
  a.push('--ro-bind', rt.initPath, '/.realm/init');
  if (plan.fsTool) a.push('--ro-bind', rt.fsPath, '/.realm/fs');
  if (spec.proxy) a.push('--ro-bind', spec.proxy.dir, '/.realm/net');
  a.push('--remount-ro', '/');
  a.push('--chdir', SANDBOX_USER.home, '--clearenv');
  for (const [k, v] of Object.entries(plan.env ?? {})) a.push('--setenv', k, v);
  a.push('--', ...plan.command);
  return a;
}

/** What `launchArgs` needs besides the spec: where PID 1's descriptors and cgroups are. */
export interface LaunchPlan {
  /** The cgroups to make, limit and join (and the figures to report on --stats-fd). */
  cgroup: CgroupPlan;
  statsFd?: number;
  /** The group every sandbox uid carries (passage through the data and runtime dirs). */
  group: number;
  /** Descriptors PID 1 keeps (besides stdio). */
  keepFds: number[];
  infoFd?: number;
  command: string[];
}

/**
 * The arguments (after `realm-helper`) of `realm-helper sandbox`, realm's own builder of one-shot
 * sandboxes: the layout `bwrapArgs` gives one (home a tmpfs of the disk size, no volumes or
 * proxy) for a fraction of bwrap's cost. See native/launch.c.
 */
export function launchArgs(spec: DriverSandboxSpec, rt: Runtime, plan: LaunchPlan): string[] {
  if (spec.mounts.length > 0 || spec.proxy) throw new Error('one-shot sandboxes built by realm-helper have no volumes or proxy');
  const cg = plan.cgroup;
  return [
    'sandbox',
    ...cg.dirs.flatMap((d) => ['--mkdir', d]),
    ...cg.writes.flatMap((w) => [w.optional ? '--write-opt' : '--write', `${w.file}=${w.value}`]),
    ...cg.procs.flatMap((f) => ['--cgroup', f]),
    ...(plan.statsFd !== undefined
      ? ['--stat-cpu', cg.stats.cpu, '--stat-peak', cg.stats.peak, '--stat-oom', cg.stats.oom, '--stats-fd', String(plan.statsFd)]
      : []),
    '--uid',
    String(spec.uid),
    '--groups',
    String(plan.group),
    '--seccomp',
    rt.seccompPath,
    '--base',
    rt.newRoot,
    '--root',
    spec.rootfs,
    ...(spec.rootfs === 'host' ? ['--etc', rt.etcDir] : []),
    ...(spec.network === 'all' && spec.rootfs === 'host' ? ['--resolv', rt.resolvConf] : []),
    '--init',
    rt.initPath,
    '--tmp',
    String(spec.limits.tmpBytes),
    '--home',
    String(spec.limits.diskBytes),
    '--hostname',
    spec.hostname,
    ...(plan.infoFd !== undefined ? ['--info-fd', String(plan.infoFd)] : []),
    ...plan.keepFds.flatMap((fd) => ['--keep-fd', String(fd)]),
    '--',
    ...plan.command,
  ];
}
