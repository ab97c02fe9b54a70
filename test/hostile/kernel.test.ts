/**
 * Hostile programs against the kernel surface: mounts, namespaces, ptrace, signals to host
 * processes, raw sockets, terminal injection, /proc knobs, foreign syscall ABIs, vsock. Each runs
 * behind a guard, both as a one-shot run and as an exec in a long-lived sandbox (the two ways realm
 * starts programs, which load the seccomp filter differently); after each case the daemon must
 * answer and nothing of the sandbox may be left.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Sandbox, run } from '@realm/sdk';
import { daemonHooks, hostUidOf, testDriverSkipReason, type TestDaemon } from '../helpers/daemon.js';
import {
  GVISOR,
  MICROVM,
  PY_ATTEMPT,
  type Via,
  assertAllFailed,
  assertContained,
  cGuard,
  pidsCgroupDir,
  pyGuard,
  record,
  runBoth,
} from './common.js';

const skip = await testDriverSkipReason();
let t: TestDaemon;
daemonHooks((d) => (t = d), {}, skip);

const EPERM = ['EPERM'];
const DENIED = ['EPERM', 'EACCES', 'EROFS'];
const ABSENT_OR_DENIED = ['ENOENT', ...DENIED];

/** Python: write `value` to `path` with one write(2), so the error is the write's, not a close's. */
const PY_WRITE = `def wr(path, value):
    fd = os.open(path, os.O_WRONLY)
    try:
        return os.write(fd, value.encode())
    finally:
        os.close(fd)
`;

/** The program (after guard and helpers) as a one-shot run and as an exec in a sandbox. */
function runPy(code: string): Promise<Via[]> {
  return runBoth(t, `${pyGuard(t.dataDir)}${PY_ATTEMPT}${PY_WRITE}${code}\ndone()\n`);
}

function all(names: string[], errs: string[]): Record<string, string[]> {
  return Object.fromEntries(names.map((n) => [n, errs]));
}

void test('mounting is refused: mount(2), the new mount API, pivot_root, chroot, setuid mount binaries', { skip }, async () => {
  for (const { via, rec } of await runPy(`import subprocess
before = open('/proc/self/mountinfo').read()
attempt('mount tmpfs', lambda: check(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)))
attempt('bind mount', lambda: check(libc.mount(b'/home/user', b'/tmp', None, 4096, None)))
attempt('remount / rw', lambda: check(libc.mount(None, b'/', None, 32, None)))
attempt('umount /home/user', lambda: check(libc.umount2(b'/home/user', 0)))
attempt('lazy umount /proc', lambda: check(libc.umount2(b'/proc', 2)))
attempt('pivot_root', lambda: sc(155, b'/tmp', b'/tmp'))
attempt('chroot', lambda: check(libc.chroot(b'/tmp')))
attempt('fsopen', lambda: sc(430, b'tmpfs', 0))
attempt('open_tree', lambda: sc(428, -100, b'/', 1))
attempt('move_mount', lambda: sc(429, -100, b'/tmp', -100, b'/home/user', 0))
attempt('mount_setattr', lambda: sc(442, -100, b'/', 0, 0, 0))
attempt('open_by_handle_at', lambda: sc(304, -100, 0, 0))
attempt('name_to_handle_at', lambda: sc(303, -100, b'/etc/passwd', 0, 0, 0))
R['mount binary'] = str(subprocess.run(['/usr/bin/mount', '-t', 'tmpfs', 'none', '/tmp'], capture_output=True).returncode)
R['umount binary'] = str(subprocess.run(['/usr/bin/umount', '/home/user'], capture_output=True).returncode)
R['mounts unchanged'] = str(before == open('/proc/self/mountinfo').read())
`)) {
    assertAllFailed(
      rec,
      all(
        [
          'mount tmpfs',
          'bind mount',
          'remount / rw',
          'umount /home/user',
          'lazy umount /proc',
          'pivot_root',
          'chroot',
          'fsopen',
          'open_tree',
          'move_mount',
          'mount_setattr',
          'open_by_handle_at',
          'name_to_handle_at',
        ],
        EPERM,
      ),
      via,
    );
    assert.notEqual(rec['mount binary'], '0', `${via}the setuid mount binary mounted`);
    assert.notEqual(rec['umount binary'], '0', `${via}the setuid umount binary unmounted`);
    assert.equal(rec['mounts unchanged'], 'True', via);
  }
  await assertContained(t);
});

