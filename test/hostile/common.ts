/**
 * Shared pieces of the hostile-program suites: guards that keep every hostile program from acting
 * anywhere but inside a sandbox, a Python prelude for recording attempts, and the checks run after
 * each case (daemon healthy, nothing left behind).
 *
 * Where a hostile file goes: directly in test/hostile/ when what it tests runs through a driver (a
 * program inside a sandbox, the driver's filesystem, network or process wiring, output coming back
 * through the driver): scripts/test.sh runs those on every driver (REALM_TEST_DRIVER=gvisor,
 * microvm). In test/hostile/daemon/ when it tests the daemon's own boundaries, which no driver
 * takes part in (HTTP guard, unix socket and tokens, data dir modes, image directories): those run
 * once, on the default driver. In test/hostile/jobs/ when it tests the job path (input archives,
 * artifacts, job bounds): the same code on every driver, so those run once too.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sandbox, run, type ExecResult } from '@realm/sdk';
import type { Daemon } from '../../src/daemon/serve.js';
import { probeGvisor } from '../../src/drivers/gvisor/probe.js';
import { RUNSC, globalArgs } from '../../src/drivers/gvisor/runsc.js';
import { guestUsage } from '../helpers/microvm-guest.js';
import { TEST_DRIVER, isSandboxUid, leftovers, testDriverEmulated, type TestDaemon } from '../helpers/daemon.js';

/** What the after-case checks need of a daemon (in-process or a child process). */
export type DaemonRef = Pick<TestDaemon, 'url' | 'dataDir' | 'cgroupRoot'> & { daemon?: Daemon };

/** A fresh token for markers, file names and secrets. */
export function nonce(): string {
  return randomBytes(8).toString('hex');
}

/**
 * Python guard. Inside a sandbox: uid 1000, a small pid (own pid namespace), no /var/lib, no /root,
 * no daemon data dir. On the host each of the path checks alone trips it, whatever uid runs it.
 */
export function pyGuard(dataDir: string): string {
  return `import os, sys
if os.getuid() != 1000 or os.getpid() > 1000 or os.path.exists('/var/lib') or os.path.exists('/root') or os.path.exists(${JSON.stringify(dataDir)}):
    print('GUARD', flush=True)
    sys.exit(99)
`;
}

/** The same guard in C: call `guard()` first thing in `main`. */
export function cGuard(dataDir: string): string {
  return `#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static void guard(void) {
  if (getuid() != 1000 || getpid() > 1000 || access("/var/lib", F_OK) == 0 || access("/root", F_OK) == 0 || access(${JSON.stringify(dataDir)}, F_OK) == 0) {
    puts("GUARD");
    fflush(stdout);
    exit(99);
  }
}
`;
}

/** The same guard in shell. */
export function shGuard(dataDir: string): string {
  return `if [ "$(id -u)" != 1000 ] || [ "$$" -gt 1000 ] || [ -e /var/lib ] || [ -e /root ] || [ -e ${JSON.stringify(dataDir)} ]; then echo GUARD; exit 99; fi
`;
}

/**
 * Python helpers for programs that try many things and report each outcome: `attempt(name, fn)`
 * records 'OK …' or the errno name (EPERM, ENOENT, …); `sc(nr, …)` is a raw syscall that raises
 * OSError on failure; `done()` prints the record as the last line of stdout.
 */
export const PY_ATTEMPT = `import ctypes, errno, json
R = {}
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def errname(e):
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, 'E%d' % e.errno)
    return type(e).__name__
def attempt(name, fn):
    try:
        R[name] = 'OK ' + repr(fn())[:80]
    except BaseException as e:
        R[name] = errname(e)
def check(r):
    if r == -1:
        n = ctypes.get_errno()
        raise OSError(n, os.strerror(n))
    return r
def sc(nr, *args):
    return check(libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args]))
def done():
    print(json.dumps(R), flush=True)
`;

