/**
 * What this host can do for the gvisor driver, proved by starting a real (tiny) gVisor sandbox
 * on each platform — bounded: a platform that hangs (kvm does on some hosts) is killed with
 * SIGKILL after a few seconds, its processes and state removed, and the next one is tried.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DriverProbe } from '../driver.js';
import { probeCgroups } from '../shared/cgroups.js';
import { GVEXEC, type Platform, RUNSC, globalArgs } from './runsc.js';
import { runCommand } from '../../util/run-command.js';
import { SLIRP } from '../shared/slirp.js';
import { knownKvmFailure, kvmMemoKey, rememberKvmFailure } from '../shared/kvm-memo.js';

export interface GvisorProbe {
  info: DriverProbe;
  platform?: Platform;
}

/** How long one platform may take to run `true` before it counts as hung. */
const PLATFORM_TIMEOUT_MS = 5000;

let cached: Promise<GvisorProbe> | undefined;

/** Probe once per process (every daemon of a test run shares the verdict). */
export function probeGvisor(): Promise<GvisorProbe> {
  cached ??= probe();
  return cached;
}

async function probe(): Promise<GvisorProbe> {
  const details: DriverProbe['details'] = {};
  const missing: string[] = [];
  const isRoot = process.getuid?.() === 0;
  details.root = isRoot;
  if (!isRoot) missing.push('the daemon must run as root to start runsc (run `sudo realm serve`)');
  details.runsc = RUNSC ?? 'missing';
  if (!RUNSC) missing.push('runsc is not installed (apt-get install runsc)');
  else
    details.runscVersion =
      (await runCommand(RUNSC, ['--version'], { timeoutMs: 5000, env: {} }).catch(() => ({ stdout: '' }))).stdout.split(
        '\n',
      )[0] ?? '';
  const cg = probeCgroups();
  details.cgroup = cg.ok ? `v${cg.manager.version}` : 'unavailable';
  if (!cg.ok) missing.push(cg.reason);
  details.helper = existsSync(GVEXEC);
  if (!existsSync(GVEXEC)) missing.push(`native helpers are not built (${GVEXEC}); run npm run build`);
  details.network = SLIRP
    ? "none, all (gVisor's network stack on slirp4netns) and allow-lists (through the daemon's proxy)"
    : 'none and allow-lists; all needs slirp4netns (apt-get install slirp4netns)';
  if (missing.length) return { info: { name: 'gvisor', available: false, reason: missing.join('; '), details } };

  // REALM_GVISOR_PLATFORM=ptrace|kvm tries only that one.
  const want = process.env.REALM_GVISOR_PLATFORM;
  const order: Platform[] =
    want === 'kvm' || want === 'ptrace' ? [want] : existsSync('/dev/kvm') ? ['kvm', 'ptrace'] : ['ptrace'];
  const failures: string[] = [];
  const cacheKey = kvmMemoKey(String(details.runscVersion));
  for (const platform of order) {
    const started = Date.now();
    // A platform that failed on this boot with this runsc is not tried again (kvm hangs cost seconds).
    const known = platform === 'kvm' && want !== 'kvm' ? knownKvmFailure(KVM_CACHE, cacheKey) : undefined;
    const err = known ?? (await tryPlatform(platform));
    if (platform === 'kvm' && err && !known) rememberKvmFailure(KVM_CACHE, cacheKey, err);
    if (!err) {
      details.platform = platform;
      details.probeMs = Date.now() - started;
      if (failures.length) details.platformsFailed = failures.join('; ');
      return { info: { name: 'gvisor', available: true, details }, platform };
    }
    failures.push(`${platform}: ${err}`);
  }
  details.platformsFailed = failures.join('; ');
  return {
    info: {
      name: 'gvisor',
      available: false,
      reason: `runsc could not run a sandbox on any platform (${failures.join('; ')})`,
      details,
    },
  };
}

/** Where a failed kvm probe is remembered until the next boot. */
const KVM_CACHE = '/run/realm-gvisor-kvm.json';

/** Run `/usr/bin/true` in a throwaway gVisor sandbox; undefined on success, else why not. */
async function tryPlatform(platform: Platform): Promise<string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'realm-gvisor-probe-'));
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  // runsc names its control socket after the container id: unique per probe on the host.
  const probeId = `realm-probe-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    mkdirSync(state);
    for (const d of ['usr', 'proc', 'dev', 'tmp']) mkdirSync(join(root, d), { recursive: true });
    for (const l of ['bin', 'lib', 'lib64']) if (existsSync(`/usr/${l}`)) symlinkSync(`usr/${l}`, join(root, l));
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({
        ociVersion: '1.0.2',
        process: {
          user: { uid: 1000, gid: 1000 },
          args: ['/usr/bin/true'],
          env: ['PATH=/usr/bin'],
          cwd: '/',
          noNewPrivileges: true,
          capabilities: {},
        },
        root: { path: 'root', readonly: true },
        mounts: [
          { destination: '/proc', type: 'proc', source: 'proc' },
          { destination: '/usr', type: 'bind', source: '/usr', options: ['rbind', 'ro'] },
        ],
        linux: { namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }] },
      }),
    );
    const child = spawn(RUNSC as string, [...globalArgs(state, platform), 'run', '--bundle', dir, probeId], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {},
      cwd: '/',
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const result = await new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(`did not finish within ${PLATFORM_TIMEOUT_MS} ms (killed)`);
      }, PLATFORM_TIMEOUT_MS);
      child.once('error', (e) => {
        clearTimeout(timer);
        resolve(e.message);
      });
      child.once('exit', (code, sig) => {
        clearTimeout(timer);
        resolve(
          code === 0 ? undefined : `runsc ${sig ?? `exit ${code}`}: ${out.trim().split('\n').slice(-2).join(' ').slice(0, 300)}`,
        );
      });
    });
    return result;
  } finally {
    killByRoot(state);
    await runCommand(RUNSC as string, [...globalArgs(state, platform), 'delete', '--force', probeId], {
      timeoutMs: 5000,
      env: {},
    }).catch(() => undefined);
    killByRoot(state);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** SIGKILL every process started with `--root=<root>` (runsc's gofer and sandbox). */
export function killByRoot(root: string): number[] {
  const killed: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (cmd.includes(`--root=${root}`)) {
        process.kill(Number(pid), 'SIGKILL');
        killed.push(Number(pid));
      }
    } catch {
      /* gone */
    }
  }
  return killed;
}