void test('no new namespaces: unshare, clone with namespace flags, clone3, setns, the unshare binary', { skip }, async () => {
  const flags = {
    NEWUSER: 0x10000000,
    NEWNS: 0x20000,
    NEWNET: 0x40000000,
    NEWPID: 0x20000000,
    NEWIPC: 0x8000000,
    NEWUTS: 0x4000000,
    NEWCGROUP: 0x2000000,
    NEWTIME: 0x80,
  };
  for (const { via, rec } of await runPy(`import subprocess
FLAGS = ${JSON.stringify(flags)}
def clone(f):
    r = sc(56, f | 17, 0, 0, 0, 0)
    if r == 0:
        os._exit(0)
    os.waitpid(r, 0)
    return r
for name, f in FLAGS.items():
    attempt('unshare ' + name, lambda f=f: check(libc.unshare(f)))
    attempt('clone ' + name, lambda f=f: clone(f))
attempt('clone3', lambda: sc(435, 0, 0))
def nsfile(p):
    try:
        os.stat(p)
        return 'True'
    except FileNotFoundError:
        return 'False'
    except OSError as e:
        return errname(e)
for ns in ('user', 'mnt', 'net', 'pid'):
    R['ns file ' + ns] = nsfile('/proc/1/ns/' + ns)
    attempt('setns ' + ns, lambda ns=ns: sc(308, os.open('/proc/1/ns/' + ns, os.O_RDONLY), 0))
attempt('setns any fd', lambda: sc(308, 0, 0))
R['unshare binary'] = str(subprocess.run(['/usr/bin/unshare', '-Ur', 'true'], capture_output=True).returncode)
`)) {
    assertAllFailed(
      rec,
      Object.fromEntries(
        Object.keys(flags).flatMap((n) => [
          [`unshare ${n}`, EPERM],
          [`clone ${n}`, EPERM],
        ]),
      ),
      via,
    );
    // Where the sandbox's kernel has no such file to name (gVisor has no /proc/PID/ns/mnt), the
    // attempt ends at open with ENOENT; setns itself is refused whatever it is given ('setns any fd').
    // On microvm PID 1 is the guest agent, root in the VM's kernel: the sandbox user may not even
    // open its namespace files (EACCES).
    const setns = (ns: string): string[] =>
      rec[`ns file ${ns}`] === 'False' ? ['ENOENT'] : MICROVM && rec[`ns file ${ns}`] === 'EACCES' ? ['EACCES'] : EPERM;
    assertAllFailed(
      rec,
      {
        clone3: ['ENOSYS', 'EPERM'],
        'setns any fd': EPERM,
        ...Object.fromEntries(['user', 'mnt', 'net', 'pid'].map((ns) => [`setns ${ns}`, setns(ns)])),
      },
      via,
    );
    assert.notEqual(rec['unshare binary'], '0', via);
  }
  await assertContained(t);
});

/**
 * Whether this host's kernel takes `int 0x80` at all. Some virtual machines' kernels fault on it
 * even outside any sandbox (SIGSEGV): there is no i386 call there to get around the filter with.
 * Probed with a harmless getpid on the host itself, never with the hostile program.
 */