/** The JSON record a program printed on its last line, after checking the guard did not trip. */
export function record(r: ExecResult): Record<string, string> {
  assertNoGuard(r);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const rec = JSON.parse(last) as Record<string, string>;
    if (process.env.HOSTILE_DEBUG) console.error(rec);
    return rec;
  } catch {
    assert.fail(
      `program printed no record (verdict ${r.verdict}, exit ${String(r.exitCode)}):\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-2000)}`,
    );
  }
}

export function assertNoGuard(r: ExecResult): void {
  assert.ok(
    !r.stdout.includes('GUARD') && r.exitCode !== 99,
    `the guard tripped: the program saw the host\n${r.stdout.slice(0, 500)}`,
  );
}

/** Assert every named attempt failed with one of the allowed errno names. */
export function assertAllFailed(rec: Record<string, string>, allowed: Record<string, string[]>, via = ''): void {
  for (const [name, errs] of Object.entries(allowed)) {
    const got = rec[name];
    assert.ok(got !== undefined, `${via}attempt "${name}" was not recorded: ${JSON.stringify(rec)}`);
    assert.ok(errs.includes(got), `${via}attempt "${name}" should fail with ${errs.join('|')}, got ${got}`);
  }
}

/** A record and the way its program was started, as a prefix for assertion messages. */
export interface Via {
  via: string;
  rec: Record<string, string>;
}

/**
 * Run a Python program (guard included by the caller) both ways realm starts programs: as a
 * one-shot run (bwrap builds the sandbox and its PID 1 starts the program) and as an exec into a
 * long-lived sandbox (the helper enters the sandbox's namespaces and loads the filter itself).
 */
export async function runBoth(t: Pick<TestDaemon, 'client'>, program: string, timeout = secs(20)): Promise<Via[]> {
  const viaRun = record(await run({ language: 'python', code: program, timeout }, t.client));
  const sb = await Sandbox.create({ memory: '256m' }, t.client);
  try {
    const viaExec = record(await sb.exec(['/usr/bin/python3', '-c', program], { timeout }));
    return [
      { via: '[one-shot run] ', rec: viaRun },
      { via: '[sandbox exec] ', rec: viaExec },
    ];
  } finally {
    await sb.destroy();
  }
}

/** GET /v1/health answers 200 within a few seconds. */
export async function assertHealthy(t: Pick<DaemonRef, 'url'>): Promise<void> {
  const res = await fetch(`${t.url}/v1/health`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: 'ok' });
}

function procFile(pid: string | number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * A `leftovers()` entry that is not this daemon's: a process that already died (a zombie waiting
 * for the host's PID 1 to reap it, which some hosts do late) or one inside another realm daemon's
 * cgroup tree (another suite on the same host). Anything else — a live process outside every realm
 * cgroup, a mount, a cgroup, a state dir — counts.
 */
function notOurs(entry: string, t: DaemonRef): boolean {
  const pid = /^process (\d+) /.exec(entry)?.[1];
  if (!pid) return false;
  const status = procFile(pid, 'status');
  if (status === undefined || /^State:\s+[ZX]/m.test(status)) return true;
  const cg = procFile(pid, 'cgroup') ?? '';
  const paths = cg.split('\n').map((l) => l.split(':').slice(2).join(':'));
  const mine = (p: string): boolean => p === `/${t.cgroupRoot}` || p.startsWith(`/${t.cgroupRoot}/`);
  return !paths.some(mine) && paths.some((p) => p.startsWith('/realm'));
}

/**
 * Live processes of a sandbox uid outside every realm cgroup: they escaped their sandbox's
 * cgroup (so no kill would find them). `leftovers()` only looks at processes when no sandbox is
 * live, which warm pools make rare, so this looks always.
 */
function escapedProcesses(): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    const status = procFile(pid, 'status');
    if (!status || !isSandboxUid(Number(/^Uid:\s+(\d+)/m.exec(status)?.[1])) || /^State:\s+[ZX]/m.test(status)) continue;
    const paths = (procFile(pid, 'cgroup') ?? '').split('\n').map((l) => l.split(':').slice(2).join(':'));
    if (!paths.some((p) => p.startsWith('/realm')))
      found.push(`process ${pid} (${/^Name:\s+(.*)$/m.exec(status)?.[1] ?? '?'}) of a sandbox uid outside every realm cgroup`);
  }
  return found;
}

