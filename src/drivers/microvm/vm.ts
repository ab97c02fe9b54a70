/**
 * Starting one microVM: virtiofsd serving the image read-only (in a private mount namespace
 * where its source is a read-only bind), one more per volume (in a user namespace that maps the
 * guest's user to the sandbox uid), then QEMU `-M microvm` with the guest kernel, realm's
 * initramfs, the home disk (virtio-blk, ext4) and the agent's virtio-serial port on a unix
 * socket. Both run detached in the sandbox's host cgroup, so they outlive a daemon crash and
 * `recover` can find them; every path in their argv is under the sandbox's state dir, which is
 * how `sweep` recognises orphans. The network (a NIC in a namespace of its own, or the allow-list
 * forwarder's port) is network.ts's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { attachNat, inOwnNetns, networkArgs } from './network.js';

export const QEMU = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].find((p) => existsSync(p));
export const VIRTIOFSD = ['/usr/libexec/virtiofsd', '/usr/lib/qemu/virtiofsd'].find((p) => existsSync(p));
export const FIRECRACKER = ['/usr/bin/firecracker', '/usr/local/bin/firecracker'].find((p) => existsSync(p));

export type Accel = 'kvm' | 'tcg';

/** The least memory a guest is given: the kernel, the agent and page cache need room of their own. */
export const MIN_VM_MIB = 192;

export interface VmSpec {
  dir: string;
  /** The kernel QEMU boots: the uncompressed ELF (elf-kernel.ts) where there is one, else the bzImage. */
  kernel: string;
  initrd: string;
  /** Host directory shared read-only as the image ('/usr' for the host image). */
  share: string;
  hostImage: boolean;
  homeImage: string;
  memoryMiB: number;
  vcpus: number;
  tmpBytes: number;
  /** The sandbox's own limits, enforced by the guest's cgroup for all its execs. */
  memoryBytes: number;
  pids: number;
  accel: Accel;
  /** cgroup.procs files the VMM's processes join before they start. */
  procs: string[];
  /** The sandbox's own host uid: the guest's user maps to it (volumes come as its views). */
  uid: number;
  /**
   * Host uid (and gid) QEMU drops to once it has opened its files: not the sandbox uid, which owns
   * the user namespaces of the namespace driver's sandboxes (a QEMU taken over from a guest could
   * otherwise ptrace into them).
   */
  vmmUid: number;
  /** Named volumes: host directories (owned by `uid`) the guest mounts at `target`, each over a virtiofs share of its own. */
  volumes: { source: string; target: string; readOnly: boolean }[];
  /** `all`: a NIC with NAT, from a network namespace of the VM's own (network.ts). */
  network: 'none' | 'all';
  /** An allow-list: the forwarder's port inside, and the proxy's directory (shared read-only at /.realm/net). */
  proxy?: { port: number; dir: string } | undefined;
  /** The guest's host name (as the namespace driver's UTS namespace has). */
  hostname: string;
}

/** The sandbox user's uid inside the guest (realm-vmagent's UID). */
const GUEST_UID = 1000;

export const paths = (dir: string): { agent: string; fs: string; log: string; fsLog: string } => ({
  agent: join(dir, 'agent.sock'),
  fs: join(dir, 'fs.sock'),
  log: join(dir, 'console.log'),
  fsLog: join(dir, 'virtiofsd.log'),
});

/** The guest kernel's command line. */
export function kernelCmdline(
  spec: Pick<VmSpec, 'hostImage' | 'tmpBytes' | 'accel' | 'memoryBytes' | 'pids' | 'volumes' | 'network' | 'proxy' | 'hostname'>,
): string {
  const a = [
    'console=ttyS0',
    'quiet',
    'loglevel=1',
    'panic=-1',
    'reboot=t',
    'nomodeset',
    'random.trust_cpu=on',
    'cryptomgr.notests',
    'rcupdate.rcu_expedited=1',
    // Built-in initcalls the guest has no use for, each a share of every boot: the CMOS RTC driver
    // (no RTC under KVM, where probing one waits out a timeout; under TCG the kernel has read
    // the clock from it already), kprobe trace events, the KDF self-test (as cryptomgr.notests).
    'initcall_blacklist=cmos_init,init_kprobe_trace,crypto_kdf108_init',
  ];
  // Under emulation the TSC calibration is unreliable and a share of boots hang without these.
  if (spec.accel === 'tcg') a.push('tsc_early_khz=2000000', 'tsc=reliable');
  a.push(
    `realm.image=${spec.hostImage ? 'host' : 'dir'}`,
    `realm.tmp=${spec.tmpBytes}`,
    `realm.mem=${spec.memoryBytes}`,
    `realm.pids=${spec.pids}`,
  );
  // Volume i is virtiofs tag vol<i>, mounted at its path (hex: any byte is safe on the command line).
  spec.volumes.forEach((v, i) => a.push(`realm.vol${i}=${v.readOnly ? 'ro' : 'rw'}:${Buffer.from(v.target).toString('hex')}`));
  if (spec.network === 'all') a.push('realm.net=all');
  if (spec.proxy) a.push(`realm.proxy=${spec.proxy.port}`);
  // The kernel's own hostname= (no agent code); only a name that is safe on the command line.
  if (/^[a-z0-9][a-z0-9.-]{0,62}$/i.test(spec.hostname)) a.push(`hostname=${spec.hostname}`);
  return a.join(' ');
}