function hostTakesInt80(): boolean {
  if (process.arch !== 'x64') return false;
  const dir = mkdtempSync(join(tmpdir(), 'realm-int80-'));
  try {
    writeFileSync(
      join(dir, 'p.c'),
      'int main(void){long r;__asm__ volatile("int $0x80":"=a"(r):"a"(20L):"memory");return r>0?0:1;}\n',
    );
    execFileSync('gcc', ['-O1', '-o', join(dir, 'p'), join(dir, 'p.c')], { stdio: 'ignore' });
    const r = spawnSync(join(dir, 'p'), { stdio: 'ignore' });
    return r.signal !== 'SIGSEGV';
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const HOST_INT80 = hostTakesInt80();
if (!HOST_INT80)
  console.log(
    "# this host's kernel has no int 0x80 entry (it faults outside any sandbox too): i386 attempts must fault or be killed, x32 ones still meet the filter",
  );

/** The attempts of the foreign-ABI program, by the name it prints. */
const ABI_ATTEMPTS = [
  'i386 unshare(NEWUSER)',
  'i386 ptrace(ATTACH, 1)',
  'i386 mount',
  'x32 unshare(NEWUSER)',
  'x32 ptrace(ATTACH, 1)',
  'int 0x80 with x86_64 ptrace(TRACEME)',
  'int 0x80 with x86_64 unshare(NEWUSER)',
];

/**
 * Each foreign-ABI attempt was killed by the filter (SIGSYS) or refused — or, where the sandbox's
 * kernel has no i386 ABI at all and takes `int 0x80` as the x86_64 call of the same number and
 * registers (gVisor does: its `int 0x80` with 39 in eax is getpid), it did exactly what that x86_64
 * call does through the ordinary entry ('… via syscall', same registers): it went through the same
 * filter as every x86_64 call, so it got around nothing. (What ran for 'i386 ptrace(ATTACH, 1)'
 * there is msync(NULL, 0, 0), which succeeds.) The two 'int 0x80 with x86_64 …' attempts show the
 * filter is in force on that entry: refused wherever they are taken as x86_64 calls, killed where
 * they are i386 ones (ioperm, fadvise64_64).
 */
function assertAbiContained(rec: Record<string, string>, via: string): void {
  for (const name of ABI_ATTEMPTS) {
    const result = rec[name] ?? 'missing';
    // Where the host's kernel has no int 0x80 entry at all, such an attempt faults (SIGSEGV) before any call is made.
    const faulted = !HOST_INT80 && (name.startsWith('i386 ') || name.startsWith('int 0x80')) && result === 'signal 11';
    const refused = result === 'signal 31' || Number(result) < 0 || faulted;
    const sameAsX64 = rec['int 0x80 is x86_64'] === 'yes' && name.startsWith('i386 ') && result === rec[`${name} via syscall`];
    assert.ok(
      refused || sameAsX64,
      `${via}${name} returned ${result} (as an x86_64 call: ${rec[`${name} via syscall`] ?? '-'}; int 0x80 is x86_64: ${rec['int 0x80 is x86_64'] ?? '-'})`,
    );
  }
  // Wherever int 0x80 is the i386 ABI (namespace: the host kernel's), the filter kills it outright.
  // (A microVM's guest kernel has its own i386 entry even where the host's has none.)
  const killed = HOST_INT80 ? ['signal 31'] : ['signal 31', 'signal 11'];
  if (rec['int 0x80 is x86_64'] !== 'yes')
    assert.ok(
      killed.includes(rec['int 0x80 is x86_64'] ?? ''),
      `${via}the int 0x80 probe was not killed: ${rec['int 0x80 is x86_64'] ?? 'missing'}`,
    );
}

void test(
  'foreign syscall ABIs (i386 int 0x80, x32) cannot get around the filter',
  { skip: skip ?? (process.arch !== 'x64' ? 'x86-64 only' : undefined) },
  async () => {
    const c = `${cGuard(t.dataDir)}#include <sys/wait.h>
/* i386 entry: number in eax, arguments in ebx, ecx, edx, esi, edi; the x86_64 argument registers zeroed. */
static long i386(long nr, long a, long b) {
  long ret;
  register long r10 __asm__("r10") = 0, r8 __asm__("r8") = 0, r9 __asm__("r9") = 0;
  __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(0L), "S"(0L), "D"(0L), "r"(r10), "r"(r8), "r"(r9) : "memory");
  return ret;
}
/* int 0x80 with x86_64 arguments (rdi, rsi) and the i386 ones zeroed. */
static long i386_x64args(long nr, long di, long si) {
  long ret;
  register long r10 __asm__("r10") = 0, r8 __asm__("r8") = 0, r9 __asm__("r9") = 0;
  __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(nr), "b"(0L), "c"(0L), "d"(0L), "S"(si), "D"(di), "r"(r10), "r"(r8), "r"(r9) : "memory");
  return ret;
}
/* The ordinary x86_64 entry with the same registers as i386() leaves for it (all zero). */
static long x64(long nr) {
  long ret;
  register long r10 __asm__("r10") = 0, r8 __asm__("r8") = 0, r9 __asm__("r9") = 0;
  __asm__ volatile ("syscall" : "=a"(ret) : "a"(nr), "D"(0L), "S"(0L), "d"(0L), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
  return ret;
}
static long x32(long nr, long a, long b) {
  long ret;
  __asm__ volatile ("syscall" : "=a"(ret) : "a"(nr | 0x40000000L), "D"(a), "S"(b), "d"(0L) : "rcx", "r11", "memory");
  return ret;
}
static void try_(const char *name, int abi, long nr, long a, long b) {
  fflush(stdout);
  pid_t p = fork();
  if (p == 0) {
    long r;
    if (abi == 32) r = i386(nr, a, b);
    else if (abi == 64) r = x32(nr, a, b);
    else if (abi == 0) r = x64(nr);
    else if (abi == 1) r = i386_x64args(nr, a, b) == getpid() ? 1 : 0;
    else r = i386_x64args(nr, a, b);
    if (abi == 1) printf("%s=%s\\n", name, r ? "yes" : "no");
    else printf("%s=%ld\\n", name, r);
    fflush(stdout);
    _exit(0);
  }
  int st;
  waitpid(p, &st, 0);
  if (WIFSIGNALED(st)) printf("%s=signal %d\\n", name, WTERMSIG(st));
}
int main(void) {
  guard();
  try_("int 0x80 is x86_64", 1, 39, 0, 0); /* x86_64 getpid; i386 mkdir */
  try_("i386 unshare(NEWUSER)", 32, 310, 0x10000000, 0);
  try_("i386 unshare(NEWUSER) via syscall", 0, 310, 0, 0);
  try_("i386 ptrace(ATTACH, 1)", 32, 26, 16, 1);
  try_("i386 ptrace(ATTACH, 1) via syscall", 0, 26, 0, 0);
  try_("i386 mount", 32, 21, 0, 0);
  try_("i386 mount via syscall", 0, 21, 0, 0);
  try_("x32 unshare(NEWUSER)", 64, 272, 0x10000000, 0);
  try_("x32 ptrace(ATTACH, 1)", 64, 101, 16, 1);
  try_("int 0x80 with x86_64 ptrace(TRACEME)", 2, 101, 0, 0); /* i386 ioperm */
  try_("int 0x80 with x86_64 unshare(NEWUSER)", 2, 272, 0x10000000, 0); /* i386 fadvise64_64 */
  return 0;
}
`;
    // Compiled inside, then run: so it meets the filter of each way in.
    for (const { via, rec } of await runPy(`import subprocess
open('/home/user/abi.c', 'w').write(${JSON.stringify(c)})
cc = subprocess.run(['/usr/bin/gcc', '-O1', '-o', '/home/user/abi', '/home/user/abi.c'], capture_output=True, text=True)
R['cc'] = str(cc.returncode) + cc.stderr[-300:]
out = subprocess.run(['/home/user/abi'], capture_output=True, text=True).stdout
for line in out.strip().splitlines():
    k, v = line.split('=', 1)
    R[k] = v
`)) {
      assert.equal(rec.cc, '0', via);
      assertAbiContained(rec, via);
    }
    // And the C language's own compile-and-run path.
    const r = await run({ language: 'c', code: c, timeout: '10s' }, t.client);
    assert.equal(r.compile?.verdict, 'ok', r.compile?.stderr);
    assert.doesNotMatch(r.stdout, /GUARD/);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 11, r.stdout);
    assertAbiContained(
      Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])),
      '[c run] ',
    );
    await assertContained(t);
  },
);

