/**
 * Hostile programs that try to reach outside their sandbox through the file system and the
 * network: host secrets, the daemon's data, another sandbox's files and processes, the image,
 * loopback services of the host. Each runs behind a guard; after each the daemon must answer and
 * nothing of the sandbox may be left.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sandbox } from '@realm/sdk';
import { daemonHooks, hostUidOf, testDriverSkipReason, type TestDaemon } from '../helpers/daemon.js';
import {
  GVISOR,
  MICROVM,
  PY_ATTEMPT,
  SLOW,
  assertAllFailed,
  assertContained,
  assertNoGuard,
  nonce,
  pyGuard,
  record,
  runBoth,
  secs,
} from './common.js';

const skip = await testDriverSkipReason();
let t: TestDaemon;
daemonHooks((d) => (t = d), {}, skip);

const NOT_THERE = ['ENOENT', 'EACCES', 'EPERM'];

function listen(server: Server, where: string | number, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    if (typeof where === 'string') server.listen(where, resolve);
    else server.listen(where, host, resolve);
  });
}

void test("network egress: only lo inside, and the host's loopback listeners are unreachable", { skip }, async () => {
  const mark = nonce();
  let tcpConns = 0;
  let udpMsgs = 0;
  let unixConns = 0;
  const tcp = createServer((s) => {
    tcpConns++;
    s.destroy();
  });
  const unix = createServer((s) => {
    unixConns++;
    s.destroy();
  });
  const udp = createSocket('udp4');
  udp.on('message', () => udpMsgs++);
  try {
    await listen(tcp, 0, '127.0.0.1');
    await listen(unix, `\0realm-hostile-${mark}`);
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const tcpPort = (tcp.address() as AddressInfo).port;
    const udpPort = udp.address().port;
    const code = `${pyGuard(t.dataDir)}${PY_ATTEMPT}import socket
R['ifaces'] = ','.join(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]))
R['routes'] = str(len(open('/proc/net/route').read().splitlines()) - 1)
R['listening'] = str(sum(1 for l in open('/proc/net/tcp').read().splitlines()[1:] if l.split()[1].endswith(':%04X' % ${tcpPort}) and l.split()[3] == '0A'))
def tcp():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect(('127.0.0.1', ${tcpPort}))
    return 'connected'
attempt('tcp 127.0.0.1', tcp)
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(5):
        s.sendto(b'hostile', ('127.0.0.1', ${udpPort}))
    return 'sent'
attempt('udp 127.0.0.1', udp)
def unix():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect('\\0realm-hostile-${mark}')
    return 'connected'
attempt('abstract unix', unix)
done()
`;
    for (const { via, rec } of await runBoth(t, code)) {
      assert.equal(rec.ifaces, 'lo', `${via}a sandbox without network sees only its own lo`);
      assert.equal(rec.routes, '0', `${via}no routes out of the sandbox`);
      assert.equal(rec.listening, '0', `${via}the host's listening socket shows in the sandbox's /proc/net/tcp`);
      assert.equal(rec['tcp 127.0.0.1'], 'ECONNREFUSED', via);
      assert.equal(rec['abstract unix'], 'ECONNREFUSED', via);
      // The datagrams go to the sandbox's own loopback, where nobody listens.
      assert.ok(["OK 'sent'", 'ECONNREFUSED'].includes(rec['udp 127.0.0.1'] ?? ''), `${via}${rec['udp 127.0.0.1']}`);
    }
    await sleep(200);
    assert.equal(tcpConns, 0);
    assert.equal(udpMsgs, 0);
    assert.equal(unixConns, 0);
  } finally {
    tcp.close();
    unix.close();
    udp.close();
  }
  await assertContained(t);
});

void test(
  "network egress with network all and an allow-list: the host's loopback stays unreachable; an allow-list has no way out but its proxy",
  { skip },
  async () => {
    let tcpConns = 0;
    let udpMsgs = 0;
    const tcp = createServer((s) => {
      tcpConns++;
      s.destroy();
    });
    const udp = createSocket('udp4');
    udp.on('message', () => udpMsgs++);
    const sandboxes: Sandbox[] = [];
    try {
      await listen(tcp, 0, '127.0.0.1');
      await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
      const tcpPort = (tcp.address() as AddressInfo).port;
      const udpPort = udp.address().port;
      const apiPort = Number(new URL(t.url).port);
      // Every address the host's loopback might answer on from inside: the sandbox's own 127.0.0.1
      // and slirp's gateway (the host under slirp4netns; on microvm QEMU's, whose "host" is its own
      // namespace). Not the DNS forwarder's 10.0.2.3: it leads to the host's resolver, elsewhere.
      const code = `${pyGuard(t.dataDir)}${PY_ATTEMPT}import socket
R['ifaces'] = ','.join(sorted(l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]))
R['routes'] = str(len(open('/proc/net/route').read().splitlines()) - 1)
def tcp(h, p):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(${3 * SLOW})
    s.connect((h, p))
    return 'connected'
def udp(h, p):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(5):
        s.sendto(b'hostile', (h, p))
    return 'sent'
for h in ('127.0.0.1', '10.0.2.2'):
    for name, p in (('listener', ${tcpPort}), ('api', ${apiPort})):
        attempt('tcp %s %s' % (h, name), lambda h=h, p=p: tcp(h, p))
    attempt('udp %s' % h, lambda h=h: udp(h, ${udpPort}))
def via_proxy(target):
    s = socket.create_connection(('127.0.0.1', 3128), ${3 * SLOW})
    s.sendall(('CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n' % (target, target)).encode())
    return s.recv(64).decode().split('\\r\\n')[0]
attempt('proxy to the listener', lambda: via_proxy('127.0.0.1:${tcpPort}'))
attempt('proxy to the api', lambda: via_proxy('localhost:${apiPort}'))
done()
`;
      const refused = ['ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'timeout', 'TimeoutError'];
      for (const opts of [{ network: 'all' as const }, { allow: ['example.invalid'] }]) {
        const sb = await Sandbox.create({ memory: '256m', ...opts }, t.client);
        sandboxes.push(sb);
        const rec = record(await sb.exec(['/usr/bin/python3', '-c', code], { timeout: secs(60) }));
        const via = `[${'network' in opts ? 'network all' : 'allow-list'}] `;
        for (const h of ['127.0.0.1', '10.0.2.2']) {
          for (const name of ['listener', 'api'])
            assert.ok(refused.includes(rec[`tcp ${h} ${name}`] ?? ''), `${via}tcp ${h} ${name}: ${rec[`tcp ${h} ${name}`]}`);
          assert.ok(["OK 'sent'", ...refused].includes(rec[`udp ${h}`] ?? ''), `${via}udp ${h}: ${rec[`udp ${h}`]}`);
        }
        if ('allow' in opts) {
          assert.equal(rec.ifaces, 'lo', `${via}an allow-list sandbox has only its own lo`);
          assert.equal(rec.routes, '0', `${via}no routes out of an allow-list sandbox`);
          // Its one way out refuses whatever the list does not name, the host's loopback first.
          for (const k of ['proxy to the listener', 'proxy to the api'])
            assert.match(rec[k] ?? '', /^OK 'HTTP\/1\.[01] 403/, `${via}${k}: ${rec[k]}`);
        } else {
          assert.notEqual(rec.ifaces, 'lo', `${via}network all has an interface out`);
        }
      }
      await sleep(200);
      assert.equal(tcpConns, 0, "a sandbox reached the host's loopback listener");
      assert.equal(udpMsgs, 0, "a datagram from a sandbox reached the host's loopback");
    } finally {
      for (const sb of sandboxes) await sb.destroy().catch(() => undefined);
      tcp.close();
      udp.close();
    }
    await assertContained(t);
  },
);

void test("host secrets and the daemon's data dir cannot be read", { skip }, async () => {
  const d = t.dataDir;
  const code = `${pyGuard(d)}${PY_ATTEMPT}
D = ${JSON.stringify(d)}
def read(p):
    with open(p, 'rb') as f:
        return len(f.read())
for p in ['/etc/shadow', '/etc/gshadow', '/etc/sudoers', '/root/.bashrc', D + '/state.db', D + '/daemon.json', D + '/runtime/seccomp.bpf',
          '/proc/1/root/etc/shadow', '/proc/self/root/etc/shadow', '/proc/1/root' + D + '/state.db', '/proc/1/cwd/../../etc/shadow']:
    attempt('read ' + p, lambda p=p: read(p))
for p in ['/root', D, D + '/sandboxes', D + '/runtime', '/var/lib', '/proc/1/root' + D]:
    attempt('list ' + p, lambda p=p: os.listdir(p))
R['home'] = ','.join(sorted(os.listdir('/home')))
R['realm'] = ','.join(sorted(os.listdir('/.realm')))
found = []
for root, dirs, files in os.walk('/'):
    if root == '/':
        dirs[:] = [x for x in dirs if x not in ('proc', 'usr', 'sys')]
    for f in files:
        if f in ('state.db', 'shadow', 'daemon.json', 'seccomp.bpf', 'gshadow'):
            found.append(os.path.join(root, f))
R['found'] = ','.join(found)
done()
`;
  const reads = [
    '/etc/shadow',
    '/etc/gshadow',
    '/etc/sudoers',
    '/root/.bashrc',
    `${d}/state.db`,
    `${d}/daemon.json`,
    `${d}/runtime/seccomp.bpf`,
    '/proc/1/root/etc/shadow',
    '/proc/self/root/etc/shadow',
    `/proc/1/root${d}/state.db`,
    '/proc/1/cwd/../../etc/shadow',
  ];
  const lists = ['/root', d, `${d}/sandboxes`, `${d}/runtime`, '/var/lib', `/proc/1/root${d}`];
  for (const { via, rec } of await runBoth(t, code)) {
    assertAllFailed(
      rec,
      Object.fromEntries([...reads.map((p) => `read ${p}`), ...lists.map((p) => `list ${p}`)].map((n) => [n, NOT_THERE])),
      via,
    );
    assert.equal(rec.home, 'user', via);
    // realm's own static tools, nothing else: init everywhere, the files API's tool in long-lived sandboxes.
    // Under gvisor every sandbox (a one-shot run's too) is a runsc sandbox with the same layout: init,
    // fs, exec (realm-gvexec), seccomp (the filter program every exec loads: public, the same as
    // native/seccomp-filter.c builds) and status (where execs report their end; root's only).
    // Under microvm every sandbox is a VM booted from the same initramfs: init (the guest agent),
    // fs and seccomp (the same public filter, loaded by the agent for every exec).
    assert.equal(
      rec.realm,
      GVISOR ? 'exec,fs,init,seccomp,status' : MICROVM ? 'fs,init,seccomp' : via.includes('one-shot') ? 'init' : 'fs,init',
      via,
    );
    assert.equal(rec.found, '', `${via}host secret files are visible somewhere in the sandbox`);
  }
  assert.ok(existsSync(`${d}/state.db`), 'the paths tried are real on the host');
  await assertContained(t);
});

void test("another sandbox's files, processes, sockets and shared memory are out of reach", { skip }, async () => {
  const secret = `secret-${nonce()}`;
  const key = 0x5ec0000 + Math.floor(Math.random() * 0xffff);
  const a = await Sandbox.create({ memory: '256m' }, t.client);
  const b = await Sandbox.create({ memory: '256m' }, t.client);
  try {
    // A: a secret file in each writable place, and a background process that holds the secret in
    // its argv, listens on an abstract socket and owns a SysV shared memory segment.
    const holder = `import ctypes, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
assert libc.shmget(${key}, 4096, 0o1000 | 0o666) >= 0
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind('\\0' + sys.argv[1])
s.listen()
open('/tmp/ready', 'w').close()
while True:
    time.sleep(1)
`;
    const setup = `${pyGuard(t.dataDir)}import time
for p in ['/home/user/${secret}.txt', '/tmp/${secret}.txt', '/dev/shm/${secret}.txt']:
    with open(p, 'w') as f:
        f.write(${JSON.stringify(secret)})
if os.fork() == 0:
    os.setsid()
    fd = os.open('/dev/null', os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(fd, i)
    os.execv('/usr/bin/python3', ['python3', '-c', ${JSON.stringify(holder)}, ${JSON.stringify(secret)}])
for _ in range(100):
    if os.path.exists('/tmp/ready'):
        break
    time.sleep(0.05)
print('ready' if os.path.exists('/tmp/ready') else 'not ready')
`;
    const ra = await a.exec(['/usr/bin/python3', '-c', setup], { timeout: '20s' });
    assertNoGuard(ra);
    assert.equal(ra.stdout.trim(), 'ready', ra.stderr);

    const hunt = (aId: string): string => `${pyGuard(t.dataDir)}${PY_ATTEMPT}import socket
SECRET = ${JSON.stringify([...secret].reverse().join(''))}[::-1]  # not in this program's own argv
found = []
def look(p):
    try:
        with open(p, 'rb') as f:
            if SECRET.encode() in f.read(1 << 20):
                found.append(p)
    except OSError:
        pass
for pid in [p for p in os.listdir('/proc') if p.isdigit()]:
    for f in ('cmdline', 'environ'):
        look('/proc/%s/%s' % (pid, f))
    for d in ('root/home/user', 'root/tmp', 'root/dev/shm', 'cwd'):
        look('/proc/%s/%s/%s.txt' % (pid, d, SECRET))
for p in ['/home/user', '/tmp', '/dev/shm', ${JSON.stringify(`${t.dataDir}/sandboxes/${aId}/rw/home`)}]:
    look(p + '/' + SECRET + '.txt')
for root, dirs, files in os.walk('/'):
    if root == '/':
        dirs[:] = [x for x in dirs if x not in ('proc', 'usr', 'sys')]
    for f in files + dirs:
        if SECRET in f:
            found.append(os.path.join(root, f))
R['found'] = ','.join(sorted(set(found)))
def unix():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect('\\0' + SECRET)
    return 'connected'
attempt('abstract socket', unix)
attempt('shmget', lambda: check(libc.shmget(${key}, 0, 0)))
R['sysvipc'] = str(any(l.split()[0] == str(${key}) for l in open('/proc/sysvipc/shm').read().splitlines()[1:])) if os.path.exists('/proc/sysvipc/shm') else 'absent'
done()
`;
    // Positive control: from inside A the same hunt finds everything.
    const inA = record(await a.exec(['/usr/bin/python3', '-c', hunt(a.id)], { timeout: '20s' }));
    assert.match(inA.found ?? '', /\/home\/user\//);
    assert.match(inA.found ?? '', /cmdline/);
    assert.equal(inA['abstract socket'], "OK 'connected'");
    assert.match(inA.shmget ?? '', /^OK/);
    // gVisor's /proc has no sysvipc listing: there the shmget pair (found in A, ENOENT in B) is the proof.
    assert.equal(inA.sysvipc, GVISOR ? 'absent' : 'True');

    const inB = record(await b.exec(['/usr/bin/python3', '-c', hunt(a.id)], { timeout: '20s' }));
    assert.equal(inB.found, '', "sandbox B found sandbox A's secret");
    assert.equal(inB['abstract socket'], 'ECONNREFUSED');
    assert.equal(inB.shmget, 'ENOENT');
    assert.equal(inB.sysvipc, GVISOR ? 'absent' : 'False');
  } finally {
    await a.destroy().catch(() => undefined);
    await b.destroy().catch(() => undefined);
  }
  await assertContained(t);
});

void test('the image is read-only: /usr, /etc, / and /.realm cannot be changed', { skip }, async () => {
  const mark = `realm-hostile-${nonce()}`;
  const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
  const orig = { passwd: sha('/etc/passwd'), hosts: sha('/etc/hosts'), python: statSync('/usr/bin/python3') };
  // Every attempt is harmless even if it succeeded: new files carry a unique name, modes and times
  // are set to what they are, files opened for writing are not written.
  const code = `${pyGuard(t.dataDir)}${PY_ATTEMPT}
M = ${JSON.stringify(mark)}
st = os.stat('/usr/bin/python3')
attempt('create /usr/bin', lambda: open('/usr/bin/' + M, 'w'))
attempt('create /usr/lib', lambda: open('/usr/lib/' + M, 'w'))
attempt('mkdir /usr/share', lambda: os.mkdir('/usr/share/' + M))
attempt('symlink /usr/bin', lambda: os.symlink('/tmp', '/usr/bin/' + M))
attempt('create /etc', lambda: open('/etc/' + M, 'w'))
attempt('create /', lambda: open('/' + M, 'w'))
attempt('mkdir /var/lib', lambda: os.mkdir('/var/lib'))
attempt('open /etc/passwd for append', lambda: open('/etc/passwd', 'a'))
attempt('open /etc/hosts for write', lambda: os.open('/etc/hosts', os.O_WRONLY))
attempt('open /etc/ld.so.cache for write', lambda: os.open('/etc/ld.so.cache', os.O_WRONLY))
attempt('open /.realm/init for write', lambda: open('/.realm/init', 'r+b'))
attempt('open /usr/bin/python3 for write', lambda: open('/usr/bin/python3', 'r+b'))
attempt('chmod python3', lambda: os.chmod('/usr/bin/python3', st.st_mode & 0o7777))
attempt('chown python3', lambda: os.chown('/usr/bin/python3', -1, -1))
attempt('utime python3', lambda: os.utime('/usr/bin/python3', ns=(st.st_atime_ns, st.st_mtime_ns)))
attempt('truncate ld.so.cache', lambda: os.truncate('/etc/ld.so.cache', os.stat('/etc/ld.so.cache').st_size))
attempt('create via /proc/self/root', lambda: open('/proc/self/root/usr/bin/' + M, 'w'))
attempt('rename /etc/hosts', lambda: os.rename('/etc/hosts', '/etc/hosts'))
done()
`;
  const ro = ['EROFS', 'EACCES', 'EPERM', 'EBUSY'];
  const names = [
    'create /usr/bin',
    'create /usr/lib',
    'mkdir /usr/share',
    'symlink /usr/bin',
    'create /etc',
    'create /',
    'mkdir /var/lib',
    'open /etc/passwd for append',
    'open /etc/hosts for write',
    'open /etc/ld.so.cache for write',
    'open /.realm/init for write',
    'open /usr/bin/python3 for write',
    'chmod python3',
    'chown python3',
    'utime python3',
    'truncate ld.so.cache',
    'create via /proc/self/root',
    'rename /etc/hosts',
  ];
  for (const { via, rec } of await runBoth(t, code)) {
    // gVisor returns from chown(path, -1, -1) before it looks at the mount: a call that changes
    // nothing succeeds there even on a read-only file system. Every other attempt here (chmod,
    // utime, truncate, open for write…) still has to fail, and the host file's owner is checked below.
    const allowed = (n: string): string[] => (GVISOR && n === 'chown python3' ? [...ro, 'OK None'] : ro);
    assertAllFailed(rec, Object.fromEntries(names.map((n) => [n, allowed(n)])), via);
  }
  for (const p of [`/usr/bin/${mark}`, `/usr/lib/${mark}`, `/usr/share/${mark}`, `/etc/${mark}`, `/${mark}`]) {
    if (existsSync(p)) {
      unlinkSync(p);
      assert.fail(`the sandbox created ${p} on the host`);
    }
  }
  assert.equal(sha('/etc/passwd'), orig.passwd);
  assert.equal(sha('/etc/hosts'), orig.hosts);
  const py = statSync('/usr/bin/python3');
  assert.equal(py.mode, orig.python.mode);
  assert.equal(py.uid, orig.python.uid);
  assert.equal(py.mtimeMs, orig.python.mtimeMs);
  await assertContained(t);
});

/** Host processes whose argv names `needle`, with their argv and /proc status. */
function hostProcsNaming(needle: string): { pid: number; argv: string[]; status: string }[] {
  const out: { pid: number; argv: string[]; status: string }[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.includes(needle)))
        out.push({ pid: Number(pid), argv, status: readFileSync(`/proc/${pid}/status`, 'utf8') });
    } catch {
      /* exited */
    }
  }
  return out;
}

