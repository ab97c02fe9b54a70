/**
 * The OCI bundle runsc starts: a skeleton root (read-only; mount points and symlinks only), the
 * image bound in read-only, a writable home and /tmp with sizes, realm's tools under /.realm, and
 * a process that runs as uid 1000 (the host's sandbox uid, through a user namespace mapping)
 * with no capabilities.
 *
 * The `host` image has the same layout as the namespace driver's: the host's /usr read-only and
 * a generated /etc (passwd, group, hosts and harmless host files), nothing else of the host.
 *
 * Network as with the namespace driver: `all` joins the network namespace the driver made (with
 * slirp4netns's tap0) and gets slirp's DNS; an allow-list binds the proxy's directory at
 * /.realm/net and has PID 1 start the forwarder to it on 127.0.0.1 as the sandbox user.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { DriverSandboxSpec } from '../driver.js';
import { SANDBOX_USER } from '../shared/etc.js';

/** Host files shared by every gVisor sandbox. */
export interface GvRuntime {
  etcDir: string;
  initPath: string;
  fsPath: string;
  execPath: string;
  /** The seccomp program every exec's command runs under (the namespace driver's filter). */
  seccompPath: string;
  /** resolv.conf for network `all`: slirp4netns's DNS forwarder. */
  resolvConf: string;
}

/** Where this sandbox's network comes from (see RunscNet). */
export interface BundleNet {
  /** Network `all`: the network namespace (a path) runsc's sandbox joins. */
  netns?: string | undefined;
}

/** Top-level directories a sandbox gets fresh, never from the image. */
const OWN = new Set(['proc', 'dev', 'tmp', 'sys', 'home', '.realm']);

interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

/**
 * Defence in depth inside gVisor's own kernel (which applies OCI seccomp to every process of the
 * sandbox, execs included): calls a sandboxed program has no business making fail with EPERM, as
 * under the namespace driver's filter. runsc 20221219 ignores argument conditions, so only whole
 * calls are listed; unshare stays (realm-gvexec makes each exec's PID namespace with it).
 */
const SECCOMP = {
  defaultAction: 'SCMP_ACT_ALLOW',
  architectures: ['SCMP_ARCH_X86_64'],
  syscalls: [
    {
      names: [
        'ptrace',
        'process_vm_readv',
        'process_vm_writev',
        'mount',
        'umount2',
        'pivot_root',
        'chroot',
        'setns',
        'bpf',
        'perf_event_open',
        'keyctl',
        'add_key',
        'request_key',
        'userfaultfd',
        'kexec_load',
        'init_module',
        'finit_module',
        'delete_module',
        'acct',
        'swapon',
        'swapoff',
        'reboot',
      ],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: 1,
    },
  ],
};

const SETID = ['CAP_SETUID', 'CAP_SETGID'];
/** The allow-list proxy's socket inside (its directory is bound at /.realm/net, as under namespace). */
const PROXY_SOCKET = '/.realm/net/proxy.sock';
/** What PID 1 writes into the status directory once an allow-list's forwarder listens. */
export const READY_FILE = 'init-ready';

const roBind = (source: string, destination: string): OciMount => ({
  destination,
  type: 'bind',
  source,
  options: ['rbind', 'ro', 'nosuid', 'nodev'],
});

function touch(path: string): void {
  closeSync(openSync(path, 'a', 0o644));
}

/**
 * Write the bundle under `dir` (config.json and the skeleton root) for this sandbox.
 * `home` is the host directory bound at /home/user; `status` the one realm-gvexec reports into.
 */
