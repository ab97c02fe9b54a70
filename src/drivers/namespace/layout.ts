/**
 * The bubblewrap command line for a sandbox: which namespaces, which mounts, which filter.
 *
 * The `host` image is the host's /usr (read-only) with a short list of harmless /etc files and
 * generated passwd/group/hosts: no /root, /home, /var, daemon data or /etc secrets inside.
 */
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DriverSandboxSpec } from '../driver.js';
import type { CgroupPlan } from './cgroups.js';

/** The user programs run as inside every sandbox. */
export const SANDBOX_USER = { uid: 1000, gid: 1000, name: 'user', home: '/home/user' } as const;

/** /etc entries of the host that carry no secrets and that runtimes expect. */
const HOST_ETC = [
  'alternatives', 'ld.so.cache', 'ld.so.conf', 'ld.so.conf.d', 'ssl', 'ca-certificates',
  'ca-certificates.conf', 'localtime', 'timezone', 'nsswitch.conf', 'mime.types', 'protocols',
  'services', 'gai.conf', 'host.conf', 'python3', 'python3.11', 'perl', 'bash.bashrc', 'profile',
  'inputrc', 'magic', 'magic.mime', 'debian_version', 'os-release', 'login.defs', 'environment',
];

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

/**
 * Build the /etc every `host`-image sandbox sees: copies of the harmless host entries (symlinks
 * kept as symlinks, /etc/ssl/private left out) plus generated passwd, group and hosts. One bind
 * of this directory replaces dozens of single-file binds, each of which costs bwrap a re-read of
 * the mount table. The directory is named by its content, so a changed host /etc gives a new one
 * while running sandboxes keep theirs. The name is computed from the host's files first, so a
 * daemon start whose /etc is unchanged reuses the directory instead of copying again (hundreds
 * of symlinks under /etc/alternatives make the copy take about half a second).
 *
 * Copies keep their modification times: Python trusts the bytecode cached under /usr for a source
 * file only while the source's mtime matches, and Debian's /usr/lib/python3.X/sitecustomize.py
 * is a link to /etc/python3.X/sitecustomize.py. A fresh mtime made every python start in a
 * sandbox recompile it, about 2 ms of CPU per run (a sixth of a `print(1)`).
 */
export function buildEtc(runtimeDir: string): string {
  const generated = generatedEtc();
  // v2: mtimes are part of the copy (and of its name), so copies made without them are not reused.
  const hash = createHash('sha256').update('v2\0');
  const skip = (src: string): boolean => src.startsWith('/etc/ssl/private');
  const walk = (path: string, rel: string): void => {
    if (skip(path)) return;
    const st = lstatSync(path);
    hash.update(`${rel}\0`);
    if (st.isSymbolicLink()) hash.update(`l${readlinkSync(path)}\0`);
    else if (st.isDirectory()) for (const name of readdirSync(path).sort()) walk(join(path, name), `${rel}/${name}`);
    else hash.update(readFileSync(path)).update(`\0${st.mode}\0${st.mtimeMs}\0`);
  };
  for (const e of HOST_ETC) if (existsSync(`/etc/${e}`)) walk(`/etc/${e}`, e);
  for (const [name, text] of Object.entries(generated)) hash.update(`g${name}\0${text}\0`);
  const final = join(runtimeDir, `etc-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(final)) return final;
  const tmp = join(runtimeDir, `etc.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o755 });
  for (const e of HOST_ETC) {
    if (!existsSync(`/etc/${e}`)) continue;
    cpSync(`/etc/${e}`, join(tmp, e), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true, filter: (src) => !skip(src) });
  }
  for (const [name, text] of Object.entries(generated)) writeFileSync(join(tmp, name), text, { mode: 0o644 });
  chmodSync(tmp, 0o755);
  try {
    renameSync(tmp, final);
  } catch (e) {
    // Another daemon sharing this runtime dir made the same directory first.
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(final)) throw e;
  }
  return final;
}

/** The generated /etc files every sandbox sees, by name. */
function generatedEtc(): Record<string, string> {
  const { uid, gid, name, home } = SANDBOX_USER;
  return {
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\n${name}:x:${uid}:${gid}:sandbox user:${home}:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    group: `root:x:0:\n${name}:x:${gid}:\nnogroup:x:65534:\n`,
    hosts: '127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n',
    // Mount point for the host's resolv.conf when a sandbox has network.
    'resolv.conf': '',
  };
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
    '--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try',
    '--disable-userns',
    '--uid', String(SANDBOX_USER.uid), '--gid', String(SANDBOX_USER.gid),
    '--hostname', spec.hostname,
    '--cap-drop', 'ALL', '--as-pid-1', '--new-session',
    '--seccomp', String(plan.seccompFd),
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
    'sandbox', ...cg.dirs.flatMap((d) => ['--mkdir', d]),
    ...cg.writes.flatMap((w) => [w.optional ? '--write-opt' : '--write', `${w.file}=${w.value}`]),
    ...cg.procs.flatMap((f) => ['--cgroup', f]),
    ...(plan.statsFd !== undefined ? ['--stat-cpu', cg.stats.cpu, '--stat-peak', cg.stats.peak, '--stat-oom', cg.stats.oom, '--stats-fd', String(plan.statsFd)] : []),
    '--uid', String(spec.uid), '--groups', String(plan.group), '--seccomp', rt.seccompPath, '--base', rt.newRoot,
    '--root', spec.rootfs, ...(spec.rootfs === 'host' ? ['--etc', rt.etcDir] : []),
    ...(spec.network === 'all' && spec.rootfs === 'host' ? ['--resolv', rt.resolvConf] : []),
    '--init', rt.initPath, '--tmp', String(spec.limits.tmpBytes), '--home', String(spec.limits.diskBytes),
    '--hostname', spec.hostname, ...(plan.infoFd !== undefined ? ['--info-fd', String(plan.infoFd)] : []),
    ...plan.keepFds.flatMap((fd) => ['--keep-fd', String(fd)]), '--', ...plan.command,
  ];
}