/**
 * Run `argv` detached, in the given cgroups, output to `log`; resolves with the child (its pid is
 * the program's: every step execs the next). `exitPair` gives it fd 3, one end of a socket pair
 * whose other end is the child's `stdio[3]` here.
 */
async function launchChild(argv: string[], procs: string[], log: string, exitPair = false): Promise<ChildProcess> {
  const out = openSync(log, 'a', 0o600);
  const child = spawn(
    '/bin/sh',
    [
      '-c',
      'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"',
      'sh',
      String(procs.length),
      ...procs,
      ...argv,
    ],
    {
      stdio: ['ignore', out, out, ...(exitPair ? ['pipe' as const] : [])],
      env: {},
      cwd: '/',
      detached: true,
    },
  );
  closeSync(out);
  child.unref();
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () => resolve());
  });
  return child;
}

const launch = async (argv: string[], procs: string[], log: string): Promise<number> =>
  (await launchChild(argv, procs, log)).pid ?? 0;

/** Start virtiofsd and QEMU; resolves with QEMU's pid once it runs (the agent is awaited by the caller). */
export async function startVm(spec: VmSpec): Promise<{ pid: number; fsPid: number }> {
  if (!QEMU) throw new Error('qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)');
  if (!VIRTIOFSD) throw new Error('virtiofsd is not installed (it comes with qemu-system-common)');
  const p = paths(spec.dir);
  const fsPid = await startShare(spec.share, p.fs, spec.procs, p.fsLog);
  const vols: string[] = [];
  for (const [i, v] of spec.volumes.entries()) {
    const sock = join(spec.dir, `vol${i}.sock`);
    await startVolumeServer(v, sock, spec, join(spec.dir, `vol${i}.log`));
    vols.push('-chardev', `socket,id=vol${i},path=${sock}`, '-device', `vhost-user-fs-device,chardev=vol${i},tag=vol${i}`);
  }
  if (spec.proxy) {
    // The proxy's directory (its CA files for injections) as the namespace driver binds it, read-only.
    const sock = join(spec.dir, 'netdir.sock');
    await startShare(spec.proxy.dir, sock, spec.procs, join(spec.dir, 'netdir.log'));
    vols.push('-chardev', `socket,id=netdir,path=${sock}`, '-device', 'vhost-user-fs-device,chardev=netdir,tag=net');
  }
  const mem = `${spec.memoryMiB}M`;
  // An RTC under emulation only: KVM guests read the wall clock from kvmclock, TCG ones have no
  // other source, and without one the kernel waits seconds for a clock that never answers.
  const rtc = spec.accel === 'tcg' ? 'on' : 'off';
  const argv = [
    QEMU,
    '-name',
    `realm,debug-threads=on`,
    '-M',
    `microvm,x-option-roms=off,rtc=${rtc},pic=off,pit=off,memory-backend=mem`,
    '-accel',
    spec.accel === 'kvm' ? 'kvm' : 'tcg,thread=multi,tb-size=64',
    '-cpu',
    spec.accel === 'kvm' ? 'host' : 'max',
    '-m',
    mem,
    '-smp',
    String(spec.vcpus),
    '-object',
    `memory-backend-memfd,id=mem,size=${mem},share=on`,
    // QEMU itself is a target: it drops root once set up and runs under its own seccomp filter.
    '-runas',
    `${spec.vmmUid}:${spec.vmmUid}`,
    '-sandbox',
    'on,obsolete=deny,spawn=deny,resourcecontrol=deny',
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    '-global',
    'virtio-mmio.force-legacy=false',
    '-serial',
    `file:${p.log}`,
    '-kernel',
    spec.kernel,
    '-initrd',
    spec.initrd,
    '-append',
    kernelCmdline(spec),
    '-chardev',
    `socket,id=agent,path=${p.agent},server=on,wait=off`,
    '-device',
    'virtio-serial-device',
    '-device',
    'virtserialport,chardev=agent,name=realm',
    '-chardev',
    `socket,id=fs,path=${p.fs}`,
    '-device',
    'vhost-user-fs-device,chardev=fs,tag=img',
    '-drive',
    `file=${spec.homeImage},if=none,id=home,format=raw,cache=writeback`,
    '-device',
    'virtio-blk-device,drive=home',
    ...vols,
    ...networkArgs(spec.network, spec.proxy?.port, spec.dir),
  ];
  if (spec.network !== 'all') return { pid: await launch(argv, spec.procs, join(spec.dir, 'qemu.log')), fsPid };
  const child = await launchChild(inOwnNetns(argv, spec.dir), spec.procs, join(spec.dir, 'qemu.log'), true);
  await attachNat(child, spec.procs);
  return { pid: child.pid ?? 0, fsPid };
}

