/**
 * What a microVM boots: Debian's cloud kernel (fetched with `apt-get download` on first use,
 * its vmlinuz and the few virtio modules kept under the data dir, cached by package version)
 * and an initramfs (cpio) holding realm-vmagent as /init, realm-fs, the seccomp filter, the
 * modules and realm's generated /etc — rebuilt whenever the driver prepares, replaced by rename.
 */
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { NATIVE_DIR } from '../../util/paths.js';
import { runCommand } from '../../util/run-command.js';
import { buildEtc } from '../shared/etc.js';
import { FS_TOOL, writeSeccomp } from '../shared/helper.js';

/** The guest agent (native/realm-vmagent.c). */
export const VMAGENT = join(NATIVE_DIR, 'realm-vmagent');

/** The modules the agent loads, from the kernel package's tree (all built as modules in Debian's cloud kernel). */
const MODULES = {
  virtio: 'drivers/virtio/virtio.ko',
  virtio_ring: 'drivers/virtio/virtio_ring.ko',
  virtio_mmio: 'drivers/virtio/virtio_mmio.ko',
  virtio_console: 'drivers/char/virtio_console.ko',
  virtio_blk: 'drivers/block/virtio_blk.ko',
  fuse: 'fs/fuse/fuse.ko',
  virtiofs: 'fs/fuse/virtiofs.ko',
  // The NIC, for network "all" (virtio_net needs net_failover, which needs failover).
  failover: 'net/core/failover.ko',
  net_failover: 'drivers/net/net_failover.ko',
  virtio_net: 'drivers/net/virtio_net.ko',
} as const;

/** Modules only network "all" needs (optional in a kernel directory of one's own). */
const NIC_MODULES = { failover: 1, net_failover: 1, virtio_net: 1 } as const;

export interface Kernel {
  /** The package it came from, e.g. linux-image-6.1.0-56-cloud-amd64_6.1.192-2. */
  version: string;
  vmlinuz: string;
  modulesDir: string;
}

/** A kernel already cached under `dir`, newest first (undefined if none). */
export function cachedKernel(dir: string): Kernel | undefined {
  let entries: string[] = [];
  try {
    entries = readdirSync(dir)
      .filter((e) => e.startsWith('linux-image-') && !e.includes('.tmp'))
      .sort()
      .reverse();
  } catch {
    return undefined;
  }
  for (const e of entries) {
    const k = { version: e, vmlinuz: join(dir, e, 'vmlinuz'), modulesDir: join(dir, e, 'modules') };
    if (existsSync(k.vmlinuz) && Object.keys(MODULES).every((m) => existsSync(join(k.modulesDir, `${m}.ko`)))) return k;
  }
  return undefined;
}

let fetching: Promise<Kernel> | undefined;

/**
 * The guest kernel: REALM_MICROVM_KERNEL_DIR (a dir with vmlinuz and modules/*.ko), else the
 * cache, else Debian's linux-image-cloud-amd64 fetched now (apt-get download, dpkg-deb -x).
 */
export function ensureKernel(dir: string): Promise<Kernel> {
  const own = process.env.REALM_MICROVM_KERNEL_DIR;
  if (own) return Promise.resolve({ version: own, vmlinuz: join(own, 'vmlinuz'), modulesDir: join(own, 'modules') });
  const have = cachedKernel(dir);
  if (have) return Promise.resolve(have);
  fetching ??= fetchKernel(dir).finally(() => (fetching = undefined));
  return fetching;
}

