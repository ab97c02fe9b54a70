/**
 * What this host can do for the microvm driver: the VMM (Firecracker is only detected; QEMU is
 * what runs), virtiofsd, cpio, the guest kernel, and whether KVM can really boot a guest — proved
 * by booting the guest kernel with no root filesystem under KVM, bounded (SIGKILL after a few
 * seconds), and watching for its panic ("boots" means the kernel ran). /dev/kvm existing is not
 * enough: under nested virtualisation it may open and then fail or hang. A failure is remembered
 * until the host reboots (shared/kvm-memo.ts): each probe of a hanging KVM waits out its timeout.
 *
 * Without KVM the driver runs under TCG emulation only when REALM_MICROVM_ALLOW_EMULATION=1
 * (slow: for tests and CI, never a default).
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import type { DriverProbe } from '../driver.js';
import { probeCgroups } from '../shared/cgroups.js';
import { SLIRP } from '../shared/slirp.js';
import { knownKvmFailure, kvmMemoKey, rememberKvmFailure } from '../shared/kvm-memo.js';
import { type Kernel, VMAGENT } from './assets.js';
import { type Accel, FIRECRACKER, QEMU, VIRTIOFSD } from './vm.js';

export interface MicrovmProbe {
  info: DriverProbe;
  accel?: Accel;
}

const KVM_BOOT_TIMEOUT_MS = 8000;

/** True when this process may fall back to emulation (REALM_MICROVM_ALLOW_EMULATION=1). */
export const emulationAllowed = (): boolean => process.env.REALM_MICROVM_ALLOW_EMULATION === '1';

const cache = new Map<string, Promise<MicrovmProbe>>();

/**
 * Probe once per process and kernel (every daemon of a test run shares the verdict). `kernel`
 * finds or fetches the guest kernel; it is only called when everything else is there.
 */
export function probeMicrovm(kernel: () => Promise<Kernel>, allowEmulation = emulationAllowed()): Promise<MicrovmProbe> {
  const key = String(allowEmulation);
  let p = cache.get(key);
  if (!p) {
    p = probe(kernel, allowEmulation);
    cache.set(key, p);
  }
  return p;
}

async function probe(kernel: () => Promise<Kernel>, allowEmulation: boolean): Promise<MicrovmProbe> {
  const details: DriverProbe['details'] = {};
  const missing: string[] = [];
  const isRoot = process.getuid?.() === 0;
  details.root = isRoot;
  if (!isRoot) missing.push('the daemon must run as root to start VMs (run `sudo realm serve`)');
  details.firecracker = FIRECRACKER ?? 'not installed';
  details.qemu = QEMU ?? 'missing';
  if (!QEMU) missing.push('QEMU is not installed (apt-get install qemu-system-x86)');
  details.virtiofsd = VIRTIOFSD ?? 'missing';
  details.network = SLIRP
    ? "none, all (virtio-net on QEMU's user-mode network in a namespace of its own, NAT by slirp4netns) and allow-lists (the guest's forwarder, carried to the daemon's proxy)"
    : 'none and allow-lists; all needs slirp4netns (apt-get install slirp4netns)';
  if (!VIRTIOFSD) missing.push('virtiofsd is not installed (it comes with qemu-system-common)');
  const cpio = ['/usr/bin/cpio', '/bin/cpio'].some((p) => existsSync(p));
  if (!cpio) missing.push('cpio is not installed (apt-get install cpio)');
  if (!existsSync(VMAGENT)) missing.push(`the guest agent is not built (${VMAGENT}): run scripts/build.sh`);
  const cg = probeCgroups();
  if (!cg.ok) missing.push(cg.reason);
  details.emulationAllowed = allowEmulation;
  if (missing.length) return { info: { name: 'microvm', available: false, reason: missing.join('; '), details } };
  let k: Kernel;
  try {
    k = await kernel();
    details.kernel = k.version;
  } catch (e) {
    return { info: { name: 'microvm', available: false, reason: `no guest kernel: ${(e as Error).message}`, details } };
  }
  const kvm = existsSync('/dev/kvm')
    ? await kvmBootsRemembered(k.vmlinuz)
    : { ok: false, why: '/dev/kvm does not exist (no hardware virtualisation here)' };
  details.kvm = kvm.ok ? 'boots guests' : kvm.why;
  if (kvm.ok) {
    details.accel = 'kvm';
    return { info: { name: 'microvm', available: true, details }, accel: 'kvm' };
  }
  if (allowEmulation) {
    details.accel = 'tcg (emulation: slow, for tests only)';
    return { info: { name: 'microvm', available: true, details }, accel: 'tcg' };
  }
  return {
    info: {
      name: 'microvm',
      available: false,
      reason: `KVM cannot boot guests here (${kvm.why}); set REALM_MICROVM_ALLOW_EMULATION=1 to run VMs under emulation (slow, for tests only)`,
      details,
    },
  };
}

/** Where a failed KVM boot is remembered until the next boot of the host (shared/kvm-memo.ts). */
const KVM_CACHE = '/run/realm-microvm-kvm.json';

/** kvmBoots, unless it failed already this boot with this QEMU and guest kernel. */
async function kvmBootsRemembered(vmlinuz: string): Promise<{ ok: boolean; why: string }> {
  const id = (f: string): string => {
    try {
      const st = statSync(f);
      return `${f}:${st.size}:${st.mtimeMs}`;
    } catch {
      return f;
    }
  };
  const key = kvmMemoKey(`qemu ${id(QEMU ?? '')}`, `kernel ${id(vmlinuz)}`);
  const known = knownKvmFailure(KVM_CACHE, key);
  if (known) return { ok: false, why: known };
  const r = await kvmBoots(vmlinuz);
  if (!r.ok) rememberKvmFailure(KVM_CACHE, key, r.why);
  return r;
}

/** Boot the kernel under KVM with no root filesystem: its panic message proves the guest ran. */
function kvmBoots(vmlinuz: string): Promise<{ ok: boolean; why: string }> {
  const qemu = QEMU;
  if (!qemu) return Promise.resolve({ ok: false, why: 'no QEMU' });
  return new Promise((resolve) => {
    const child = spawn(
      qemu,
      [
        '-M',
        'microvm,x-option-roms=off,rtc=off',
        '-accel',
        'kvm',
        '-cpu',
        'host',
        '-m',
        '128M',
        '-nodefaults',
        '-no-user-config',
        '-display',
        'none',
        '-no-reboot',
        '-serial',
        'stdio',
        '-kernel',
        vmlinuz,
        '-append',
        'console=ttyS0 panic=-1 loglevel=1',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: {}, cwd: '/' },
    );
    let out = '';
    const add = (d: Buffer): void => {
      if (out.length < 65536) out += d.toString();
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, KVM_BOOT_TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, why: e.message });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (/Kernel panic|VFS: Unable to mount root/.test(out)) resolve({ ok: true, why: '' });
      else if (timedOut) resolve({ ok: false, why: `a KVM guest did not boot within ${KVM_BOOT_TIMEOUT_MS / 1000} s (killed)` });
      else {
        const last = out
          .trim()
          .split('\n')
          .filter((l) => /error|fail/i.test(l))
          .slice(0, 2)
          .join('; ')
          .slice(0, 300);
        resolve({ ok: false, why: `QEMU with KVM failed (${signal ?? `exit ${code}`}): ${last || 'no output'}` });
      }
    });
  });
}