void test(
  "host processes are invisible and cannot be traced: the daemon's pid, ptrace, process_vm_readv, pidfd",
  { skip },
  async () => {
    const dpid = process.pid;
    for (const { via, rec } of await runPy(`import re
DPID = ${dpid}
pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
R['pids'] = ','.join(map(str, pids))
ME = int(os.readlink('/proc/self'))  # this process as /proc numbers it (not getpid() if an exec has its own PID namespace)
own = open('/proc/self/cmdline', 'rb').read().split(b'\\0')
mine = own[2] if len(own) > 2 and own[1] == b'-c' else None  # python3 -c PROGRAM (an exec): this program's text
cmds, carriers = [], []
for p in pids:
    if p == ME:
        continue
    try:
        args = open('/proc/%d/cmdline' % p, 'rb').read().split(b'\\0')
    except OSError:
        continue
    if mine is not None and mine in args:
        carriers.append(args[0].decode())  # passes this program on (its text says 'node')
        continue
    cmds.append(b'\\0'.join(args))
R['node visible'] = str(any(b'node' in c or b'dist/test' in c for c in cmds))
R['carriers'] = ','.join(sorted(set(carriers)))
R['daemon pid visible'] = str(os.path.exists('/proc/%d' % DPID))
R['cgroup names'] = open('/proc/self/cgroup').read()
attempt('ptrace attach 1', lambda: check(libc.ptrace(16, 1, None, None)))
attempt('ptrace seize 1', lambda: check(libc.ptrace(0x4206, 1, None, None)))
attempt('ptrace attach daemon', lambda: check(libc.ptrace(16, DPID, None, None)))
attempt('ptrace traceme', lambda: check(libc.ptrace(0, 0, None, None)))
attempt('process_vm_readv 1', lambda: sc(310, 1, 0, 0, 0, 0, 0))
attempt('process_vm_writev 1', lambda: sc(311, 1, 0, 0, 0, 0, 0))
attempt('pidfd_open self', lambda: os.close(sc(434, os.getpid(), 0)))
attempt('pidfd_open daemon', lambda: sc(434, DPID, 0))
attempt('pidfd_getfd', lambda: sc(438, sc(434, 1, 0), 0, 0))
attempt('pidfd_getfd any fd', lambda: sc(438, 0, 0, 0))
attempt('open daemon mem', lambda: open('/proc/%d/mem' % DPID, 'rb'))
attempt('signal 0 daemon', lambda: os.kill(DPID, 0))
`)) {
      assert.equal(rec['node visible'], 'False', `${via}a host process is visible in the sandbox`);
      // Processes left out above because they carry this program's text as an argument: only
      // realm's own exec wrapper inside the sandbox (gvisor: realm-gvexec and its PID-namespace
      // init, whose argv is the exec's), or none.
      assert.ok(['', '/.realm/exec'].includes(rec.carriers ?? ''), `${via}processes carrying the program: ${rec.carriers}`);
      // Small pids: the sandbox's own PID namespace. In a microVM they are the guest kernel's own
      // numbers, whose kernel threads (more of them as it works) take the first ~60: the guard's
      // bound there; the host's processes are not in the VM at all (the checks around this one).
      assert.ok(
        (rec.pids ?? '').split(',').every((p) => Number(p) < (MICROVM ? 1000 : 100)),
        `${via}unexpected pids inside: ${rec.pids}`,
      );
      if (dpid >= 100) assert.equal(rec['daemon pid visible'], 'False', via);
      assertAllFailed(
        rec,
        {
          ...all(
            [
              'ptrace attach 1',
              'ptrace seize 1',
              'ptrace attach daemon',
              'ptrace traceme',
              'process_vm_readv 1',
              'process_vm_writev 1',
              'pidfd_getfd any fd',
            ],
            EPERM,
          ),
          // A kernel without pidfds (gVisor 20221219: pidfd_open is ENOSYS even for the caller's own
          // pid) fails these at pidfd_open; pidfd_getfd itself is refused either way ('pidfd_getfd any fd').
          ...(rec['pidfd_open self'] === 'ENOSYS'
            ? all(['pidfd_open daemon', 'pidfd_getfd'], ['ENOSYS'])
            : { 'pidfd_open daemon': ['ESRCH'], pidfd_getfd: EPERM }),
          'open daemon mem': ['ENOENT'],
          'signal 0 daemon': ['ESRCH'],
        },
        via,
      );
      // The sandbox can read its cgroup's name: it must not tell the daemon's host pid.
      assert.doesNotMatch(
        rec['cgroup names'] ?? '',
        new RegExp(`\\b${dpid}\\b`),
        `${via}the cgroup name reveals the daemon's pid`,
      );
    }
    await assertContained(t);
  },
);

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