const field = (status: string, name: string): string => new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';

/** PTRACE_ATTACH to `pid` as host uid `uid` (then detach): "attached", or the errno's name. */
function ptraceAs(uid: number, pid: number): string {
  const py = [
    'import ctypes, errno, os, sys',
    'uid, pid = int(sys.argv[1]), int(sys.argv[2])',
    'os.setgroups([]); os.setresgid(uid, uid, uid); os.setresuid(uid, uid, uid)',
    'libc = ctypes.CDLL(None, use_errno=True)',
    'libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]',
    'if libc.ptrace(16, pid, None, None) == 0:',
    '    os.waitpid(pid, 0x40000000)', // __WALL: the stop the attach caused
    '    libc.ptrace(17, pid, None, None)',
    '    print("attached")',
    'else:',
    '    print(errno.errorcode[ctypes.get_errno()])',
  ].join('\n');
  return execFileSync('/usr/bin/python3', ['-c', py, String(uid), String(pid)], { encoding: 'utf8' }).trim();
}

void test(
  'the VMM is confined: QEMU as its own uid under seccomp; virtiofsd sees the image read-only and cannot remount it',
  {
    skip: skip ?? (MICROVM ? undefined : 'only the microvm driver runs a VMM (QEMU, virtiofsd) on the host'),
  },
  async () => {
    const mark = `realm-hostile-${nonce()}`;
    const sb = await Sandbox.create({ memory: '256m' }, t.client);
    try {
      const procs = hostProcsNaming(`${join(t.dataDir, 'sandboxes', sb.id, 'vm')}/`).filter(
        (p) => !/^State:\s+[ZX]/m.test(p.status),
      );
      const qemu = procs.filter((p) => /qemu-system/.test(p.argv[0] ?? ''));
      assert.equal(qemu.length, 1, `QEMU processes: ${JSON.stringify(procs.map((p) => p.argv[0]))}`);
      const vmmUid = hostUidOf(t, sb.id) + 1;
      for (const { status } of qemu) {
        // Every uid and gid (real, effective, saved, fs) is this VMM's own: there is no root to
        // return to, and it is no sandbox's uid (which owns the namespace driver's user namespaces).
        assert.equal(field(status, 'Uid'), Array(4).fill(vmmUid).join('\t'));
        assert.equal(field(status, 'Gid'), Array(4).fill(vmmUid).join('\t'));
        assert.equal(BigInt(`0x${field(status, 'CapEff')}`), 0n, 'QEMU keeps capabilities');
        assert.equal(field(status, 'Seccomp'), '2', 'QEMU runs without its seccomp filter');
        assert.equal(field(status, 'NoNewPrivs'), '1');
      }
      const fsd = procs.filter((p) => /virtiofsd/.test(p.argv[0] ?? ''));
      // virtiofsd forks into a PID namespace of its own; that child serves the guest.
      const serving = fsd.filter((p) => field(p.status, 'NSpid').split(/\s+/).length > 1);
      assert.ok(
        serving.length >= 1,
        `no serving virtiofsd: ${JSON.stringify(fsd.map((p) => [p.pid, field(p.status, 'NSpid')]))}`,
      );
      const WRITE_CAPS = [0, 3, 4, 6, 7, 21, 27, 31]; // chown fowner fsetid setgid setuid sys_admin mknod setfcap
      for (const p of fsd) {
        const caps = BigInt(`0x${field(p.status, 'CapEff')}`);
        for (const c of WRITE_CAPS) assert.equal((caps >> BigInt(c)) & 1n, 0n, `virtiofsd ${p.pid} holds capability ${c}`);
        const source = p.argv.find((a) => a.startsWith('source='))?.slice('source='.length);
        assert.equal(source, '/usr', "a sandbox of the host image shares the host's /usr");
        if (!source) continue;
        // The share as this process sees it (its root after virtiofsd's pivot_root, which moved
        // every process of its mount namespace; else the path in its own mount namespace), written
        // to as host root through /proc: every change fails there.
        const view = existsSync(`/proc/${p.pid}/root/bin/python3`) ? `/proc/${p.pid}/root` : `/proc/${p.pid}/root${source}`;
        assert.ok(existsSync(`${view}/bin/python3`), `${view} is not the share`);
        const attempts: Record<string, () => unknown> = {
          create: () => writeFileSync(`${view}/${mark}`, 'x'),
          mkdir: () => mkdirSync(`${view}/${mark}.d`),
          // A file no host process runs: opening a running program for write is ETXTBSY before it is EROFS.
          'open for write': () => closeSync(openSync(`${view}/lib/os-release`, 'r+')),
          chmod: () => chmodSync(`${view}/bin/python3`, statSync(`${view}/bin/python3`).mode & 0o7777),
          utimes: () =>
            utimesSync(`${view}/bin/python3`, statSync(`${view}/bin/python3`).atime, statSync(`${view}/bin/python3`).mtime),
        };
        for (const [name, fn] of Object.entries(attempts)) {
          assert.throws(
            fn,
            (e: NodeJS.ErrnoException) => e.code === 'EROFS',
            `virtiofsd ${p.pid}'s view of the image let root ${name}`,
          );
        }
      }
      for (const f of [`/usr/${mark}`, `/usr/${mark}.d`]) {
        if (existsSync(f)) {
          rmSync(f, { recursive: true, force: true });
          assert.fail(`${f} was created on the host through virtiofsd's view`);
        }
      }
      assert.equal((await sb.exec('echo alive', { timeout: '30s' })).stdout, 'alive\n');
      // A QEMU taken over from inside its guest is a process of its VMM uid: it cannot trace a
      // namespace sandbox's processes, not even of the sandbox whose ids are next to its own. That
      // sandbox's uid can (it owns their user namespace), which shows the attempt is a real one.
      const ns = await Sandbox.create({ driver: 'namespace' }, t.client);
      try {
        const outer = hostProcsNaming(join(t.dataDir, 'sandboxes', ns.id)).find((p) => /bwrap$/.test(p.argv[0] ?? ''));
        const init = Number(
          readFileSync(`/proc/${outer?.pid ?? 0}/task/${outer?.pid ?? 0}/children`, 'utf8')
            .trim()
            .split(' ')[0],
        );
        assert.ok(init > 0, "the namespace sandbox's PID 1 was not found");
        const nsUid = hostUidOf(t, ns.id);
        assert.equal(ptraceAs(vmmUid, init), 'EPERM', 'a VMM uid could ptrace a namespace sandbox');
        assert.equal(ptraceAs(nsUid + 1, init), 'EPERM', "the VMM uid of the namespace sandbox's own pair could ptrace it");
        assert.equal(ptraceAs(nsUid, init), 'attached', "the control (the sandbox's uid) could not ptrace its own sandbox");
        assert.equal((await ns.exec('echo alive')).stdout, 'alive\n');
      } finally {
        await ns.destroy().catch(() => undefined);
      }
    } finally {
      await sb.destroy().catch(() => undefined);
    }
    await assertContained(t);
  },
);