export function writeBundle(
  dir: string,
  spec: DriverSandboxSpec,
  rt: GvRuntime,
  paths: { home: string; status: string },
  hostUid: number,
  net: BundleNet = {},
): void {
  rmSync(dir, { recursive: true, force: true });
  const root = join(dir, 'root');
  mkdirSync(root, { recursive: true, mode: 0o755 });
  for (const d of ['proc', 'dev', 'sys', 'tmp', 'home/user', '.realm/status', ...(spec.proxy ? ['.realm/net'] : [])])
    mkdirSync(join(root, d), { recursive: true, mode: 0o755 });
  for (const f of ['init', 'fs', 'exec', 'seccomp']) touch(join(root, '.realm', f));

  const mounts: OciMount[] = [{ destination: '/proc', type: 'proc', source: 'proc' }];
  if (spec.rootfs === 'host') {
    for (const d of ['usr', 'etc', 'var/tmp', 'run', 'opt', 'srv']) mkdirSync(join(root, d), { recursive: true, mode: 0o755 });
    for (const l of ['bin', 'sbin', 'lib', 'lib64', 'lib32', 'libx32']) {
      if (existsSync(`/usr/${l}`)) symlinkSync(`usr/${l}`, join(root, l));
    }
    mounts.push(roBind('/usr', '/usr'), roBind(rt.etcDir, '/etc'));
    if (net.netns) mounts.push(roBind(rt.resolvConf, '/etc/resolv.conf'));
  } else {
    // The image's top-level entries, each bound read-only onto its own mount point.
    for (const e of readdirSync(spec.rootfs, { withFileTypes: true })) {
      if (OWN.has(e.name)) continue;
      const src = join(spec.rootfs, e.name);
      if (e.isSymbolicLink()) symlinkSync(readlinkSync(src), join(root, e.name));
      else {
        if (e.isDirectory()) mkdirSync(join(root, e.name));
        else touch(join(root, e.name));
        mounts.push(roBind(src, `/${e.name}`));
      }
    }
  }
  const tmpOpts = (bytes: number): string[] => ['nosuid', 'nodev', `size=${bytes}`, 'mode=1777'];
  mounts.push(
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
    // gVisor would add its own synthetic /sys; closed by default, as with the namespace driver.
    {
      destination: '/sys',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['ro', 'nosuid', 'nodev', 'noexec', 'size=4096', 'mode=000'],
    },
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: tmpOpts(spec.limits.tmpBytes) },
    { destination: '/dev/shm', type: 'tmpfs', source: 'tmpfs', options: tmpOpts(spec.limits.tmpBytes) },
    { destination: SANDBOX_USER.home, type: 'bind', source: paths.home, options: ['rbind', 'rw', 'nosuid', 'nodev'] },
    roBind(rt.initPath, '/.realm/init'),
    roBind(rt.fsPath, '/.realm/fs'),
    roBind(rt.execPath, '/.realm/exec'),
    roBind(rt.seccompPath, '/.realm/seccomp'),
    { destination: '/.realm/status', type: 'bind', source: paths.status, options: ['rbind', 'rw', 'nosuid', 'nodev'] },
  );
  if (spec.proxy) mounts.push(roBind(spec.proxy.dir, '/.realm/net'));
  for (const m of spec.mounts) {
    mounts.push({
      destination: m.target,
      type: 'bind',
      source: m.source,
      options: ['rbind', m.readOnly ? 'ro' : 'rw', 'nosuid', 'nodev'],
    });
  }

  const config = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      // PID 1 only reaps orphans (execs come in through `runsc exec`). It is the sandbox's root
      // with no capabilities, so the sandbox user can neither trace nor signal it.
      user: { uid: 0, gid: 0 },
      // With an allow-list it also starts the proxy forwarder as the sandbox user (who owns the
      // proxy's socket), for which alone it holds CAP_SETUID and CAP_SETGID, dropped after.
      // It says so in the status directory (READY_FILE) once the forwarder listens.
      args: spec.proxy
        ? [
            '/.realm/init',
            `/.realm/status/${READY_FILE}`,
            '--proxy',
            String(spec.proxy.port),
            PROXY_SOCKET,
            String(SANDBOX_USER.uid),
            String(SANDBOX_USER.gid),
          ]
        : ['/.realm/init'],
      env: ['PATH=/usr/bin:/bin'],
      cwd: SANDBOX_USER.home,
      capabilities: spec.proxy
        ? { bounding: SETID, effective: SETID, inheritable: [], permitted: SETID, ambient: [] }
        : { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
      noNewPrivileges: true,
    },
    root: { path: 'root', readonly: true },
    hostname: spec.hostname,
    mounts,
    linux: {
      seccomp: SECCOMP,
      namespaces: [
        { type: 'pid' },
        { type: 'network', ...(net.netns ? { path: net.netns } : {}) },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'user' },
      ],
      // The sandbox user is the host's sandbox uid to runsc's gofer (as for the namespace driver:
      // home, volumes and files it writes belong to that uid); root stays root for realm-gvexec.
      uidMappings: [
        { containerID: 0, hostID: 0, size: 1 },
        { containerID: SANDBOX_USER.uid, hostID: hostUid, size: 1 },
      ],
      gidMappings: [
        { containerID: 0, hostID: 0, size: 1 },
        { containerID: SANDBOX_USER.gid, hostID: hostUid, size: 1 },
      ],
    },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config), { mode: 0o600 });
}