/** Nothing of this daemon's sandboxes is left (waits up to 5 s for clean-ups under way). */
export async function assertClean(t: DaemonRef): Promise<void> {
  let left: string[] = [];
  for (let i = 0; i < 50; i++) {
    left = [...(await leftovers(t)).filter((e) => !notOurs(e, t)), ...escapedProcesses()];
    if (left.length === 0) return;
    await sleep(100);
  }
  assert.deepEqual(left, [], 'sandbox state was left behind');
}

/** After every case: the daemon answers and nothing is left behind. */
export async function assertContained(t: DaemonRef): Promise<void> {
  await assertHealthy(t);
  await assertClean(t);
}

/** Live (non-zombie) host processes that carry `marker` as one whole argument. */
export function hostProcsWithArg(marker: string): number[] {
  const found: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    const args = procFile(pid, 'cmdline')?.split('\0');
    if (!args?.includes(marker)) continue;
    const status = procFile(pid, 'status');
    if (status !== undefined && !/^State:\s+[ZX]/m.test(status)) found.push(Number(pid));
  }
  return found;
}

/** Poll until `fn` is true or `ms` pass; returns the last value of `fn`. */
export async function waitFor(fn: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (fn()) return true;
    if (Date.now() > end) return false;
    await sleep(50);
  }
}

/** The host directory of a cgroup in the pids hierarchy (v1) or the unified one (v2). */
export function pidsCgroupDir(cgroupRel: string): string | undefined {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '));
  const v1 = mounts.find(([, , type, opts]) => type === 'cgroup' && (opts ?? '').split(',').includes('pids'));
  const v2 = mounts.find(([, , type]) => type === 'cgroup2');
  const point = v1?.[1] ?? v2?.[1];
  return point ? join(point, cgroupRel) : undefined;
}

/**
 * The most tasks any one sandbox of this daemon holds right now. Per sandbox, not the daemon's
 * root: a killed sandbox's zombies stay charged to the root until the host's PID 1 reaps them.
 */
export function maxSandboxPids(cgroupRoot: string): number {
  const dir = pidsCgroupDir(cgroupRoot);
  if (!dir) return 0;
  let max = 0;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) max = Math.max(max, readNumber(join(dir, e.name, 'pids.current')) ?? 0);
    }
  } catch {
    /* no sandbox yet */
  }
  return max;
}