void test(
  "signals cannot reach host processes, even ones running as the sandbox's host uid; kill(-1) stays inside",
  { skip },
  async () => {
    const sb = await Sandbox.create({ memory: '256m' }, t.client);
    const uid = hostUidOf(t, sb.id);
    const asRoot = spawn('/bin/sleep', ['300'], { stdio: 'ignore' });
    const asSandboxUid = spawn('/bin/sleep', ['300'], { stdio: 'ignore', uid, gid: uid });
    try {
      assert.ok(asRoot.pid && asSandboxUid.pid, 'the host sleeps did not start');
      const targets = { 'root sleep': asRoot.pid, 'sandbox-uid sleep': asSandboxUid.pid };
      const code = `${pyGuard(t.dataDir)}${PY_ATTEMPT}import time
TARGETS = ${JSON.stringify(targets)}
for name, pid in TARGETS.items():
    attempt('signal 0 ' + name, lambda pid=pid: os.kill(pid, 0))
    attempt('SIGKILL ' + name, lambda pid=pid: os.kill(pid, 9))
    attempt('killpg ' + name, lambda pid=pid: os.killpg(pid, 9))
    attempt('pidfd_open ' + name, lambda pid=pid: sc(434, pid, 0))
attempt('pidfd_open self', lambda: os.close(sc(434, os.getpid(), 0)))
attempt('signal 0 daemon', lambda: os.kill(${process.pid}, 0))
attempt('SIGKILL init', lambda: os.kill(1, 9))
kid = os.fork()
if kid == 0:
    os.setsid()
    time.sleep(300)
    os._exit(0)
attempt('SIGKILL everyone', lambda: os.kill(-1, 9))
R['own child'] = 'SIGKILL' if os.WTERMSIG(os.waitpid(kid, 0)[1]) == 9 else 'alive'
time.sleep(0.3)
ME = os.readlink('/proc/self')  # this process as /proc numbers it (an exec may have its own PID namespace)
def kthread(p):  # PF_KTHREAD in the flags field of /proc/PID/stat
    return int(open('/proc/%s/stat' % p).read().rsplit(') ', 1)[1].split()[6]) & 0x00200000 != 0
left = [p for p in os.listdir('/proc') if p.isdigit() and p != ME]
R['left inside'] = ','.join(sorted(open('/proc/%s/comm' % p).read().strip() for p in left if not kthread(p)))
R['kernel threads'] = str(sum(1 for p in left if kthread(p)))
done()
`;
      // A background process of the sandbox's own, to show kill(-1) does act inside.
      const bg = await sb.exec('setsid sleep 300 </dev/null >/dev/null 2>&1 & echo started', { timeout: '10s' });
      assert.equal(bg.stdout, 'started\n');
      const viaExec = record(await sb.exec(['/usr/bin/python3', '-c', code], { timeout: '20s' }));
      const viaRun = record(await run({ language: 'python', code, timeout: '20s' }, t.client));
      for (const [via, rec] of [
        ['[sandbox exec] ', viaExec],
        ['[one-shot run] ', viaRun],
      ] as const) {
        // Without pidfds in the sandbox's kernel (pidfd_open of its own pid is ENOSYS: gVisor) there is
        // no pidfd to a host process either; the kill attempts still have to find no such process.
        const pidfd = rec['pidfd_open self'] === 'ENOSYS' ? ['ENOSYS'] : ['ESRCH'];
        assertAllFailed(
          rec,
          {
            ...Object.fromEntries(
              Object.keys(targets).flatMap((n) => [`signal 0 ${n}`, `SIGKILL ${n}`, `killpg ${n}`].map((a) => [a, ['ESRCH']])),
            ),
            ...Object.fromEntries(Object.keys(targets).map((n) => [`pidfd_open ${n}`, pidfd])),
            'signal 0 daemon': ['ESRCH'],
          },
          via,
        );
        // kill(-1) killed the program's own child, and on namespace the sandbox's own sleep too; its
        // init ignores SIGKILL from inside. Under gvisor each exec is its own PID namespace (realm-gvexec):
        // kill(-1) reaches that exec's processes only, so the earlier exec's sleep lives on beside
        // realm's own processes (init, and the exec wrappers as root, which the sandbox user cannot signal).
        assert.equal(rec['own child'], 'SIGKILL', via);
        const expected = GVISOR ? (via.includes('exec') ? 'exec,exec,exec,init,sleep' : 'exec,exec,init') : 'init';
        assert.equal(rec['left inside'], expected, via);
        // Only a sandbox with a kernel of its own (microvm: the VM's) shows kernel threads: that
        // kernel's, which no signal reaches. Everywhere else the sandbox sees no kernel thread at all.
        if (MICROVM) assert.ok(Number(rec['kernel threads']) > 0, `${via}${rec['kernel threads']}`);
        else assert.equal(rec['kernel threads'], '0', via);
      }
      for (const c of [asRoot, asSandboxUid]) {
        assert.equal(c.exitCode, null);
        assert.equal(c.signalCode, null);
        assert.doesNotThrow(() => process.kill(c.pid ?? 0, 0));
      }
      const alive = await sb.exec('echo alive', { timeout: '10s' });
      assert.equal(alive.stdout, 'alive\n', 'the sandbox stopped working after its programs signalled everything');
    } finally {
      await sb.destroy().catch(() => undefined);
      await stop(asRoot);
      await stop(asSandboxUid);
    }
    await assertContained(t);
  },
);