/**
 * virtiofsd serving `share` read-only on `sock`. The share is bound read-only onto itself in
 * virtiofsd's own mount namespace (C virtiofsd has no read-only option): even a guest kernel
 * that asked for writes could not get them.
 */
async function startShare(share: string, sock: string, procs: string[], log: string): Promise<number> {
  if (!VIRTIOFSD) throw new Error('virtiofsd is not installed');
  const pid = await launch(
    [
      'unshare',
      '--mount',
      '--propagation',
      'private',
      '/bin/sh',
      '-c',
      'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"',
      'sh',
      share,
      VIRTIOFSD,
      `--socket-path=${sock}`,
      '-o',
      `source=${share}`,
      // The image never changes under a guest (a built image is immutable; the host's /usr
      // changes by whole-file renames, and the guest keeps the files it looked up): the guest
      // keeps what it read, pages and names. With cache=auto every open dropped the file's pages,
      // so each exec read the program and its libraries again through virtiofsd (~270 ms per
      // exec of /bin/true under emulation, ~50 ms with this).
      '-o',
      'cache=always',
      '-o',
      'sandbox=namespace',
      '-o',
      'no_xattr',
      // Of the capabilities virtiofsd keeps, a read-only share needs none that changes files or
      // credentials: only reading past modes (dac_override) stays. It never has CAP_SYS_ADMIN, so
      // nothing it is asked can remount the share writable.
      '-o',
      'modcaps=-chown:-fowner:-fsetid:-setgid:-setuid:-mknod:-setfcap',
    ],
    procs,
    log,
  );
  for (let i = 0; i < 500 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 10));
  if (!existsSync(sock)) throw new Error(`virtiofsd for ${share} did not start: ${tailOf(log)}`);
  return pid;
}

/**
 * virtiofsd for one volume, in a user namespace that maps the guest's sandbox uid to the
 * sandbox's own host uid and root to root, over the sandbox's idmapped view of the volume (its
 * files the storage uid's on disk, the sandbox uid's in the view): the guest sees its files as
 * its own user's, and what that user creates is stored as the storage uid's, as with the other drivers. Its
 * capabilities are the user namespace's: over files of those two owners only. A read-only volume
 * is also bound read-only in its mount namespace.
 */
async function startVolumeServer(
  v: { source: string; readOnly: boolean },
  sock: string,
  spec: Pick<VmSpec, 'procs' | 'uid'>,
  log: string,
): Promise<void> {
  if (!VIRTIOFSD) throw new Error('virtiofsd is not installed');
  const pid = await launch(
    [
      'unshare',
      '--user',
      '--mount',
      '--propagation',
      'private',
      '/bin/sh',
      '-c',
      // Wait for the maps (written from outside, below), then bind the source onto itself (read-only if asked).
      'while [ "$(wc -l < /proc/self/uid_map)" -lt 2 ]; do sleep 0.01; done; mount --bind "$1" "$1" && { [ "$2" = rw ] || mount -o remount,bind,ro "$1"; } && shift 2 && exec "$@"',
      'sh',
      v.source,
      v.readOnly ? 'ro' : 'rw',
      VIRTIOFSD,
      `--socket-path=${sock}`,
      '-o',
      `source=${v.source}`,
      '-o',
      'cache=auto',
      '-o',
      'sandbox=namespace',
      '-o',
      'no_xattr',
      '--rlimit-nofile=0',
      ...(v.readOnly ? ['-o', 'modcaps=-chown:-fowner:-fsetid:-setgid:-setuid:-mknod:-setfcap'] : []),
    ],
    spec.procs,
    log,
  );
  const own = readlinkSync('/proc/self/ns/user');
  for (let i = 0; i < 500; i++) {
    let ns = own;
    try {
      ns = readlinkSync(`/proc/${pid}/ns/user`);
    } catch {
      throw new Error(`virtiofsd for ${v.source} exited: ${tailOf(log)}`);
    }
    if (ns !== own) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  const map = `0 0 1\n${GUEST_UID} ${spec.uid} 1\n`;
  writeFileSync(`/proc/${pid}/uid_map`, map);
  writeFileSync(`/proc/${pid}/gid_map`, map);
  for (let i = 0; i < 500 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 10));
  if (!existsSync(sock)) throw new Error(`virtiofsd for ${v.source} did not start: ${tailOf(log)}`);
}

function tailOf(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '';
  }
}

/** QEMU/virtiofsd processes whose argv names a state dir under `stateRoot`, with that dir's id. */
export function vmmProcesses(stateRoot: string): { pid: number; id: string }[] {
  const out: { pid: number; id: string }[] = [];
  const re = new RegExp(`${stateRoot.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/([^/\\0]+)/vm/`);
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (!/qemu-system|virtiofsd|unshare/.test(cmd)) continue;
      const id = re.exec(cmd)?.[1];
      if (id) out.push({ pid: Number(p), id });
    } catch {
      /* gone */
    }
  }
  return out;
}

/** SIGKILL every VMM process naming this state dir (they may have left the cgroup's view). */
export function killByDir(stateDir: string): void {
  const needle = `${stateDir}/vm/`;
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle)) process.kill(Number(p), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