export function readNumber(file: string): number | undefined {
  try {
    return Number(readFileSync(file, 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** True when the suite runs against the gvisor driver (REALM_TEST_DRIVER=gvisor). */
export const GVISOR = TEST_DRIVER === 'gvisor';

/** True when the suite runs against the microvm driver (REALM_TEST_DRIVER=microvm): each sandbox is a VM with its own kernel. */
export const MICROVM = TEST_DRIVER === 'microvm';

/**
 * How much longer programs take on this driver here: 4 where VMs run under emulation (no KVM),
 * else 1. Hostile programs' own timeouts and the wall-time bounds around them are scaled by it,
 * so a program that must get somewhere before its timeout can; on namespace and gvisor nothing changes.
 */
export const SLOW = (await testDriverEmulated()) ? 4 : 1;

/** Seconds, scaled by SLOW, as a timeout string ('3s'). */
export const secs = (n: number): string => `${n * SLOW}s`;

/** State dirs of this daemon's microVMs (sandboxes and one-shot runs) now on disk. */
function vmDirs(dataDir: string): string[] {
  try {
    return readdirSync(join(dataDir, 'sandboxes'))
      .map((id) => join(dataDir, 'sandboxes', id))
      .filter((d) => existsSync(join(d, 'vm')));
  } catch {
    return [];
  }
}

/**
 * The most tasks any one microVM of this daemon has held in its sandbox cgroup (the guest's
 * pids.peak, asked of each VM's agent): the count the sandbox's pids limit bounds there. A peak,
 * not a sample, so no moment of a fork bomb is missed between polls.
 */
export async function maxMicrovmPidsPeak(t: Pick<DaemonRef, 'dataDir'>): Promise<number> {
  let max = 0;
  for (const dir of vmDirs(t.dataDir)) max = Math.max(max, (await guestUsage(dir))?.pidsPeak ?? 0);
  return max;
}

/** runsc's state root and container id of every gVisor sandbox of this daemon now on disk. */
function gvSandboxes(dataDir: string): { root: string; cid: string }[] {
  let ids: string[] = [];
  try {
    ids = readdirSync(join(dataDir, 'sandboxes'));
  } catch {
    return [];
  }
  return ids.map((cid) => ({ root: join(dataDir, 'sandboxes', cid, 'runsc'), cid })).filter((s) => existsSync(s.root));
}

/** One bounded runsc call against a sandbox's state (async: the daemon runs in this process). */
async function runscCall(root: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const { platform } = await probeGvisor();
  if (!RUNSC || !platform) return '';
  return new Promise((resolve) => {
    execFile(
      RUNSC as string,
      [...globalArgs(root, platform), ...args],
      { timeout: 10_000, env, encoding: 'utf8' },
      (err, stdout) => resolve(err ? '' : stdout),
    );
  });
}

/**
 * Processes that carry `marker` as one whole argument, wherever this driver's sandboxes keep
 * them: host processes (every driver), on gvisor the processes inside each of this daemon's
 * gVisor sandboxes, which live in gVisor's kernel and are not host processes (the sentry runs them),
 * and on microvm those inside each of its VMs (the guest kernel's).
 * The inside scan runs with `runsc exec` and gets the marker through its environment, so its own
 * argv never matches.
 */
export async function procsWithArg(t: Pick<DaemonRef, 'dataDir'>, marker: string): Promise<string[]> {
  const found = hostProcsWithArg(marker).map((p) => `host ${p}`);
  if (MICROVM) {
    // Inside each microVM, as its agent sees the guest's processes (zombies have no argv there).
    for (const dir of vmDirs(t.dataDir)) {
      for (const p of (await guestUsage(dir))?.processes ?? []) if (p.argv.includes(marker)) found.push(`${dir} ${p.pid}`);
    }
    return found;
  }
  if (!GVISOR) return found;
  const scan = `import os
m = os.environ['M']
for p in os.listdir('/proc'):
    try:
        if p.isdigit() and m in open('/proc/%s/cmdline' % p, 'rb').read().decode(errors='replace').split('\\0') and open('/proc/%s/stat' % p).read().rsplit(') ', 1)[1][0] not in 'ZX':
            print(p)
    except OSError:
        pass
`;
  for (const { root, cid } of gvSandboxes(t.dataDir)) {
    const out = await runscCall(root, ['exec', '--env', `M=${marker}`, cid, '/usr/bin/python3', '-c', scan]);
    found.push(
      ...out
        .split('\n')
        .filter((l) => /^\d+$/.test(l))
        .map((p) => `${cid} ${p}`),
    );
  }
  return found;
}

/**
 * The most processes of the sandbox user (uid 1000 inside) any one gVisor sandbox of this daemon
 * holds right now, counted by gVisor's kernel (`runsc ps`): the count the sandbox's pids limit
 * bounds there (the host cgroup also holds the sentry's own threads).
 */
export async function maxGvisorUserProcs(t: Pick<DaemonRef, 'dataDir'>): Promise<number> {
  let max = 0;
  for (const { root, cid } of gvSandboxes(t.dataDir)) {
    // The table (`--format json` lists pids only): UID PID PPID C TTY STIME TIME CMD.
    const rows = (await runscCall(root, ['ps', cid])).split('\n').slice(1);
    max = Math.max(max, rows.filter((r) => r.split(/\s+/)[0] === '1000').length);
  }
  return max;
}