void test('raw and packet sockets are refused', { skip }, async () => {
  for (const { via, rec } of await runPy(`import socket
for name, fam, typ, proto in [
    ('AF_INET SOCK_RAW icmp', socket.AF_INET, socket.SOCK_RAW, 1),
    ('AF_INET SOCK_RAW tcp', socket.AF_INET, socket.SOCK_RAW, 6),
    ('AF_INET SOCK_RAW raw', socket.AF_INET, socket.SOCK_RAW, 255),
    ('AF_INET6 SOCK_RAW icmpv6', socket.AF_INET6, socket.SOCK_RAW, 58),
    ('AF_INET SOCK_RAW nonblock cloexec', socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 1),
    ('AF_PACKET SOCK_RAW', socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)),
    ('AF_PACKET SOCK_DGRAM', socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3)),
    ('AF_NETLINK SOCK_RAW route', socket.AF_NETLINK, socket.SOCK_RAW, 0)]:
    attempt(name, lambda fam=fam, typ=typ, proto=proto: socket.socket(fam, typ, proto))
attempt('AF_PACKET SOCK_PACKET via syscall', lambda: sc(41, 17, 10, 0x0300))
attempt('AF_INET SOCK_RAW via syscall', lambda: sc(41, 2, 3, 1))
`)) {
    assertAllFailed(
      rec,
      all(
        [
          'AF_INET SOCK_RAW icmp',
          'AF_INET SOCK_RAW tcp',
          'AF_INET SOCK_RAW raw',
          'AF_INET6 SOCK_RAW icmpv6',
          'AF_INET SOCK_RAW nonblock cloexec',
          'AF_PACKET SOCK_RAW',
          'AF_PACKET SOCK_DGRAM',
          'AF_NETLINK SOCK_RAW route',
          'AF_PACKET SOCK_PACKET via syscall',
          'AF_INET SOCK_RAW via syscall',
        ],
        ['EPERM', 'EACCES'],
      ),
      via,
    );
  }
  await assertContained(t);
});