async function fetchKernel(dir: string): Promise<Kernel> {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const dep = await runCommand('apt-cache', ['depends', 'linux-image-cloud-amd64'], { timeoutMs: 30_000 });
  const pkg = /Depends: (linux-image-[^\s]+-cloud-amd64)/.exec(dep.stdout)?.[1];
  if (!pkg)
    throw new Error(
      "cannot find Debian's cloud kernel package (apt-cache depends linux-image-cloud-amd64 names none): run apt-get update, or set REALM_MICROVM_KERNEL_DIR",
    );
  const tmp = mkdtempSync(join(dir, 'fetch.tmp-'));
  try {
    chmodSync(tmp, 0o777); // apt-get download writes as _apt where it can
    await inDir(tmp, 'apt-get', ['download', pkg]);
    const deb = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg} produced no package`);
    await inDir(tmp, 'dpkg-deb', ['-x', deb, 'x']);
    const boot = readdirSync(join(tmp, 'x', 'boot')).find((f) => f.startsWith('vmlinuz-'));
    if (!boot) throw new Error(`${deb} holds no /boot/vmlinuz-*`);
    const kver = boot.slice('vmlinuz-'.length);
    const out = join(tmp, `${deb.replace(/_amd64\.deb$/, '')}.tmp`);
    rmSync(out, { recursive: true, force: true });
    mkdirSync(join(out, 'modules'), { recursive: true });
    copyFileSync(join(tmp, 'x', 'boot', boot), join(out, 'vmlinuz'));
    for (const [name, rel] of Object.entries(MODULES))
      copyFileSync(join(tmp, 'x', 'lib', 'modules', kver, 'kernel', rel), join(out, 'modules', `${name}.ko`));
    const final = join(dir, deb.replace(/_amd64\.deb$/, ''));
    // Another daemon may have cached the same version meanwhile: theirs is as good as ours. One
    // cached by an older realm lacks modules added since: they are added (each by rename, so a
    // daemon reading the directory meanwhile sees whole files), nothing it has is replaced.
    if (existsSync(final)) {
      for (const m of Object.keys(MODULES)) {
        const to = join(final, 'modules', `${m}.ko`);
        if (!existsSync(to)) renameSync(join(out, 'modules', `${m}.ko`), to);
      }
      rmSync(out, { recursive: true, force: true });
    } else {
      try {
        renameSync(out, final);
      } catch (e) {
        if (!existsSync(final)) throw e; // one cached at the same moment (ENOTEMPTY): theirs is used
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const k = cachedKernel(dir);
  if (!k) throw new Error('the guest kernel could not be cached');
  return k;
}

function inDir(cwd: string, file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${file} ${args.join(' ')} failed (exit ${code}): ${err.trim().slice(-500)}`));
    });
  });
}

/** Build the initramfs at `path` (replaced by rename: running VMs already read theirs). */
export async function buildInitramfs(runtimeDir: string, kernel: Kernel, path: string): Promise<void> {
  const stage = mkdtempSync(join(runtimeDir, 'initramfs.tmp-'));
  try {
    for (const d of ['dev', 'proc', 'sys', 'r', 'img', 'realm', 'lib/modules'])
      mkdirSync(join(stage, d), { recursive: true, mode: 0o755 });
    copyFileSync(VMAGENT, join(stage, 'init'));
    copyFileSync(VMAGENT, join(stage, 'realm', 'init'));
    copyFileSync(FS_TOOL, join(stage, 'realm', 'fs'));
    for (const f of ['init', 'realm/init', 'realm/fs']) chmodSync(join(stage, f), 0o755);
    // The namespace driver's seccomp filter, which the agent loads for every exec.
    await writeSeccomp(join(stage, 'realm', 'seccomp'));
    chmodSync(join(stage, 'realm', 'seccomp'), 0o644);
    // A kernel of one's own (REALM_MICROVM_KERNEL_DIR) may build the NIC in, or lack it: the agent loads what is there.
    for (const m of Object.keys(MODULES)) {
      const from = join(kernel.modulesDir, `${m}.ko`);
      if (existsSync(from) || !(m in NIC_MODULES)) copyFileSync(from, join(stage, 'lib', 'modules', `${m}.ko`));
    }
    cpSync(buildEtc(runtimeDir), join(stage, 'etc'), { recursive: true, verbatimSymlinks: true });
    await inDir(stage, '/bin/sh', [
      '-c',
      'find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 > ../$(basename "$PWD").cpio',
    ]);
    renameSync(`${stage}.cpio`, path);
  } finally {
    rmSync(stage, { recursive: true, force: true });
    rmSync(`${stage}.cpio`, { force: true });
  }
}