void test(
  'terminal injection is refused: TIOCSTI (also with high bits set), TIOCLINUX; no controlling tty',
  { skip },
  async () => {
    for (const { via, rec } of await runPy(`libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_char_p]
m, s = os.openpty()
attempt('TIOCSTI pty', lambda: check(libc.ioctl(s, 0x5412, b'x')))
attempt('TIOCSTI pty high bits', lambda: check(libc.ioctl(s, 0x5412 | (1 << 32), b'x')))
attempt('TIOCSTI master', lambda: check(libc.ioctl(m, 0x5412, b'x')))
attempt('TIOCSTI stdio', lambda: check(libc.ioctl(1, 0x5412, b'x')))
attempt('TIOCLINUX', lambda: check(libc.ioctl(s, 0x541C, b'\\x06')))
os.set_blocking(s, False)
attempt('injected input', lambda: os.read(s, 16))
attempt('open /dev/tty', lambda: os.open('/dev/tty', os.O_RDWR))
`)) {
      assertAllFailed(
        rec,
        {
          ...all(['TIOCSTI pty', 'TIOCSTI pty high bits', 'TIOCSTI master', 'TIOCSTI stdio', 'TIOCLINUX'], EPERM),
          // No controlling terminal: Linux answers ENXIO, gVisor's /dev/tty EIO for the same state.
          'injected input': ['EAGAIN'],
          'open /dev/tty': ['ENXIO', 'ENOENT', 'EACCES', ...(GVISOR ? ['EIO'] : [])],
        },
        via,
      );
    }
    await assertContained(t);
  },
);

void test(
  'kernel knobs are out of reach: sysrq-trigger, core_pattern, sysctls, oom_score_adj, kmsg, bpf, modules',
  { skip },
  async () => {
    // Writes that would be harmless even if they landed: sysrq 'h' prints help; sysctls get the value
    // they already have.
    for (const { via, rec } of await runPy(`def same(p):
    return wr(p, open(p).read())
attempt('write /proc/sysrq-trigger', lambda: wr('/proc/sysrq-trigger', 'h'))
for p in ['/proc/sys/kernel/core_pattern', '/proc/sys/kernel/modprobe', '/proc/sys/kernel/hostname', '/proc/sys/kernel/panic',
          '/proc/sys/vm/overcommit_memory', '/proc/sys/net/ipv4/ip_forward', '/proc/sys/kernel/ns_last_pid']:
    attempt('write ' + p, lambda p=p: same(p))
attempt('sethostname', lambda: check(libc.sethostname(b'sandbox', 7)))
attempt('lower oom_score_adj', lambda: wr('/proc/self/oom_score_adj', '-1000'))
R['kmsg exists'] = str(os.path.exists('/proc/kmsg'))
attempt('read /proc/kmsg', lambda: open('/proc/kmsg', 'rb').read(1))
attempt('syslog', lambda: check(libc.klogctl(3, ctypes.create_string_buffer(64), 64)))
attempt('open /dev/kmsg', lambda: os.open('/dev/kmsg', os.O_RDWR))
attempt('open /dev/mem', lambda: os.open('/dev/mem', os.O_RDONLY))
attempt('list /sys', lambda: os.listdir('/sys'))
attempt('read kcore', lambda: open('/proc/kcore', 'rb').read(1))
attempt('bpf', lambda: sc(321, 0, 0, 0))
attempt('perf_event_open', lambda: sc(298, 0, 0, -1, -1, 0))
attempt('io_uring_setup', lambda: sc(425, 8, 0))
attempt('keyctl', lambda: sc(250, 0, 0, 0, 0, 0))
attempt('userfaultfd', lambda: sc(323, 0))
attempt('init_module', lambda: sc(175, 0, 0, 0))
`)) {
      assertAllFailed(
        rec,
        {
          ...all(
            [
              '/proc/sysrq-trigger',
              '/proc/sys/kernel/core_pattern',
              '/proc/sys/kernel/modprobe',
              '/proc/sys/kernel/hostname',
              '/proc/sys/kernel/panic',
              '/proc/sys/vm/overcommit_memory',
              '/proc/sys/net/ipv4/ip_forward',
              '/proc/sys/kernel/ns_last_pid',
            ].map((p) => `write ${p}`),
            ABSENT_OR_DENIED,
          ),
          ...all(['open /dev/kmsg', 'open /dev/mem', 'list /sys', 'read kcore'], ABSENT_OR_DENIED),
          // gVisor keeps its own oom_score_adj per task (a number in its kernel, read by nobody on the
          // host): the write lands there. What matters is the host's value, checked below on both drivers.
          'lower oom_score_adj': GVISOR ? [...DENIED, 'OK 5'] : DENIED,
          'read /proc/kmsg': rec['kmsg exists'] === 'False' ? ['ENOENT'] : DENIED,
          ...all(
            ['sethostname', 'syslog', 'bpf', 'perf_event_open', 'io_uring_setup', 'keyctl', 'userfaultfd', 'init_module'],
            EPERM,
          ),
        },
        via,
      );
    }
    // The host's OOM killer must see the sandbox as before: a process that tried to lower its
    // oom_score_adj stays alive while every host process of the sandbox's cgroup is read.
    const sb = await Sandbox.create({ memory: '256m' }, t.client);
    try {
      const dir = pidsCgroupDir(`${t.cgroupRoot}/${sb.id}`);
      assert.ok(dir, 'no pids cgroup hierarchy');
      const before = hostOomScores(dir);
      const bg = await sb.exec(
        '(echo -1000 > /proc/self/oom_score_adj; cat /proc/self/oom_score_adj > /tmp/adj; exec sleep 300) </dev/null >/dev/null 2>&1 & ' +
          'while [ ! -s /tmp/adj ]; do sleep 0.05; done; echo started; cat /tmp/adj',
        { timeout: '10s' },
      );
      assert.match(bg.stdout, /^started\n-?\d+\n$/, bg.stderr);
      const after = hostOomScores(dir);
      const floor = Math.min(0, ...before.values());
      assert.ok(after.size > 0, "no host process in the sandbox's cgroup");
      for (const [pid, v] of after)
        assert.ok(v >= floor, `host process ${pid} of the sandbox has oom_score_adj ${v} (was at least ${floor})`);
    } finally {
      await sb.destroy().catch(() => undefined);
    }
    await assertContained(t);
  },
);

/** oom_score_adj of every host process in a cgroup directory and the ones below it. */
function hostOomScores(dir: string): Map<number, number> {
  const out = new Map<number, number>();
  const walk = (d: string): void => {
    for (const pid of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        out.set(Number(pid), Number(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim()));
      } catch {
        /* exited */
      }
    }
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
  };
  walk(dir);
  return out;
}

void test('a sandbox cannot see or leave its cgroup', { skip }, async () => {
  for (const { via, rec } of await runPy(`R['cgroup'] = open('/proc/self/cgroup').read().replace('\\n', ' ')
attempt('list /sys/fs/cgroup', lambda: os.listdir('/sys/fs/cgroup'))
attempt('mount cgroup', lambda: check(libc.mount(b'cgroup', b'/tmp', b'cgroup', 0, b'pids')))
attempt('mount cgroup2', lambda: check(libc.mount(b'cgroup2', b'/tmp', b'cgroup2', 0, None)))
`)) {
    assertAllFailed(rec, { 'list /sys/fs/cgroup': ABSENT_OR_DENIED, 'mount cgroup': EPERM, 'mount cgroup2': EPERM }, via);
    assert.ok(!(rec.cgroup ?? '').includes(t.cgroupRoot), `${via}the sandbox sees its cgroup path on the host: ${rec.cgroup}`);
  }
  await assertContained(t);
});

/** A vsock listener on the host (python: Node has no AF_VSOCK), or why there can be none. */
async function hostVsockListener(port: number): Promise<{ child?: ChildProcess; reason?: string }> {
  const code = `import socket, sys
try:
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.bind((socket.VMADDR_CID_ANY, ${port}))
    s.listen()
except OSError as e:
    print('no vsock: %s' % e, flush=True)
    sys.exit(0)
print('listening', flush=True)
sys.stdin.read()
`;
  const child = spawn('/usr/bin/python3', ['-c', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const text = line.toString().trim();
  if (text === 'listening') return { child };
  await once(child, 'exit');
  return { reason: text };
}

void test(
  'AF_VSOCK is refused (vsock is not confined by the network namespace)',
  {
    skip,
  },
  async () => {
    const port = 40000 + Math.floor(Math.random() * 20000);
    const host = await hostVsockListener(port);
    try {
      // Never connects anywhere: creating and binding a socket are local.
      for (const { via, rec } of await runPy(`import socket
def vsock():
    s = socket.socket(40, socket.SOCK_STREAM)
    try:
        s.bind((0xFFFFFFFF, ${port}))
        return 'bound the port the host holds'
    except OSError as e:
        return 'created; bind: ' + errname(e)
attempt('socket AF_VSOCK', vsock)
`)) {
        assertAllFailed(rec, { 'socket AF_VSOCK': ['EPERM', 'EAFNOSUPPORT', 'EACCES'] }, via);
      }
    } finally {
      if (host.child) {
        host.child.stdin?.end();
        await stop(host.child);
      }
    }
    await assertContained(t);
  },
);
